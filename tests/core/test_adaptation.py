import math

import torch

from fewshot.core.adaptation import (
    coral,
    ganin_lambda,
    gaussian_kernel_mean,
    joint_mmd,
    kernel_family,
    mmd,
    reverse_gradient,
)


def test_gradient_reversal_is_the_identity_forward_and_multiplies_the_gradient_by_minus_lambda():
    x = torch.randn(5, 3, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    weights = torch.randn(5, 3)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.3 * weights)


def test_the_adaptation_weight_rises_from_zero_towards_one_as_in_ganin_et_al():
    assert ganin_lambda(0.0) == 0.0
    assert math.isclose(ganin_lambda(0.5), 2 / (1 + math.exp(-5)) - 1, rel_tol=1e-6)
    assert 0.999 < ganin_lambda(1.0) < 1.0


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_a_shift_of_the_mean():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 4, generator=generator), torch.randn(400, 4, generator=generator)
    widths = kernel_family(a, b, 5, 2.0)
    same = mmd(a, b, widths)
    shifted = [mmd(a, b + shift, kernel_family(a, b + shift, 5, 2.0)) for shift in (0.5, 1.0, 2.0)]
    assert same < 0.01  # the biased estimate on 400 points
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert shifted[0] > 5 * same


def test_the_multi_kernel_estimate_matches_a_direct_computation():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 2.0]])
    widths = torch.tensor([0.5, 2.0])

    def k(u, v):
        d2 = float(((u - v) ** 2).sum())
        return sum(math.exp(-d2 / (2 * s)) for s in (0.5, 2.0)) / 2

    expected = sum(k(p, q) for p in x for q in x) / 4 + k(y[0], y[0]) - 2 * sum(k(p, y[0]) for p in x) / 2
    assert math.isclose(float(mmd(x, y, widths)), expected, rel_tol=1e-5)
    assert torch.allclose(gaussian_kernel_mean(x, y, widths)[1, 0], torch.tensor(k(x[1], y[0])))
    # the family's variances: base * 2^k, k = -2..2, base = the mean squared distance between distinct pooled points
    pooled = torch.cat([x, y])
    base = sum(float(((p - q) ** 2).sum()) for p in pooled for q in pooled) / 6
    assert torch.allclose(kernel_family(x, y, 5, 2.0), base * torch.tensor([0.25, 0.5, 1, 2, 4]))


def test_joint_mmd_of_one_layer_is_mmd_and_the_product_kernel_sees_a_shift_in_either_layer():
    generator = torch.Generator().manual_seed(1)
    f_s, f_t = torch.randn(50, 3, generator=generator), torch.randn(50, 3, generator=generator)
    g = torch.rand(50, 2, generator=generator)
    widths = torch.tensor([1.0, 4.0])
    assert torch.allclose(joint_mmd([f_s], [f_t], [widths]), mmd(f_s, f_t, widths))
    base = joint_mmd([f_s, g], [f_t, g], [widths, torch.tensor([1.0])])
    assert joint_mmd([f_s, g], [f_t, g + 1], [widths, torch.tensor([1.0])]) > base


def test_coral_is_zero_for_equal_covariances_and_positive_otherwise():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(100, 6, generator=generator)
    assert float(coral(x, x + 3.0)) < 1e-10  # a shifted mean leaves the covariance alone
    stretched = x * torch.tensor([1.0, 1, 1, 1, 1, 3])
    expected = (torch.cov(x.T) - torch.cov(stretched.T)).pow(2).sum() / (4 * 36)
    assert torch.isclose(coral(x, stretched), expected) and float(expected) > 0


def test_the_linear_time_mmd_estimate_is_unbiased_and_near_the_quadratic_one_on_large_samples():
    from fewshot.core.adaptation import linear_mmd, mmd

    generator = torch.Generator().manual_seed(0)
    widths = torch.tensor([1.0, 2.0, 4.0])
    same = [linear_mmd(torch.randn(200, 3, generator=generator), torch.randn(200, 3, generator=generator), widths)
            for _ in range(200)]  # fmt: skip
    assert abs(float(torch.stack(same).mean())) < 0.01  # unbiased: zero in expectation when the domains agree
    source, target = torch.randn(4000, 3, generator=generator), torch.randn(4000, 3, generator=generator) + 1.0
    assert torch.isclose(linear_mmd(source, target, widths), mmd(source[:1000], target[:1000], widths), rtol=0.15)
    assert linear_mmd(source[:7], target[:9], widths).isfinite()  # odd and unequal sizes are cut to a common even one
