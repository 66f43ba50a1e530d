"""Statistics over seeds: summaries with a confidence interval of the mean, and paired tests
(the exact Wilcoxon signed-rank test, a paired bootstrap interval of a mean difference).

The paired tests take two methods' values on the same seeds. With few seeds the exact test
is coarse: with n non-zero differences its smallest two-sided p-value is ``2 / 2**n``
(0.0625 at n = 5), so p < 0.05 needs at least 6 seeds on which the two methods differ.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

#: Up to this many non-zero differences the Wilcoxon null distribution is enumerated exactly.
EXACT_MAX = 20


def _finite(values: Sequence[Optional[float]]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def t_interval(values: Sequence[Optional[float]], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of the finite ``values`` (None and NaN are
    left out): ``(low, high)``, NaN below two values. The t interval rather than a bootstrap
    one because comparisons have few seeds, where a bootstrap interval is too narrow."""
    v = _finite(values)
    if v.size < 2:
        return math.nan, math.nan
    from scipy.stats import t as student_t  # here: scipy.stats takes about a second to import

    half = float(student_t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    mean = float(v.mean())
    return mean - half, mean + half


def summary(values: Sequence[Optional[float]], level: float = 0.95) -> dict:
    """``n``, ``mean``, ``std`` (sample, ddof=1; 0 for one value), ``median``, ``min``,
    ``max`` and the t interval of the mean (``low``, ``high``) of the finite ``values``;
    NaN figures and ``n`` 0 when there are none."""
    v = _finite(values)
    if v.size == 0:
        nan = math.nan
        return {"n": 0, "mean": nan, "std": nan, "median": nan, "min": nan, "max": nan, "low": nan, "high": nan}
    low, high = t_interval(v.tolist(), level)
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "low": low, "high": high}


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two equal-length vectors, got shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep] - b[keep]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided exact Wilcoxon signed-rank test of the paired differences ``a - b``.

    Zero differences are dropped (Wilcoxon's convention); tied magnitudes share their mean
    rank, and the null distribution is enumerated over all 2**n sign assignments of those
    ranks, so ties are handled exactly. Above ``EXACT_MAX`` differences the normal
    approximation (with tie correction) is used.

    Args:
        a, b: the two methods' values on the same seeds (pairs with a non-finite side are dropped).

    Returns:
        ``n`` (non-zero differences), ``w_plus`` (rank sum of the positive differences),
        ``p`` (two-sided; 1.0 when n = 0), ``exact`` (bool), ``min_p`` (the smallest p the
        test can give at this n: ``2 / 2**n`` exactly).
    """
    d = _paired(a, b)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return {"n": 0, "w_plus": 0.0, "p": 1.0, "exact": True, "min_p": 1.0}
    ranks = average_ranks(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    total = float(ranks.sum())
    centre = total / 2
    if n <= EXACT_MAX:
        # Doubled ranks are integers (mean ranks of ties are multiples of 1/2).
        doubled = np.rint(2 * ranks).astype(np.int64)
        counts = np.zeros(int(doubled.sum()) + 1)
        counts[0] = 1.0
        for r in doubled:  # add one rank with sign + or -: shift-and-add the counts
            shifted = np.zeros_like(counts)
            shifted[r:] = counts[:len(counts) - r]
            counts = counts + shifted
        sums = np.arange(len(counts)) / 2.0
        extreme = np.abs(sums - centre) >= abs(w_plus - centre) - 1e-9
        p = float(counts[extreme].sum() / counts.sum())
        return {"n": n, "w_plus": w_plus, "p": min(1.0, p), "exact": True, "min_p": min(1.0, 2.0 / 2**n)}
    _, tie_counts = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((tie_counts**3 - tie_counts).sum()) / 48
    z = (w_plus - centre) / math.sqrt(var) if var > 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2))
    return {"n": n, "w_plus": w_plus, "p": p, "exact": False, "min_p": 0.0}


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], rng: np.random.Generator,
                        resamples: int = 10_000, level: float = 0.95) -> dict:
    """Percentile bootstrap CI of the mean paired difference ``mean(a - b)``, resampling seeds.

    Args:
        a, b: the two methods' values on the same seeds.
        rng: the generator of the resampling.
        resamples: bootstrap resamples.
        level: the interval's coverage.

    Returns:
        ``n``, ``mean`` (the observed mean difference), ``low``, ``high`` (nan below 2 pairs).
    """
    d = _paired(a, b)
    n = len(d)
    if n < 2:
        return {"n": n, "mean": float(d.mean()) if n else math.nan, "low": math.nan, "high": math.nan}
    means = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"n": n, "mean": float(d.mean()), "low": float(low), "high": float(high)}
