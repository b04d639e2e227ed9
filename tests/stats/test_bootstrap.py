"""Tests for the bootstrap: correctness against exact and independent resampling, determinism,
and the memory bound of the chunked paths."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evalstream._errors import ConfigError
from evalstream.stats.aggregations import default_registry, mean_stderr
from evalstream.stats.bootstrap import (
    bootstrap_replicates,
    bootstrap_stderr,
    index_chunks,
)

if TYPE_CHECKING:
    from collections.abc import Callable

REGISTRY = default_registry()
FINITE = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def std_estimate_sd(sigma: float, kurtosis: float, replicates: int) -> float:
    """Monte-Carlo sd of a std from B replicates: s*sqrt((k-1)/(4B)); s/sqrt(2B) if normal."""
    return sigma * math.sqrt(max(kurtosis - 1.0, 0.0) / (4 * replicates))


def kurtosis(values: list[float] | np.ndarray) -> float:
    """Population kurtosis m4/m2² (3 for a normal)."""
    arr = np.asarray(values, dtype=np.float64)
    centred = arr - arr.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**4)) / (m2 * m2) if m2 > 0 else 3.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(FINITE, min_size=2, max_size=60), st.integers(0, 2**32 - 1))
def test_bootstrap_mean_converges_to_analytic(data: list[float], seed: int) -> None:
    """Bootstrap stderr of the mean ~ analytic stderr * sqrt((n-1)/n), within 5 Monte-Carlo sds."""
    x = np.asarray(data)
    assume(np.std(x) > 1e-6 * (1.0 + np.max(np.abs(x))))
    n, replicates = x.size, 4000
    # the bootstrap resamples the empirical distribution, whose variance has divisor n, not n-1
    expected = mean_stderr(x) * math.sqrt((n - 1) / n)
    # kurtosis of a mean of n draws: 3 + (κ_data - 3)/n
    rep_kurtosis = 3.0 + (kurtosis(x) - 3.0) / n
    tolerance = 5 * std_estimate_sd(expected, rep_kurtosis, replicates)
    got = bootstrap_stderr(x, REGISTRY.get("mean"), replicates, seed)
    assert abs(got - expected) <= tolerance


@settings(max_examples=40, deadline=None)
@given(
    st.lists(FINITE, min_size=1, max_size=40),
    st.sampled_from(["mean", "median", "max", "min", "sum"]),
    st.integers(0, 2**32 - 1),
)
def test_same_seed_and_data_give_identical_stderr(data: list[float], name: str, seed: int) -> None:
    """Two runs with the same seed and data return bit-identical stderr."""
    x = np.asarray(data)
    first = bootstrap_stderr(x, REGISTRY.get(name), 50, seed)
    second = bootstrap_stderr(x.copy(), REGISTRY.get(name), 50, seed)
    assert np.array_equal([first], [second], equal_nan=True)


def test_different_seeds_give_different_replicates() -> None:
    """The seed drives the resampling: two seeds give different replicates."""
    x = np.arange(50.0)
    a = bootstrap_replicates(x, REGISTRY.get("mean"), 20, 1)
    b = bootstrap_replicates(x, REGISTRY.get("mean"), 20, 2)
    assert not np.array_equal(a, b)


def _exact_bootstrap(data: list[float], stat: str) -> dict[float, float]:
    """Exact bootstrap distribution of a statistic by enumerating all n^n resamples."""
    n = len(data)
    funcs: dict[str, Callable[[list[float]], float]] = {
        "median": statistics.median,
        "max": max,
        "min": min,
    }
    resamples = itertools.product(range(n), repeat=n)
    counts = Counter(funcs[stat]([data[i] for i in idx]) for idx in resamples)
    total = n**n
    return {value: count / total for value, count in counts.items()}


@pytest.mark.parametrize(
    ("data", "stat"),
    [
        ([1.0, 2.0, 5.0, 11.0], "median"),
        ([3.0, -1.0, 7.5, 2.0, 4.0], "median"),
        ([1.0, 1.0, 2.0, 9.0], "median"),
        ([1.0, 2.0, 5.0, 11.0], "max"),
        ([1.0, 2.0, 5.0, 11.0], "min"),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_order_statistic_bootstrap_matches_exact_distribution(
    data: list[float], stat: str, seed: int
) -> None:
    """The O(1)-per-replicate median/min/max path reproduces the exact n^n bootstrap law."""
    exact = _exact_bootstrap(data, stat)
    replicates = 20_000
    reps = bootstrap_replicates(np.asarray(data), REGISTRY.get(stat), replicates, seed)
    seen = Counter(reps.tolist())
    assert set(seen) <= set(exact)
    for value, p in exact.items():  # each outcome's frequency within 5 binomial sds
        assert abs(seen[value] / replicates - p) <= 5 * math.sqrt(p * (1 - p) / replicates) + 1e-12
    mean = sum(v * p for v, p in exact.items())
    sigma = math.sqrt(sum((v - mean) ** 2 * p for v, p in exact.items()))
    kurt = sum((v - mean) ** 4 * p for v, p in exact.items()) / sigma**4
    stderr = float(np.std(reps, ddof=1))
    assert abs(stderr - sigma) <= 5 * std_estimate_sd(sigma, kurt, replicates)


@pytest.mark.parametrize("n", [101, 100])
def test_median_stderr_matches_independent_python_loop(n: int) -> None:
    """Our median stderr agrees with a plain random.choices + statistics.median loop."""
    data = np.random.default_rng(n).normal(size=n).tolist()
    replicates = 2000
    rnd = random.Random(7)
    loop = [statistics.median(rnd.choices(data, k=n)) for _ in range(replicates)]
    loop_se = statistics.stdev(loop)
    ours = bootstrap_stderr(np.asarray(data), REGISTRY.get("median"), replicates, 1234)
    # two independent estimates: the sd of their difference is √2 times one estimate's sd
    tolerance = 5 * math.sqrt(2) * std_estimate_sd(loop_se, kurtosis(loop), replicates)
    assert abs(ours - loop_se) <= tolerance


def test_looped_and_vectorised_callables_see_the_same_resamples() -> None:
    """A plain callable and its vectorised form give bit-identical replicates."""
    registry = default_registry()
    registry.register("median_plain", np.median)
    registry.register("median_rows", lambda a: np.median(a, axis=1), vectorised=True)
    x = np.random.default_rng(3).normal(size=37)
    plain = bootstrap_replicates(x, registry.get("median_plain"), 300, 9)
    rows = bootstrap_replicates(x, registry.get("median_rows"), 300, 9)
    assert np.array_equal(plain, rows)


def test_fast_median_path_agrees_with_resampling_path() -> None:
    """Order-statistic and generic resampling median stderr agree within Monte-Carlo error."""
    registry = default_registry()
    registry.register("median_rows", lambda a: np.median(a, axis=1), vectorised=True)
    x = np.random.default_rng(4).exponential(size=500)
    slow = bootstrap_replicates(x, registry.get("median_rows"), 4000, 5)
    fast = bootstrap_stderr(x, registry.get("median"), 4000, 5)
    slow_se = float(np.std(slow, ddof=1))
    assert abs(fast - slow_se) <= 5 * math.sqrt(2) * std_estimate_sd(slow_se, kurtosis(slow), 4000)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 120), st.integers(1, 5000))
def test_index_chunks_respect_the_element_bound(n: int, iters: int, chunk_elems: int) -> None:
    """Each chunk holds ≤ max(chunk_elems, n) indices in [0, n), iters rows in all, same stream."""
    chunks = list(index_chunks(n, iters, np.random.default_rng(0), chunk_elems=chunk_elems))
    assert all(c.size <= max(chunk_elems, n) and c.shape[1] == n for c in chunks)
    stacked = np.concatenate(chunks)
    assert stacked.shape == (iters, n)
    assert stacked.min() >= 0 and stacked.max() < n
    (whole,) = index_chunks(n, iters, np.random.default_rng(0), chunk_elems=n * iters)
    assert np.array_equal(stacked, whole)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("sum", np.linspace(-3.0, 8.0, 53)),
        ("mean", np.linspace(-3.0, 8.0, 53)),
        ("corpus_f1", [("a", "a"), ("b", "a"), ("c", "c"), ("a", "b")] * 9),
        ("perplexity", [(-2.0, 3), (-5.5, 4), (-0.5, 1)] * 11),
    ],
)
def test_small_chunks_give_the_same_result_as_one_chunk(name: str, values: object) -> None:
    """The chunk size bounds memory without changing the result."""
    agg = REGISTRY.get(name)
    small = bootstrap_replicates(values, agg, 200, 3, chunk_elems=7)  # type: ignore[arg-type]
    large = bootstrap_replicates(values, agg, 200, 3)  # type: ignore[arg-type]
    assert np.array_equal(small, large)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("corpus_f1", [("a", "a"), ("b", "a"), ("c", "c"), ("a", "b"), ("b", "b")] * 5),
        ("perplexity", [(-2.0, 3), (-5.5, 4), (-0.5, 1), (-9.0, 6)] * 6),
        ("mean_f1", [("the cat", "a cat"), ("dog", "cat"), ("big red", ["red", "big red"])] * 7),
    ],
)
def test_encoded_corpus_bootstrap_equals_a_python_loop(name: str, values: list[object]) -> None:
    """Numpy-encoded corpus replicates equal calling the corpus function on each resample."""
    registry = default_registry()
    registry.register("looped", registry.get(name).fn, corpus=True)
    encoded = bootstrap_replicates(values, registry.get(name), 150, 11)
    looped = bootstrap_replicates(values, registry.get("looped"), 150, 11)
    np.testing.assert_allclose(encoded, looped, rtol=1e-12, atol=1e-15)


def test_stderr_is_std_of_replicates_not_divided_by_sqrt_iters() -> None:
    """stderr = std(replicates, ddof=1), lighteval's extra 1/√iters is not applied."""
    x = np.random.default_rng(8).normal(size=99)
    reps = bootstrap_replicates(x, REGISTRY.get("median"), 1000, 2)
    assert bootstrap_stderr(x, REGISTRY.get("median"), 1000, 2) == float(np.std(reps, ddof=1))


def test_fewer_than_two_resamples_is_a_config_error() -> None:
    """iters < 2 cannot give a standard deviation and is refused."""
    with pytest.raises(ConfigError, match="at least 2"):
        bootstrap_stderr(np.arange(5.0), REGISTRY.get("median"), 1, 0)
