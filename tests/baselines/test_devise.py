import pytest
import torch

from baselines_helpers import zero_shot_accuracy
from fewshot.baselines.devise import hinge_rank_loss


def test_the_hinge_is_zero_exactly_when_the_true_class_leads_every_other_by_the_margin():
    labels = torch.tensor([0])
    assert hinge_rank_loss(torch.tensor([[1.0, 0.5, 0.4]]), labels, margin=0.5).item() == 0.0  # leads by 0.5, 0.6
    assert hinge_rank_loss(torch.tensor([[1.0, 0.6, 0.4]]), labels, margin=0.5).item() == pytest.approx(0.1)
    # summed over the wrong classes, or only the worst one
    scores = torch.tensor([[0.0, 0.3, 0.2]])
    assert hinge_rank_loss(scores, labels, 0.5, "sum").item() == pytest.approx(0.8 + 0.7)
    assert hinge_rank_loss(scores, labels, 0.5, "max").item() == pytest.approx(0.8)


def test_the_true_class_never_counts_as_a_violation():
    # margin - s_y + s_y = margin for the true class itself: it must be left out
    assert hinge_rank_loss(torch.tensor([[5.0, -5.0]]), torch.tensor([0]), margin=1.0).item() == 0.0


@pytest.mark.parametrize("rank", ["sum", "max"])
def test_devise_beats_chance_on_glyph_zero_shot_episodes(glyphs_zsl, rank):
    assert zero_shot_accuracy(glyphs_zsl, "devise", "text", margin=1.0, rank=rank, head_steps=500) > 0.4
