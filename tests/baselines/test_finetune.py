import torch

from baselines_helpers import short_training
from fewshot.baselines.finetune import Classifier, cosine_scale


def test_cosine_classifier_scores_are_scaled_cosines():
    head = Classifier(3, 2, "cosine", torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    scores = head(torch.tensor([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    assert head.scale == cosine_scale(2) == 2.0 and cosine_scale(201) == 10.0
    assert torch.allclose(scores, 2.0 * torch.tensor([[1.0, 0.0], [0.5**0.5, 0.5**0.5]]), atol=1e-5)


def test_baseline_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "finetune", 300, ft_epochs="30")
    assert trained > 0.6, trained
    assert trained > untrained + 0.05


def test_baseline_plus_plus_and_partial_fine_tuning_run(omniglot):
    trained, _ = short_training(
        omniglot["lake"], "finetune", 100, head="cosine", ft_epochs="20", tune_blocks="1", episodes=20, compare=False
    )
    assert trained > 0.4


def test_written_out_gradients_match_autograd_sgd():
    """The fast head fitting is the paper's SGD loop: same classifier after the same steps."""
    from fewshot.baselines.finetune import fine_tune, fit_head

    sgd = {"lr": 0.05, "momentum": 0.9, "dampening": 0.9, "weight_decay": 1e-3}
    x = torch.randn(10, 7, generator=torch.Generator().manual_seed(1))
    y = torch.arange(5).repeat_interleave(2)
    for kind in ("linear", "cosine"):
        fast = Classifier(7, 5, kind, torch.Generator().manual_seed(2))
        slow = Classifier(7, 5, kind, torch.Generator().manual_seed(2))
        fit_head(fast, x, y, 6, 4, sgd, torch.Generator().manual_seed(3))
        fine_tune(slow, x, y, 6, 4, sgd, torch.Generator().manual_seed(3))
        assert torch.allclose(fast.weight, slow.weight, atol=1e-5), kind
        if kind == "linear":
            assert torch.allclose(fast.bias, slow.bias, atol=1e-5)
        assert not torch.allclose(fast.weight, Classifier(7, 5, kind, torch.Generator().manual_seed(2)).weight)
