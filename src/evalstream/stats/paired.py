"""Paired comparison of two runs on the docs both scored (``evalstream compare``).

Two runs of one benchmark are not independent samples: they share the docs, and most of a
score's variance comes from which docs are hard. So the difference is tested on the per-doc
differences ``d = b - a`` over the shared docs, which removes that variance.

- When every value of both runs is 0 or 1 (accuracy, exact match) the p-value is **McNemar's
  exact test**: under the null each discordant doc goes either way with probability 1/2, so the
  count of docs only one run got right is Binomial(m, 1/2) for m discordant docs. No resampling.
- Otherwise it is the **paired bootstrap**'s: the share of resampled mean differences at least as
  far from the observed one as the observed one is from zero (the bootstrap distribution moved
  to the null), with the +1 correction so it is never 0.

The interval is the paired bootstrap's percentile interval of the mean difference in both
cases. When the differences take few distinct values (always for 0/1 metrics) a replicate is one
multinomial draw of their counts, O(distinct values) instead of O(docs); otherwise docs are
resampled in chunks that bound memory (``stats.bootstrap.index_chunks``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from evalstream.stats.bootstrap import DEFAULT_CHUNK_ELEMS, index_chunks

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

EXACT = "McNemar exact"
BOOTSTRAP = "paired bootstrap"
_FEW_VALUES = 64  # distinct differences up to which a replicate is one multinomial draw


class PairedDifference(msgspec.Struct, frozen=True, kw_only=True):
    """The mean of ``b - a`` over ``n`` shared docs, its interval, its p-value and the test."""

    n: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    confidence: float


def mcnemar_exact(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes."""
    only_b = int(np.count_nonzero((b == 1.0) & (a == 0.0)))
    only_a = int(np.count_nonzero((a == 1.0) & (b == 0.0)))
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = np.arange(min(only_a, only_b) + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_pmf = math.lgamma(m + 1) - lgamma(k + 1) - lgamma(m - k + 1) - m * math.log(2.0)
    tail = float(np.exp(np.logaddexp.reduce(log_pmf)))
    return min(1.0, 2.0 * tail)


def bootstrap_means(
    d: NDArray[np.float64], iters: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """``iters`` bootstrap replicates of the mean of ``d``."""
    n = d.size
    values, counts = np.unique(d, return_counts=True)
    if values.size <= _FEW_VALUES:
        draws = rng.multinomial(n, counts / n, size=iters)
        means: NDArray[np.float64] = (draws @ values) / n
        return means
    out = np.empty(iters, dtype=np.float64)
    done = 0
    for idx in index_chunks(n, iters, rng, chunk_elems=DEFAULT_CHUNK_ELEMS):
        out[done : done + len(idx)] = d[idx].mean(axis=1)
        done += len(idx)
    return out


def paired_difference(
    a: ArrayLike,
    b: ArrayLike,
    *,
    iters: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Compare per-doc values ``a`` and ``b`` of the same docs, in the same order."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("a and b must be 1-d and of the same length (one value per shared doc)")
    binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    test = EXACT if binary else BOOTSTRAP
    if x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        nan = float("nan")
        return PairedDifference(
            n=int(x.size), mean_a=nan, mean_b=nan, difference=nan, ci_low=nan, ci_high=nan,
            p_value=nan, test=test, confidence=confidence,
        )  # fmt: skip
    d = y - x
    mean = float(d.mean())
    replicates = bootstrap_means(d, iters, np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    if binary:
        p = mcnemar_exact(x, y)
    else:
        far = int(np.count_nonzero(np.abs(replicates - mean) >= abs(mean)))
        p = (1 + far) / (1 + iters)
    return PairedDifference(
        n=int(x.size),
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        difference=mean,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p),
        test=test,
        confidence=confidence,
    )
