"""Which metrics get a sequence, and which samples a baseline pairs, in ``stats.live``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from evalstream.stats.live import BaselineDocs, LiveStats
from evalstream.stats.sequences import RunningMean, SequenceState


def _col(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _pair(live: LiveStats, samples: list[tuple[str, dict[str, Any], str]]) -> None:
    """Pair a batch as the metrics actor does: with each all-numbers column of it."""
    columns: dict[tuple[str, str], list[Any]] = {}
    for task, metrics, _ in samples:
        for metric, value in metrics.items():
            columns.setdefault((task, metric), []).append(value)
    numeric = {
        k: np.asarray(v, dtype=np.float64)
        for k, v in columns.items()
        if all(isinstance(x, int | float) for x in v)
    }
    live.pair(samples, numeric)


def test_a_metric_leaves_the_estimates_for_good_once_a_value_is_outside_0_1() -> None:
    """[0, 1] so far: a sequence; then 1.7 (or NaN): gone, and values in range do not bring it
    back (its sequence would have been built under a bound the data broke)."""
    live = LiveStats()
    live.add("t", "acc", _col(1, 0, 1))
    live.add("t", "score", _col(0.2, 0.9))
    assert set(live.estimates()["t"]) == {"acc", "score"}
    live.add("t", "score", _col(0.5, 1.7))
    live.add("t", "acc", _col(math.nan))
    assert live.estimates() == {}
    live.add("t", "score", _col(0.5))
    live.add("t", "acc", _col(1.0))
    assert live.estimates() == {}


def test_the_estimate_is_the_plain_mean_inside_its_sequence() -> None:
    """``mean`` is the plain mean over ``n``; the sequence holds it."""
    live = LiveStats()
    values = (np.random.default_rng(0).random(3000) < 0.3).astype(np.float64)
    for part in np.split(values, 30):
        live.add("t", "acc", part)
    got = live.estimates()["t"]["acc"]
    assert got.n == 3000 and math.isclose(got.mean, values.mean())
    assert 0.0 < got.low < got.mean < got.high < 1.0


def test_deferred_batches_give_the_sequence_applied_at_once() -> None:
    """Batches wait and are applied together: the sequence is the same as fed at once."""
    values = np.random.default_rng(2).beta(2, 3, 20_000)
    running = RunningMean()
    for part in np.array_split(values, 77):
        running.update(part)
    direct = SequenceState()
    direct.update(values)
    got = running.estimate()
    assert (got.low, got.high) == pytest.approx(direct.bounds(), abs=1e-12)


def test_pairs_only_docs_the_baseline_has_and_values_both_in_0_1() -> None:
    """A doc the baseline lacks is not paired; a baseline value outside [0, 1] ends that
    metric's comparison, not its estimate."""
    base = BaselineDocs()
    base.add_task("t", ["a", "b", "a"], [{"acc": 0, "len": 4}, {"acc": 1}, {"acc": 1}])
    live = LiveStats(base, margin=0.1)
    _pair(live, [("t", {"acc": 1, "len": 0.5}, "a"), ("t", {"acc": 1}, "zzz"), ("u", {}, "a")])
    live.add("t", "len", _col(0.5))
    versus = live.versus()["t"]
    assert set(versus) == {"acc"} and (versus["acc"].diff, versus["acc"].n) == (1.0, 1)
    _pair(live, [("t", {"acc": 0}, "a"), ("t", {"acc": 1}, "b")])  # "a" again: its 2nd repeat
    assert (live.versus()["t"]["acc"].diff, live.versus()["t"]["acc"].n) == (0.0, 3)
    assert "len" in live.estimates()["t"]


def test_no_baseline_no_comparison() -> None:
    """Without a baseline, pairing does nothing."""
    live = LiveStats()
    _pair(live, [("t", {"acc": 1}, "a")])
    assert live.versus() == {}


def test_a_baseline_doc_without_the_metric_is_not_paired_for_it() -> None:
    """The baseline doc has ``em`` but no ``acc``: the sample pairs on ``em`` only."""
    base = BaselineDocs()
    base.add_task("t", ["a", "b"], [{"em": 1}, {"acc": 0, "em": 0, "note": "text"}])
    live = LiveStats(base, margin=0.1)
    _pair(live, [("t", {"acc": 1, "em": 1}, "a"), ("t", {"acc": 1, "em": 1}, "b")])
    versus = live.versus()["t"]
    assert (versus["acc"].n, versus["acc"].diff) == (1, 1.0)
    assert (versus["em"].n, versus["em"].diff) == (2, 0.5)
