import math

import pytest
import torch

from fewshot.baselines.learned_optimizer import (
    SGD,
    Adam,
    CoordinatewiseLSTMCell,
    FlatLayout,
    detach_state,
    gradient_at,
    optimise,
    preprocess,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.0, (0.0, 1.0)),
        (-math.exp(-5), (-0.5, -1.0)),  # log(e^-5) / 10
        (math.exp(3), (0.3, 1.0)),
        (math.exp(-10), (-1.0, 1.0)),  # the threshold itself is "large"
        (math.exp(-11), (-1.0, math.exp(-1))),  # small: (-1, e^10 x)
        (-math.exp(-12), (-1.0, -math.exp(-2))),
        (0.0, (-1.0, 0.0)),
    ],
)
def test_preprocessing_is_the_paper_s_formula(value, expected):
    out = preprocess(torch.tensor([value], dtype=torch.float64))
    assert out.shape == (2, 1)
    assert out[:, 0].tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_preprocessing_stacks_on_a_new_first_axis_and_never_gives_nan():
    x = torch.tensor([[0.0, 1e-30], [-2.0, 1e10]])
    out = preprocess(x)
    assert out.shape == (2, 2, 2) and torch.isfinite(out).all()


def test_flat_layout_round_trips_names_and_shapes():
    params = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor([7.0])}
    layout = FlatLayout(params)
    flat = layout.flatten(params)
    assert flat.tolist() == [0, 1, 2, 3, 4, 5, 7] and layout.numel == 7
    back = layout.unflatten(flat)
    assert list(back) == ["a", "b"] and all(torch.equal(back[k], params[k]) for k in params)


def _quadratic(theta):
    target = torch.linspace(-1, 1, len(theta), dtype=theta.dtype)
    return ((theta - target) ** 2 * torch.arange(1, len(theta) + 1, dtype=theta.dtype)).sum()


@pytest.mark.parametrize(
    "rule, reference",
    [
        (SGD(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
        (Adam(0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    ],
)
def test_hand_written_rules_match_torch_s_optimisers(rule, reference):
    start = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = optimise(_quadratic, start, 7, rule)
    assert len(ours) == 8 and torch.equal(ours[0], start)
    theta = start.clone().requires_grad_()
    optimizer = reference([theta])
    for step in range(7):
        optimizer.zero_grad()
        _quadratic(theta).backward()
        optimizer.step()
        assert torch.allclose(ours[step + 1], theta.detach(), atol=1e-12), step


def test_gradients_given_to_a_rule_are_constants_of_the_meta_graph():
    theta = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss, grad = gradient_at(_quadratic, theta * 2)
    assert not loss.requires_grad and not grad.requires_grad
    point = (theta * 2).detach()
    target = torch.linspace(-1, 1, 4, dtype=torch.float64)
    assert torch.allclose(grad, 2 * (point - target) * torch.arange(1, 5, dtype=torch.float64))
    assert loss.item() == pytest.approx(_quadratic(point).item())


def test_the_coordinatewise_cell_is_an_lstm_cell_on_every_coordinate():
    torch.manual_seed(0)
    ours = CoordinatewiseLSTMCell(3, 4)
    reference = torch.nn.LSTMCell(3, 4)
    with torch.no_grad():
        reference.weight_ih.copy_(ours.weight[:, :3])
        reference.weight_hh.copy_(ours.weight[:, 3:])
        reference.bias_ih.copy_(ours.bias)
        reference.bias_hh.zero_()
    x, h, c = torch.randn(3, 10), torch.randn(4, 10), torch.randn(4, 10)
    new_h, new_c = ours(x, (h, c))
    # nn.LSTMCell orders its gates input, forget, cell, output; ours input, forget, output, cell.
    with torch.no_grad():
        for weight in (reference.weight_ih, reference.weight_hh, reference.bias_ih):
            i, f, o, g = weight.clone().chunk(4)
            weight.copy_(torch.cat([i, f, g, o]))
    expected_h, expected_c = reference(x.T, (h.T, c.T))
    assert torch.allclose(new_h, expected_h.T, atol=1e-6) and torch.allclose(new_c, expected_c.T, atol=1e-6)


def test_detach_state_cuts_every_tensor_from_the_graph():
    x = torch.ones(2, requires_grad=True) * 3
    state = ((x, x * 2), x, 4)
    cut = detach_state(state)
    assert not cut[0][0].requires_grad and not cut[0][1].requires_grad and not cut[1].requires_grad
    assert cut[2] == 4 and isinstance(cut[0], tuple)
