import copy

import torch

from baselines_helpers import short_training
from fewshot.baselines.reptile import Reptile, _batches
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def _learner(**hp):
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 4, 10)
    torch.manual_seed(0)
    return Reptile(task, {**Reptile.hparams, **hp})


def _episode(shots, queries, seed):
    generator = torch.Generator().manual_seed(seed)
    return Episode(
        torch.rand(3 * shots, 1, 28, 28, generator=generator),
        grouped_labels(3, shots),
        torch.rand(3 * queries, 1, 28, 28, generator=generator),
        grouped_labels(3, queries),
        torch.arange(3),
        seed=seed,
    )


def test_mini_batches_cycle_through_shuffled_passes():
    batches = _batches(5, 4, 3, seed=0)
    assert [len(b) for b in batches] == [3] * 4
    flat = torch.cat(batches)
    assert sorted(flat[:5].tolist()) == list(range(5)) and sorted(flat[5:10].tolist()) == list(range(5))
    assert all(torch.equal(a, b) for a, b in zip(batches, _batches(5, 4, 3, seed=0)))


def test_the_meta_step_moves_towards_the_mean_of_the_trained_copies():
    learner = _learner(meta_batch=2, anneal_steps=4)
    batch = [_episode(2, 0, 1), _episode(2, 0, 2)]
    start = {k: v.detach().clone() for k, v in learner.net.named_parameters()}
    copies = []
    probe = copy.deepcopy(learner)
    for episode in batch:
        copies.append(
            probe.train_on(
                episode.support_x,
                episode.support_y,
                learner.settings["inner_steps"],
                learner.settings["inner_batch"],
                episode.seed,
                keep_moments=True,
            )
        )
    metrics = learner.train_step(batch)
    assert metrics["epsilon"] == 1.0
    for name, p in learner.net.named_parameters():
        mean = (copies[0][name] + copies[1][name]) / 2
        assert torch.allclose(p, start[name] + (mean - start[name]), atol=1e-6), name
    assert learner.train_step(batch)["epsilon"] == 0.75, "annealed linearly to 0 over anneal_steps"


def test_non_transductive_queries_do_not_see_each_other():
    learner = _learner(test_steps=3).eval()
    episode = _episode(1, 4, 3)
    logits = learner.predict(episode)
    fast = learner.train_on(
        episode.support_x, episode.support_y, 3, learner.settings["test_batch"], episode.seed, keep_moments=False
    )
    with torch.no_grad():
        one_by_one = torch.stack(
            [learner.net.forward_with(fast, torch.cat([episode.support_x, q[None]]))[-1] for q in episode.query_x]
        )
    assert torch.allclose(logits, one_by_one, atol=1e-5)
    shuffled = Episode(
        episode.support_x,
        episode.support_y,
        episode.query_x.flip(0),
        episode.query_y,
        episode.class_ids,
        seed=episode.seed,
    )
    assert torch.allclose(learner.predict(shuffled).flip(0), logits, atol=1e-5)
    transductive = _learner(test_steps=3, transductive=True).eval()
    assert not torch.allclose(transductive.predict(episode), logits, atol=1e-3)


def test_test_time_adaptation_leaves_the_learner_unchanged():
    learner = _learner(test_steps=3).eval()
    before = copy.deepcopy(learner.state_dict())
    learner.predict(_episode(1, 2, 4))
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "reptile", 40, test_steps="10")
    assert trained > 0.5, trained  # chance is 0.2
    assert trained > untrained + 0.1, (trained, untrained)
