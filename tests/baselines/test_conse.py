import torch

from baselines_helpers import zero_shot_accuracy
from fewshot.baselines.conse import convex_combination


def test_an_image_is_the_probability_weighted_mean_of_its_top_classes_descriptions():
    side = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    probabilities = torch.tensor([[0.6, 0.3, 0.1]])
    assert torch.allclose(convex_combination(probabilities, side, top=2), torch.tensor([[0.6 / 0.9, 0.3 / 0.9]]))
    assert torch.allclose(convex_combination(probabilities, side, top=1), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(convex_combination(probabilities, side, top=10), torch.tensor([[0.7, 0.4]]))


def test_conse_beats_chance_on_glyph_zero_shot_episodes(glyphs_zsl):
    assert zero_shot_accuracy(glyphs_zsl, "conse", "attributes", top=10) > 0.4
