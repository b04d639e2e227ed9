"""The confidence sequences by simulation: a thousand runs at once, looked at after every sample.

Coverage is checked the strict way a live view or a daemon uses it: a run counts as a miss if
the true mean leaves the sequence at *any* look. The same check run on a fixed-n 95 % normal
interval, peeked at every sample, must fail: that is what shows the check can fail at all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalstream.stats.sequences import (
    RunningDifference,
    SequenceState,
    decide,
    verdict,
)

RUNS = 1000
LOOKS = 1500
Z95 = 1.959963984540054


def _bernoulli(p: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.random((RUNS, LOOKS)) < p).astype(np.float64)


def _sequence(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sequence after each sample, fed in two batches as a live run feeds it."""
    state = SequenceState(x.shape[0])
    half = x.shape[1] // 3
    first = state.update(x[:, :half], path=True)
    second = state.update(x[:, half:], path=True)
    assert first is not None and second is not None
    return np.concatenate([first[0], second[0]], 1), np.concatenate([first[1], second[1]], 1)


def _peeked_normal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-n 95 % normal interval, recomputed at every sample (the wrong thing)."""
    n = np.arange(1, x.shape[1] + 1, dtype=np.float64)
    mean = np.cumsum(x, axis=1) / n
    var = np.maximum(np.cumsum(x * x, axis=1) / n - mean**2, 0.0)
    half = Z95 * np.sqrt(var / n)
    return mean - half, mean + half


def _missed(low: np.ndarray, high: np.ndarray, mean: float) -> float:
    """Share of runs whose sequence excluded the true mean at some look."""
    return float(((low > mean) | (high < mean)).any(axis=1).mean())


CASES = [
    ("bernoulli 0.02", 0.02, lambda rng: _bernoulli(0.02, rng)),
    ("bernoulli 0.5", 0.5, lambda rng: _bernoulli(0.5, rng)),
    ("bernoulli 0.97", 0.97, lambda rng: _bernoulli(0.97, rng)),
    ("beta(2, 5)", 2 / 7, lambda rng: rng.beta(2.0, 5.0, (RUNS, LOOKS))),
    ("beta(0.3, 0.3)", 0.5, lambda rng: rng.beta(0.3, 0.3, (RUNS, LOOKS))),
]


@pytest.mark.parametrize(("mean", "draw"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_true_mean_stays_inside_at_every_look_in_95_percent_of_runs(
    mean: float, draw: object
) -> None:
    """Over 1000 runs of 1500 samples, the truth leaves the sequence in at most 5 % of them."""
    x = draw(np.random.default_rng(7))  # type: ignore[operator]
    low, high = _sequence(x)
    assert _missed(low, high, mean) <= 0.05
    assert (np.diff(high - low, axis=1) <= 1e-12).all()  # looking again never widens it


def test_the_coverage_check_fails_a_fixed_n_interval_peeked_at_every_sample() -> None:
    """The same check on the normal interval peeked at every sample misses far more than 5 %."""
    x = _bernoulli(0.5, np.random.default_rng(7))
    low, high = _peeked_normal(x)
    assert _missed(low[:, 20:], high[:, 20:], 0.5) > 0.2  # from n = 20, where it is defined


def _wilson_width(p: float, n: int) -> float:
    centre_spread = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return 2 * centre_spread / (1 + Z95**2 / n)


@pytest.mark.parametrize(("p", "bound"), [(0.5, 2.3), (0.05, 2.3)])
def test_at_1000_samples_it_is_at_most_a_bounded_factor_wider_than_wilson(
    p: float, bound: float
) -> None:
    """At n = 1000 the sequence is under ``bound`` times the fixed-n Wilson interval's width
    (about 2x measured): valid at every look costs a bounded factor, not a useless interval."""
    x = (np.random.default_rng(3).random((RUNS, 1000)) < p).astype(np.float64)
    state = SequenceState(RUNS)
    state.update(x)
    ratio = float((state.high - state.low).mean()) / _wilson_width(p, 1000)
    assert 1.0 < ratio < bound


def _paired(diff: float, rng: np.random.Generator, looks: int = LOOKS) -> np.ndarray:
    """Per-doc differences new - baseline of two correlated 0/1 metrics with mean ``diff``:
    a doc flips right-to-wrong with probability 0.1, wrong-to-right with 0.1 + diff."""
    u = rng.random((RUNS, looks))
    return np.where(u < 0.1 + diff, 1.0, np.where(u > 0.9, -1.0, 0.0))


def _ever(diff: np.ndarray, margin: float) -> np.ndarray:
    """For each run, the verdicts seen at any look: a (runs, 4) boolean of
    better, worse, equivalent, undecided."""
    low, high = RunningDifference(margin, streams=diff.shape[0]).update(diff, path=True) or ((), ())
    seen = decide(low, high, margin)
    return np.stack([(seen == v).any(axis=1) for v in ("better", "worse", "equivalent")], 1)


def test_false_decisions_under_a_true_null_difference_are_at_most_5_percent() -> None:
    """Same accuracy, monitored at every sample: better or worse is ever declared in <= 5 %."""
    ever = _ever(_paired(0.0, np.random.default_rng(11)), margin=0.05)
    false = float((ever[:, 0] | ever[:, 1]).mean())
    assert false <= 0.05


def test_a_real_difference_gets_decided_with_the_right_sign() -> None:
    """A new run 10 points better is decided better in most runs, and never worse."""
    ever = _ever(_paired(0.1, np.random.default_rng(5)), margin=0.01)
    assert ever[:, 0].mean() >= 0.9
    assert not ever[:, 1].any()
    worse = _ever(-_paired(0.1, np.random.default_rng(5)), margin=0.01)
    assert worse[:, 1].mean() >= 0.9 and not worse[:, 0].any()


def test_equal_runs_get_decided_equivalent_within_the_margin() -> None:
    """Runs that differ on few docs are decided equivalent within a 0.05 margin (by the last
    look: a sequence only narrows, so a verdict once reached stays or sharpens)."""
    u = np.random.default_rng(9).random((RUNS, 3000))
    diff = np.where(u < 0.01, 1.0, np.where(u > 0.99, -1.0, 0.0))
    sequence = RunningDifference(0.05, streams=RUNS)
    sequence.update(diff)
    low, high = 2.0 * sequence.state.low - 1.0, 2.0 * sequence.state.high - 1.0
    assert (decide(low, high, 0.05) == "equivalent").mean() >= 0.9


def test_verdict_names_each_case() -> None:
    """One sequence: above 0 better, below 0 worse, inside the margin equivalent."""
    assert verdict(0.01, 0.2, 0.05) == "better"
    assert verdict(-0.2, -0.01, 0.05) == "worse"
    assert verdict(-0.04, 0.03, 0.05) == "equivalent"
    assert verdict(-0.1, 0.03, 0.05) == "undecided"


def test_values_outside_the_unit_interval_are_refused() -> None:
    """A sequence here is for [0, 1]: 1.5 is a ValueError, not a wrong interval."""
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SequenceState().update([0.5, 1.5])


def _by_the_paper(x: list[float], alpha: float = 0.05) -> tuple[float, float]:
    """Theorem 2 of Waudby-Smith & Ramdas (2024), one sample at a time, written out plainly."""
    level = math.log(2 / alpha)
    total = squares = bet = weighted = penalty = 0.0
    mu_before, var_before = 0.5, 0.25
    low, high = 0.0, 1.0
    for t, value in enumerate(x, start=1):
        lam = min(math.sqrt(2 * level / (var_before * t * math.log(1 + t))), 0.5)
        penalty += 4 * (value - mu_before) ** 2 * (-math.log(1 - lam) - lam) / 4
        bet += lam
        weighted += lam * value
        total += value
        mu = (0.5 + total) / (t + 1)
        squares += (value - mu) ** 2
        mu_before, var_before = mu, (0.25 + squares) / (t + 1)
        centre, radius = weighted / bet, (level + penalty) / bet
        low, high = max(low, centre - radius), min(high, centre + radius)
    return low, high


def test_the_batched_update_is_the_papers_sequence_sample_by_sample() -> None:
    """Fed in uneven batches, the vectorised sums give exactly the paper's per-sample sequence
    (so every bet uses only the samples before it)."""
    rng = np.random.default_rng(1)
    x = rng.beta(0.7, 1.3, 500)
    state = SequenceState()
    for part in np.split(x, [1, 2, 40, 41, 300]):
        state.update(part)
    assert state.bounds() == pytest.approx(_by_the_paper(list(x)), abs=1e-12)
