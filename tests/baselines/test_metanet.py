import math

import torch
import torch.nn.functional as F

from baselines_helpers import short_training
from fewshot.baselines.metanet import MetaNet, SequenceWeightGenerator, preprocess_gradients
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def _learner():
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    return MetaNet(task, dict(MetaNet.hparams))


def test_gradient_preprocessing_by_hand():
    got = preprocess_gradients(torch.tensor([0.5, -2.0, 1e-6]))
    assert torch.allclose(got[0], torch.tensor([math.log(0.5) / 10, 1.0]))
    assert torch.allclose(got[1], torch.tensor([math.log(2.0) / 10, -1.0]))
    assert torch.allclose(got[2], torch.tensor([-1.0, 1e-6 * math.exp(10)]))  # below e^-10: the scaled value


def test_written_out_gradients_are_autograd_s():
    learner = _learner()
    features, labels = torch.rand(4, learner.base_out.in_features), torch.tensor([0, 2, 1, 2])
    expected = torch.stack(
        [
            torch.autograd.grad(F.cross_entropy(learner.base_out(f[None]), y[None]), learner.base_out.weight)[0]
            for f, y in zip(features, labels)
        ]
    )
    assert torch.allclose(learner.output_layer_gradients(features, labels), expected, atol=1e-6)


def test_the_task_level_generator_reads_the_whole_gradient_sequence():
    d = SequenceWeightGenerator(5)
    gradients = torch.randn(3, 4, 6)
    fast = d(gradients)
    assert fast.shape == (4, 6)
    assert not torch.allclose(fast, d(gradients[[1, 0, 2]])), "an LSTM: the order of the gradients matters"


def test_predict_builds_its_fast_weights_without_changing_the_learner():
    learner = _learner().eval()
    episode = Episode(
        torch.rand(3, 1, 28, 28),
        grouped_labels(3, 1),
        torch.rand(6, 1, 28, 28),
        grouped_labels(3, 2),
        torch.arange(3),
        seed=4,
    )
    with torch.no_grad():
        logits = learner.predict(episode)
    assert logits.shape == (6, 3) and not logits.requires_grad
    assert all(p.grad is None for p in learner.parameters())


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "metanet", 150)
    assert trained > 0.6, trained  # chance is 0.2
    assert trained > untrained + 0.1
