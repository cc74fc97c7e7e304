import pytest
import torch
import torch.nn.functional as F

from fewshot.baselines.eszsl import ESZSL
from fewshot.baselines.zero_shot_embedding import fit_linear
from fewshot.core.episode import Episode, LabelledImages
from fewshot.core.errors import FewshotError
from fewshot.core.learner import TaskSpec


def test_a_fitted_head_is_fixed_by_its_seed_and_learns_a_small_split_as_well_as_a_large_one():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    fit = lambda seed: fit_linear(x, 2, F.cross_entropy, y, steps=300, lr=0.05, weight_decay=0.0, seed=seed)  # noqa: E731
    assert torch.equal(fit(0).weight, fit(0).weight) and not torch.equal(fit(0).weight, fit(1).weight)
    assert (fit(0)(x).argmax(1) == y).float().mean() == 1.0  # 40 images, batches of 40: 300 steps all the same


def _features_learner():
    return ESZSL(TaskSpec("xlsa17:T", "zsl", (3,), 2, 0, 5, 2, "attributes", 2), dict(ESZSL.hparams))


def test_on_given_features_there_is_no_backbone_and_nothing_to_train():
    learner = _features_learner()
    assert learner.train_batches() is None and not hasattr(learner, "backbone")
    x = torch.randn(4, 3)
    assert torch.equal(learner.embed(x), x)


def test_an_unprepared_learner_or_an_episode_without_descriptions_is_refused():
    learner = _features_learner()
    episode = Episode(
        torch.zeros(0, 3),
        torch.zeros(0, dtype=torch.long),
        torch.randn(4, 3),
        torch.tensor([0, 0, 1, 1]),
        torch.arange(2),
        side=torch.eye(2),
    )
    with pytest.raises(FewshotError, match="was not prepared"):
        learner.predict(episode)
    learner.prepare(LabelledImages(torch.randn(10, 3), torch.arange(10) % 2), torch.eye(2))
    assert learner.predict(episode).shape == (4, 2)
    with pytest.raises(FewshotError, match="carry class descriptions"):
        learner.predict(
            Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y, episode.class_ids)
        )
