import pytest
import torch

from fewshot.zero_shot import generalized_scores, harmonic_mean, per_class_accuracy


def test_accuracy_is_averaged_per_class_not_per_image():
    labels = torch.tensor([0, 0, 0, 0, 1])
    predicted = torch.tensor([0, 0, 0, 0, 0])  # 4 of 5 images right, but class 1 entirely wrong
    assert per_class_accuracy(predicted, labels, torch.tensor([0, 1])).tolist() == [1.0, 0.0]


def test_a_class_without_test_images_is_an_error():
    with pytest.raises(ValueError, match="class 2 has no test images"):
        per_class_accuracy(torch.tensor([0]), torch.tensor([0]), torch.tensor([0, 2]))


def test_the_harmonic_mean_rewards_only_balance():
    assert harmonic_mean(80.0, 20.0) == pytest.approx(32.0)
    assert harmonic_mean(50.0, 50.0) == pytest.approx(50.0)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_generalized_scores_split_seen_and_unseen_classes():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    predicted = torch.tensor([0, 0, 1, 0, 0, 2, 0, 1])  # seen {0, 1}: 1.0, 0.5; unseen {2, 3}: 0.5, 0.0
    scores = generalized_scores(predicted, labels, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert scores["seen"] == pytest.approx(75.0) and scores["unseen"] == pytest.approx(25.0)
    assert scores["harmonic"] == pytest.approx(37.5) and scores["mean"] == scores["harmonic"]
