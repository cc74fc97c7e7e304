import numpy as np
import pytest
import torch

from fewshot.core.data import ClassImages, ClassInfo, Split
from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner, TaskSpec
from fewshot.core.sampler import EpisodeSampler
from fewshot.protocols.per_instance import (
    PerInstance,
    accuracy_by_presentation,
    evaluate_sequences,
    presentations,
    sequence_order,
)


def test_presentations_count_each_class_up_to_the_step():
    labels = torch.tensor([[2, 0, 2, 1, 0, 2]])
    assert presentations(labels).tolist() == [[1, 1, 2, 1, 2, 3]]


def test_accuracy_by_presentation_on_a_scripted_sequence():
    # Two sequences of 2 classes x 3 instances; the answers are known by construction.
    labels = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 1, 0, 0, 1, 0]])
    correct = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 0, 1, 1, 1]])
    # sequence 0: 1st presentations at steps 0 (wrong), 1 (right) -> 0.5; 2nd at 2, 3 -> 1.0; 3rd at 4 (right), 5 (wrong) -> 0.5
    # sequence 1: 1st at 0 (wrong), 2 (wrong) -> 0.0; 2nd at 1, 3 -> 1.0; 3rd at 4, 5 -> 1.0
    table = accuracy_by_presentation(correct, labels, 3)
    assert table.tolist() == [[0.5, 1.0, 0.5], [0.0, 1.0, 1.0]]


def test_a_class_shown_too_often_is_refused():
    with pytest.raises(ValueError):
        accuracy_by_presentation(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), 2)


PER_CLASS = 12


def _toy_source(classes=6, instances=4, ways=3):
    """Image i holds the value i in every pixel, so a learner can tell the class from the pixels."""
    images = torch.arange(classes * PER_CLASS, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    labels = torch.arange(classes).repeat_interleave(PER_CLASS)
    data = ClassImages(images, labels, tuple(ClassInfo(str(c), "toy") for c in range(classes)))
    split = Split(classes=torch.arange(classes), rotations=torch.zeros(classes, dtype=torch.long))
    return EpisodeSampler(data, split, ways, instances, 0, seed=3)


class _Memorizer(Learner):
    """Right from a class's 2nd presentation on (it keeps the label it was told), a guess of label 0 before."""

    def predict_sequences(self, x, y):
        classes = (x.flatten(2)[:, :, 0] * 255).round().long() // PER_CLASS
        logits = torch.zeros(*y.shape, self.task.ways)
        for b in range(y.shape[0]):
            told: dict[int, int] = {}
            for t in range(y.shape[1]):
                logits[b, t, told.get(int(classes[b, t]), 0)] = 1.0
                told[int(classes[b, t])] = int(y[b, t])
        return logits


def test_evaluate_sequences_scores_a_known_learner():
    learner = _Memorizer(TaskSpec("toy", "all", (1, 2, 2), 3, 4, 0, 6), {})
    result = evaluate_sequences(learner, _toy_source(), 40, 4, batch=16)
    assert result.by_presentation.shape == (40, 4)
    assert np.allclose(result.by_presentation[:, 1:], 1.0)
    assert np.allclose(result.by_presentation[:, 0], 1 / 3)  # one class of three has label 0
    assert result.mean == pytest.approx((1 / 3 + 3) / 4)


def test_sequences_are_fixed_by_the_episode():
    source = _toy_source()
    plan = source.plan(5)
    assert np.array_equal(sequence_order(plan), sequence_order(source.plan(5)))
    orders = {tuple(sequence_order(source.plan(i))) for i in range(10)}
    assert len(orders) > 1


def test_learners_without_sequence_prediction_are_refused():
    with pytest.raises(FewshotError, match="--per-instance"):
        PerInstance().check("protonet", Learner, None)
