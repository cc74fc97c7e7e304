"""The one statistics module: each interval against a value computed by hand or by another library."""

import math

import numpy as np
import pytest

from fewshot.core.stats import (
    harmonic_interval,
    harmonic_mean,
    mean_interval,
    paired_difference,
    seed_interval,
    t_quantile,
    wilson_interval,
)


def test_the_interval_over_episodes_is_196_standard_errors():
    values = np.array([0.2, 0.4, 0.4, 0.8, 1.0])
    assert mean_interval(values) == pytest.approx(1.96 * values.std(ddof=1) / math.sqrt(5))
    assert mean_interval([0.7]) == 0.0


def test_the_t_quantile_matches_the_tables_for_small_and_large_samples():
    # Student's t, two-sided 95%: 12.706 (1 d.f.), 4.303 (2), 2.262 (9), 2.045 (29), 1.984 (100)
    for n, expected in ((2, 12.706), (3, 4.303), (10, 2.262), (30, 2.045), (101, 1.984)):
        assert t_quantile(n) == pytest.approx(expected, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile(1)


def test_the_interval_over_seeds_uses_student_t_for_any_number_of_seeds():
    three = [51.0, 53.0, 49.0]
    assert seed_interval(three) == pytest.approx(4.303 * 2.0 / math.sqrt(3), rel=1e-3)
    twelve = list(np.linspace(50, 61, 12))  # beyond the old table's ten entries
    assert seed_interval(twelve) == pytest.approx(2.201 * np.std(twelve, ddof=1) / math.sqrt(12), rel=1e-3)
    assert math.isnan(seed_interval([50.0]))


def test_wilson_interval_matches_the_formula_and_stays_inside_zero_one():
    # 81 right out of 263 (Wilson's interval from Newcombe 1998, example (e) of his Table I: 0.2553 to 0.3662)
    low, high = wilson_interval(81, 263)
    assert (low, high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.25  # not zero width at 0%
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] < 0.75
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_the_harmonic_mean_rewards_only_balance():
    assert harmonic_mean(0.8, 0.2) == pytest.approx(0.32)
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_the_harmonic_mean_interval_is_the_delta_method_and_agrees_with_simulation():
    s, s_half, u, u_half = 0.75, 0.04, 0.25, 0.06
    d_s, d_u = 2 * u * u / (s + u) ** 2, 2 * s * s / (s + u) ** 2
    assert harmonic_interval(s, s_half, u, u_half) == pytest.approx(math.hypot(d_s * s_half, d_u * u_half))
    rng = np.random.default_rng(0)
    seen, unseen = rng.normal(s, s_half / 1.96, 200_000), rng.normal(u, u_half / 1.96, 200_000)
    draws = 2 * seen * unseen / (seen + unseen)
    assert 1.96 * draws.std() == pytest.approx(harmonic_interval(s, s_half, u, u_half), rel=0.05)


def test_a_paired_difference_is_significant_only_when_its_interval_excludes_zero():
    a = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    same = paired_difference(a, a)
    assert (same.mean, same.ci95, same.significant, same.pairs) == (0.0, 0.0, False, 8)
    better = paired_difference(np.ones(50), np.r_[np.ones(25), np.zeros(25)])
    assert better.mean == pytest.approx(0.5) and better.significant
    assert better.verdict("run 1", "run 2") == "run 1 is better (the interval excludes zero)"
    noisy = paired_difference([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0])
    assert not noisy.significant and "no significant difference" in noisy.verdict("a", "b")
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 0.0])
