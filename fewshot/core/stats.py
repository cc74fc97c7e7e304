"""Every interval the suite reports, in one place, so an interval means the same thing everywhere.

* over episodes (or classes, or sequences): the normal interval of the mean, 1.96 sample standard
  deviations over the square root of their number (as CloserLookFewShot and Meta-Dataset report);
* over seeds: Student's t interval of the mean, for any number of seeds (a handful: the normal
  quantile would be far too narrow);
* over images scored right or wrong: Wilson's score interval of a proportion, which stays inside
  [0, 1] and does not collapse to zero width at 0% or 100%;
* the harmonic mean of seen and unseen accuracy (generalized zero-shot): the delta method;
* two runs on identical episodes (or images, or classes): the paired difference and its normal interval.

All values are fractions (0.73, not 73); a half-width is returned where an interval is symmetric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def mean_interval(values: np.ndarray | list[float]) -> float:
    """Half-width of the normal 95% interval of the mean of ``values`` (episodes, classes, sequences).

    1.96 sample standard deviations over sqrt(n); 0 for fewer than two values.
    The constant is 1.96, as the papers quote it, not the exact quantile.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return 0.0
    return float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


def t_quantile(n: int) -> float:
    """The two-sided 95% quantile of Student's t with ``n - 1`` degrees of freedom (``n`` samples)."""
    if n < 2:
        raise ValueError(f"a t interval needs at least two values, got {n}")
    from scipy.stats import t  # imported here: scipy is slow to import and only intervals over seeds need it

    return float(t.ppf(0.975, n - 1))


def seed_interval(values: np.ndarray | list[float]) -> float:
    """Half-width of Student's t 95% interval of the mean of per-seed figures; NaN for a single seed."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return math.nan
    return float(t_quantile(len(values)) * values.std(ddof=1) / math.sqrt(len(values)))


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval (low, high) for ``successes`` right out of ``n`` (Wilson 1927)."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} trials")
    p, z2 = successes / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # at 0% or 100% the bound is exactly 0 or 1 (rounding would leave 0.9999999999999999)
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2SU / (S + U), 0 when both are 0."""
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def harmonic_interval(seen: float, seen_half: float, unseen: float, unseen_half: float) -> float:
    """Half-width of H's 95% interval by the delta method, from S's and U's (independent: disjoint classes).

    dH/dS = 2U^2 / (S + U)^2 and dH/dU = 2S^2 / (S + U)^2; the half-widths combine as standard errors do.
    """
    total = seen + unseen
    if total <= 0:
        return 0.0
    d_seen, d_unseen = 2 * unseen * unseen / total**2, 2 * seen * seen / total**2
    return float(math.hypot(d_seen * seen_half, d_unseen * unseen_half))


@dataclass(frozen=True)
class PairedDifference:
    """A minus B over paired units (fractions), with the 95% half-width of its mean."""

    mean: float
    ci95: float
    pairs: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return abs(self.mean) > self.ci95

    def verdict(self, a: str, b: str) -> str:
        if not self.significant:
            return "no significant difference (the interval includes zero)"
        return f"{a if self.mean > 0 else b} is better (the interval excludes zero)"


def paired_difference(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> PairedDifference:
    """The mean of ``a - b`` unit by unit (episodes, images, classes) and its normal 95% interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must match one to one, got {a.shape} and {b.shape}")
    difference = a - b
    return PairedDifference(float(difference.mean()), mean_interval(difference), len(difference))
