import copy

import pytest
import torch
import torch.nn.functional as F

from fewshot.baselines.finetune import FineTune
from fewshot.core.adaptation import Adaptation, Features
from fewshot.core.episode import LabelledImages
from fewshot.core.learner import TaskSpec
from fewshot.run.adapted import AdaptationBatch, Adapted

TASK = TaskSpec("digits", "uda", (1, 28, 28), 10, 0, 0, 10, network="lenet")


class MeanGap(Adaptation):
    """A loss reading both halves and the logits, so the test sees every path the wrapper wires."""

    hparams = {"weight": 0.7}

    def loss(self, source, target, progress, labelled=None):
        gap = (source.output.mean(0) - target.output.mean(0)).pow(2).sum()
        return self.hp["weight"] * (gap + (source.logits.mean() - target.logits.mean()) ** 2)


def _learner(seed=0):
    torch.manual_seed(seed)
    return FineTune(TASK, FineTune.hparams)


def test_one_step_follows_the_gradient_of_the_learners_loss_plus_the_adaptation_loss():
    generator = torch.Generator().manual_seed(1)
    source = LabelledImages(torch.rand(8, 1, 28, 28, generator=generator), torch.arange(8) % 10)
    target = torch.rand(6, 1, 28, 28, generator=generator)
    plain = _learner()
    wrapped = Adapted(copy.deepcopy(plain), "meangap", MeanGap(100, 10, MeanGap.hparams, 10), target_batch=6)
    # by hand: the same network on the joined batch, both losses, one Adam step with the same settings
    joined = plain.backbone(torch.cat([source.x, target]))
    src, tgt = joined[:8], joined[8:]
    loss = F.cross_entropy(plain.classifier(src), source.y)
    loss = loss + MeanGap(100, 10, MeanGap.hparams, 10).loss(
        Features(src, plain.classifier(src)), Features(tgt, plain.classifier(tgt)), 0.0
    )
    plain.optimizer.zero_grad()
    loss.backward()
    plain.optimizer.step()
    wrapped.train_step(AdaptationBatch(source, target))
    for (name, a), b in zip(plain.named_parameters(), wrapped.learner.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert wrapped.last_loss > 0 and int(wrapped.steps_done) == 1


def test_a_learner_step_that_never_runs_the_backbone_is_an_error():
    learner = _learner()
    learner.train_step = lambda batch: {"loss": 0.0}
    wrapped = Adapted(learner, "meangap", MeanGap(100, 10, MeanGap.hparams, 10))
    with pytest.raises(Exception, match="never ran its backbone"):
        wrapped.train_step(
            AdaptationBatch(LabelledImages(torch.rand(2, 1, 28, 28), torch.zeros(2).long()), torch.rand(2, 1, 28, 28))
        )


def test_an_episodic_learner_meta_trains_on_source_episodes_while_aligning_to_target_images(glyphs):
    from fewshot.run import experiment
    from fewshot.run.training import Budget

    bench = experiment.open_benchmark("glyphs", None, source="sans", target="serif")
    cell = experiment.resolve_cell(bench, 5, 1, None, 10, 0)
    setup = experiment.make_setup("protonet", {}, bench, cell, None, "dann")
    learner = experiment.build(setup, torch.device("cpu"), Budget(steps=100))
    batch_at = experiment.batches_for(setup, learner)
    seen = []
    learner.learner.backbone.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    batch = batch_at(0)
    target_mask = bench.split("target").image_mask
    assert batch.target_x.shape[0] == 64 and batch.target_labelled is None
    stats = learner.train_step(batch)
    episode_images = sum(len(e.support_x) + len(e.query_x) for e in batch.source)
    assert seen[0] == episode_images + 64  # source episodes and the target batch went through together
    assert stats["adapt_loss"] > 0 and int(learner.steps_done) == 1
    assert int(target_mask.sum()) > 0 and cell.queries == 5


def test_the_target_labels_never_reach_training(data_root, monkeypatch):
    """uda: every target image a method sees comes without its label (the test scrambles nothing: it records)."""
    from fewshot.baselines.adaptations.dann import DANN
    from fewshot.run import experiment
    from fewshot.run.training import Budget

    bench = experiment.open_benchmark("digits", "uda", data_root, source="mnist", target="usps")
    cell = experiment.resolve_cell(bench, None, None, None, None, 0)
    setup = experiment.make_setup("finetune", {}, bench, cell, None, "dann")
    learner = experiment.build(setup, torch.device("cpu"), Budget(steps=10))
    seen = []
    original = DANN.loss

    def recording(self, source, target, progress, labelled=None):
        seen.append((source.labels is not None, target.labels, labelled))
        return original(self, source, target, progress, labelled)

    monkeypatch.setattr(DANN, "loss", recording)
    batch_at = experiment.batches_for(setup, learner)
    for step in range(3):
        batch = batch_at(step)
        assert not hasattr(batch, "target_y") and batch.target_labelled is None
        learner.train_step(batch)
    assert seen == [(True, None, None)] * 3
