"""DAN's choices: the warm-up of its weight and the layers it adapts."""

import torch

from fewshot.baselines.adaptations.dan import DAN
from fewshot.baselines.adaptations.jan import JAN
from fewshot.core.adaptation import Features


def features(shift: float, logits_shift: float) -> Features:
    generator = torch.Generator().manual_seed(int(10 * shift + logits_shift))
    output = torch.randn(32, 8, generator=generator) + shift
    return Features(output, torch.randn(32, 4, generator=generator) + logits_shift)


def test_without_warm_up_the_weight_is_whole_from_the_first_step_and_with_it_rises_from_zero():
    source, target = features(0.0, 0.0), features(1.0, 3.0)
    for method in (DAN, JAN):
        warmed = method(8, 4, dict(method.hparams), 100)
        constant = method(8, 4, {**method.hparams, "warmup": "none"}, 100)
        assert warmed.loss(source, target, 0.0) == 0 and constant.loss(source, target, 0.0) > 0
        assert torch.isclose(warmed.loss(source, target, 1.0), constant.loss(source, target, 1.0), rtol=1e-3)
        assert warmed.loss(source, target, 0.2) < warmed.loss(source, target, 0.6) < constant.loss(source, target, 0.6)


def test_layers_output_leaves_the_logits_alone():
    both = DAN(8, 4, {**DAN.hparams, "warmup": "none"}, 100)
    output = DAN(8, 4, {**DAN.hparams, "warmup": "none", "layers": "output"}, 100)
    source, target = features(0.0, 0.0), features(1.0, 3.0)
    assert target.logits is not None and source.logits is not None
    near = Features(target.output, target.logits - 3.0)  # the same hidden features, logits moved to the source's
    assert output.loss(source, target, 0.5) == output.loss(source, near, 0.5)
    assert both.loss(source, target, 0.5) > both.loss(source, near, 0.5)
