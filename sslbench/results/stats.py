"""The 95% Student-t intervals every part of sslbench uses (tables, plots, gate, few-shot protocols).

Plain ``math``: the protocols import :func:`mean_std_ci` without pulling in pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95% quantiles of Student's t, t_{0.975}(df) for df = 1..30.
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (scipy when available, else a table)."""
    if df < 1:
        return math.nan
    try:
        from scipy.stats import t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96
    return float(t.ppf(0.975, df))


def ci95_halfwidth(std: float | None, n: int) -> float:
    """Half-width of the 95% t-interval for a mean of ``n`` values; NaN when n < 2."""
    if n < 2 or std is None or not math.isfinite(std):
        return math.nan
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def mean_std_ci(values: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean, sample std (ddof=1), half-width of the 95% t-interval of the mean, n); std and CI NaN when n < 2."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = sum(vals) / n
    if n < 2:
        return mean, math.nan, math.nan, n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return mean, std, ci95_halfwidth(std, n), n


def diff_ci95_halfwidth(std_a: float | None, n_a: int, std_b: float | None, n_b: int) -> float:
    """Half-width of the 95% pooled-variance t-interval of ``mean_a - mean_b``; NaN when both n < 2.

    ``t_0.975(df) * s_p * sqrt(1/n_a + 1/n_b)``, ``s_p^2 = sum((n_i - 1) s_i^2) / df``,
    ``df = sum(n_i - 1)`` over the sides with n_i >= 2 (one side of one value still uses the other's spread).
    """
    df, ss = 0, 0.0
    for std, n in ((std_a, n_a), (std_b, n_b)):
        if n >= 2 and std is not None and math.isfinite(std):
            df += n - 1
            ss += (n - 1) * std * std
    if df == 0:
        return math.nan
    return t_quantile_975(df) * math.sqrt(ss / df) * math.sqrt(1.0 / n_a + 1.0 / n_b)


def different(a_mean: float, a_ci: float | None, b_mean: float, b_ci: float | None) -> bool:
    """True when the intervals ``a_mean ± a_ci`` and ``b_mean ± b_ci`` do not overlap.

    False whenever either mean or half-width is missing or not finite: without both
    intervals nothing is said to differ.
    """
    vals = (a_mean, a_ci, b_mean, b_ci)
    if any(v is None or not math.isfinite(float(v)) for v in vals):
        return False
    return a_mean - a_ci > b_mean + b_ci or b_mean - b_ci > a_mean + a_ci
