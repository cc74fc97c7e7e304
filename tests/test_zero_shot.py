import numpy as np
import pytest
import torch

from fewshot.protocols.zero_shot import class_scores, harmonic_mean, per_class_accuracy


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
    per_class = torch.tensor([1.0, 0.5, 0.5, 0.0])  # seen {0, 1}, unseen {2, 3}
    scores = class_scores(per_class, torch.tensor([True, True, False, False]))
    assert scores["seen"] == pytest.approx(0.75) and scores["unseen"] == pytest.approx(0.25)
    assert scores["harmonic"] == pytest.approx(0.375) and scores["mean"] == scores["harmonic"]
    # H's interval by the delta method: dH/dS = 2U^2/(S+U)^2, dH/dU = 2S^2/(S+U)^2
    s_ci, u_ci = 1.96 * np.std([1.0, 0.5], ddof=1) / 2**0.5, 1.96 * np.std([0.5, 0.0], ddof=1) / 2**0.5
    assert scores["ci95"] == pytest.approx(((0.125 * s_ci) ** 2 + (1.125 * u_ci) ** 2) ** 0.5)


def test_without_seen_classes_the_score_is_the_per_class_mean():
    scores = class_scores(torch.tensor([1.0, 0.0, 0.5]), torch.zeros(3, dtype=torch.bool))
    assert scores == {"mean": pytest.approx(0.5), "ci95": pytest.approx(1.96 * 0.5 / 3**0.5)}
