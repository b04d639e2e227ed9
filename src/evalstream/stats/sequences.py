"""Confidence sequences for a running mean: intervals that stay valid however often one looks.

A 95 % confidence *interval* is valid at one sample size fixed in advance. Looked at after every
sample, with the run stopped the first time it excludes a value, a fixed-n interval excludes the
truth far more often than 5 % of the time (the more looks, the worse). A 95 % confidence
*sequence* ``(low_t, high_t)`` holds the truth at every ``t`` at once with probability 95 %, so
a live view or a daemon may look after every sample and stop whenever it likes.

The method is the **predictable plug-in empirical-Bernstein** sequence (PrPl-EB) of
Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", JRSS-B 86(1),
2024, Theorem 2, for values in [0, 1], intersected over time (an intersection of a confidence
sequence's past intervals is still one). With ``L = log(2 / alpha)``::

    mu_t     = (1/2 + sum_{i<=t} x_i) / (t + 1)                    (mu_0 = 1/2)
    var_t    = (1/4 + sum_{i<=t} (x_i - mu_i)^2) / (t + 1)          (var_0 = 1/4)
    lambda_t = min(sqrt(2 L / (var_{t-1} t log(1 + t))), 1/2)       (predictable: uses t-1)
    psi(l)   = (-log(1 - l) - l) / 4
    C_t      = sum lambda_i x_i / sum lambda_i
               +- (L + sum 4 (x_i - mu_{i-1})^2 psi(lambda_i)) / sum lambda_i

Why this one and not the tighter betting sequence of the same paper (its hedged capital process
on a grid of candidate means): the betting sequence costs O(grid) per sample (a product per
candidate mean, ~1000 of them to resolve 0.001) and is sequential, while every term above is a
running sum, so a batch of samples updates in O(batch) with numpy cumulative sums and the state
is seven floats. The price is width: at n = 1000 the sequence is about twice as wide as the
fixed-n Wilson interval (1.98x on Bernoulli(0.5), 1.76x on Bernoulli(0.05), measured by
tests/stats/test_sequences.py), narrowing as ``sqrt(log(n) / n)`` instead of ``1 / sqrt(n)``;
the betting sequence is narrower in the paper's experiments, at a thousand times the cost. It
adapts to the variance (empirical Bernstein), so a metric near 0 or 1 gets a narrow sequence,
as a Wilson interval does.

Every function works on a leading axis of independent streams (``shape (streams, samples)``),
so the simulation tests run a thousand runs at once and a live run uses one stream.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import msgspec
import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

ALPHA = 0.05
"""1 - the confidence: 95 % sequences, as the results' 95 % intervals."""
_CAP = 0.5  # the largest bet lambda: the paper's suggested 1/2
Verdict = Literal["better", "worse", "equivalent", "undecided"]
_VERDICTS: dict[str, Verdict] = {v: v for v in ("better", "worse", "equivalent", "undecided")}


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """A metric's running mean over ``n`` samples and its 95 % confidence sequence.

    ``mean`` is the plain mean (what the results row will say); the sequence is centred on a
    variance-weighted mean, so ``mean`` need not be its midpoint.
    """

    mean: float
    low: float
    high: float
    n: int


class Versus(msgspec.Struct, frozen=True, kw_only=True):
    """The paired difference new - baseline over ``n`` shared docs, its 95 % sequence, and what
    it decides: ``better`` (low > 0), ``worse`` (high < 0), ``equivalent`` (the sequence inside
    (-margin, margin)), else ``undecided``."""

    diff: float
    low: float
    high: float
    n: int
    verdict: Verdict


class SequenceState:
    """The running sums of PrPl-EB for ``streams`` independent streams of values in [0, 1]."""

    __slots__ = ("bet", "count", "high", "low", "penalty", "squares", "total", "weighted")

    def __init__(self, streams: int = 1) -> None:
        zeros = np.zeros(streams, dtype=np.float64)
        self.count = 0  # samples per stream (every stream advances together)
        self.total = zeros.copy()  # sum x_i
        self.squares = zeros.copy()  # sum (x_i - mu_i)^2
        self.bet = zeros.copy()  # sum lambda_i
        self.weighted = zeros.copy()  # sum lambda_i x_i
        self.penalty = zeros.copy()  # sum 4 (x_i - mu_{i-1})^2 psi(lambda_i)
        self.low = zeros.copy()  # the running intersection's bounds
        self.high = np.ones(streams, dtype=np.float64)

    def update(
        self, values: ArrayLike, *, alpha: float = ALPHA, path: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Advance every stream by the samples of ``values`` (``(streams, m)`` or ``(m,)`` for
        one stream), in O(m) vectorised work. With ``path=True`` returns the bounds after each
        sample, ``(streams, m)`` each (what a look after every sample would see)."""
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(self.total.size, -1)
        m = x.shape[1]
        if m == 0:
            return (np.empty_like(x), np.empty_like(x)) if path else None
        if not (np.all(x >= 0.0) and np.all(x <= 1.0)):
            raise ValueError("a confidence sequence here needs values in [0, 1]")
        level = math.log(2.0 / alpha)
        t = self.count + np.arange(1, m + 1, dtype=np.float64)
        sums = self.total[:, None] + np.cumsum(x, axis=1)
        mu = (0.5 + sums) / (t + 1.0)
        mu_before = np.concatenate([((0.5 + self.total) / (self.count + 1.0))[:, None], mu], 1)
        squares = self.squares[:, None] + np.cumsum((x - mu) ** 2, axis=1)
        var = (0.25 + squares) / (t + 1.0)
        var_before = np.concatenate([((0.25 + self.squares) / (self.count + 1.0))[:, None], var], 1)
        lam = np.minimum(np.sqrt(2.0 * level / (var_before[:, :-1] * t * np.log1p(t))), _CAP)
        psi = (-np.log1p(-lam) - lam) / 4.0
        bet = self.bet[:, None] + np.cumsum(lam, axis=1)
        weighted = self.weighted[:, None] + np.cumsum(lam * x, axis=1)
        penalty = self.penalty[:, None] + np.cumsum(4.0 * (x - mu_before[:, :-1]) ** 2 * psi, 1)
        centre = weighted / bet
        radius = (level + penalty) / bet
        low = np.maximum.accumulate(np.maximum(centre - radius, self.low[:, None]), axis=1)
        high = np.minimum.accumulate(np.minimum(centre + radius, self.high[:, None]), axis=1)
        self.count += m
        self.total, self.squares = sums[:, -1], squares[:, -1]
        self.bet, self.weighted, self.penalty = bet[:, -1], weighted[:, -1], penalty[:, -1]
        self.low, self.high = low[:, -1], high[:, -1]
        return (low, high) if path else None

    def bounds(self) -> tuple[float, float]:
        """The first stream's current sequence (``(0, 1)`` before any sample)."""
        return float(self.low[0]), float(self.high[0])


_PENDING = 8192


class Pending:
    """Batches waiting to enter a sequence. A numpy call costs microseconds whatever its size,
    so a live run's batches are applied together: when a snapshot asks, or once ``_PENDING``
    values wait. The sequence is the same however its samples are split (every look inside the
    applied batches counts in the running intersection), so waiting changes nothing but cost.
    The values' bound is checked as they are applied: ``bounded`` turns False for good."""

    __slots__ = ("batches", "bounded", "size", "state")

    def __init__(self, streams: int = 1) -> None:
        self.state = SequenceState(streams)
        self.batches: list[NDArray[np.float64]] = []
        self.size = 0
        self.bounded = True

    def add(self, values: NDArray[np.float64]) -> None:
        """Queue a batch (``(m,)``, or ``(streams, m)``)."""
        self.batches.append(values)
        self.size += values.size
        if self.size >= _PENDING:
            self.apply()

    def apply(self) -> SequenceState:
        """The sequence with every pending batch in it (none, once a value left [0, 1])."""
        if self.batches:
            batches, self.batches, self.size = self.batches, [], 0
            values = np.concatenate(batches, axis=-1)
            self.bounded = self.bounded and in_unit(values)
            if self.bounded:
                self.state.update(values)
        return self.state


class RunningMean:
    """One metric's live estimate: the plain mean and the sequence of its values in [0, 1]."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = Pending()

    def update(self, values: NDArray[np.float64]) -> None:
        """Add a batch of values; one outside [0, 1] (or NaN) ends the estimate."""
        self.pending.add(values)

    def estimate(self) -> Estimate | None:
        """The estimate now, or None once a value left [0, 1]."""
        state = self.pending.apply()
        if not self.pending.bounded:
            return None
        low, high = state.bounds()
        n = state.count
        mean = float(state.total[0]) / n if n else math.nan
        return Estimate(mean=mean, low=low, high=high, n=n)


class RunningDifference:
    """One metric's paired difference new - baseline, each in [0, 1], so the difference is in
    [-1, 1]: the sequence runs on ``(d + 1) / 2`` in [0, 1] and is mapped back."""

    __slots__ = ("margin", "pending")

    def __init__(self, margin: float, streams: int = 1) -> None:
        self.margin = margin
        self.pending = Pending(streams)

    @property
    def state(self) -> SequenceState:
        """The sequence of ``(d + 1) / 2``, every pending batch applied."""
        return self.pending.apply()

    def update(
        self, differences: ArrayLike, *, path: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Add a batch of paired differences, all in [-1, 1] (``(streams, m)`` or ``(m,)``);
        with ``path=True`` it is applied now and the bounds of the difference after each sample
        are returned, else it may wait with the pending batches."""
        unit = (np.asarray(differences, dtype=np.float64) + 1.0) / 2.0
        if not path:
            self.pending.add(unit)
            return None
        bounds = self.state.update(unit, path=True)
        assert bounds is not None
        return 2.0 * bounds[0] - 1.0, 2.0 * bounds[1] - 1.0

    def versus(self) -> Versus:
        state = self.state
        low, high = state.bounds()
        n = state.count
        diff = 2.0 * float(state.total[0]) / n - 1.0 if n else math.nan
        low, high = 2.0 * low - 1.0, 2.0 * high - 1.0
        return Versus(diff=diff, low=low, high=high, n=n, verdict=verdict(low, high, self.margin))


def decide(low: ArrayLike, high: ArrayLike, margin: float) -> NDArray[np.str_]:
    """What sequences ``(low, high)`` of new - baseline decide, elementwise, given the
    equivalence margin: a decided better or worse wins over equivalent (both can hold)."""
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return np.select(
        [lo > 0.0, hi < 0.0, (lo > -margin) & (hi < margin)],
        ["better", "worse", "equivalent"],
        "undecided",
    )


def verdict(low: float, high: float, margin: float) -> Verdict:
    """``decide`` for one sequence."""
    return _VERDICTS[str(decide(low, high, margin))]


def in_unit(values: NDArray[np.float64]) -> bool:
    """Whether every value is in [0, 1] (NaN is not: it fails both comparisons)."""
    return values.size == 0 or bool(values.min() >= 0.0 and values.max() <= 1.0)
