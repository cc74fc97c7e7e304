import pytest
import torch

from baselines_helpers import zero_shot_accuracy
from fewshot.baselines.dap import attribute_log_odds_scores, binarization_threshold, binary_attributes
from fewshot.core.errors import FewshotError
from fewshot.run import experiment


def test_the_class_whose_signature_the_attribute_classifiers_predict_wins():
    signatures = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    priors = torch.tensor([0.5, 0.5, 0.5])
    probabilities = torch.tensor([[0.9, 0.8, 0.1], [0.1, 0.9, 0.8]])
    assert attribute_log_odds_scores(probabilities, signatures, priors).argmax(1).tolist() == [2, 1]


def test_a_rare_attribute_counts_more_than_a_common_one():
    # equal evidence for attribute 0 (rare) and attribute 1 (common): the class with the rare one wins
    signatures = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scores = attribute_log_odds_scores(torch.tensor([[0.6, 0.6]]), signatures, torch.tensor([0.1, 0.9]))
    assert scores.argmax(1).item() == 0
    expected = torch.log(torch.tensor(0.6 / 0.1)) + torch.log(torch.tensor(0.4 / 0.1))
    assert scores[0, 0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_continuous_attributes_are_made_binary_at_the_training_classes_mean():
    training = torch.tensor([[0.0, 10.0], [4.0, 30.0]])
    threshold = binarization_threshold(training)
    assert threshold.tolist() == [2.0, 20.0]
    assert binary_attributes(torch.tensor([[3.0, 5.0]]), threshold).tolist() == [[1.0, 0.0]]
    assert binarization_threshold(torch.tensor([[0.0, 1.0]])) is None


def test_dap_refuses_text_descriptions(glyphs_zsl):
    cell = experiment.resolve_cell(glyphs_zsl, 5, 0, 15, 10, 0)
    with pytest.raises(FewshotError, match="dap reads only attributes descriptions, not text"):
        experiment.make_setup("dap", {}, glyphs_zsl, cell, "text")


def test_dap_beats_chance_on_glyph_zero_shot_episodes(glyphs_zsl):
    assert zero_shot_accuracy(glyphs_zsl, "dap", "attributes", l2=1e-4, head_steps=500) > 0.4
