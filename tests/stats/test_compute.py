"""Tests for metric storage, the aggregation registry, aggregate_metric and derived rows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._errors import ConfigError, MetricValueError
from evalstream.stats.compute import (
    AggregationRegistry,
    DerivedRows,
    MetricStore,
    aggregate_metric,
    default_registry,
    derive_rows,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

NUMERIC = ["mean", "median", "max", "min", "sum"]


def store_of(values: list[object]) -> MetricStore:
    """A store holding the given values, appended one by one."""
    store = MetricStore()
    for v in values:
        store.append(v)
    return store


# ---- MetricStore ------------------------------------------------------------------------


def test_store_grows_past_its_initial_capacity_and_keeps_order() -> None:
    """Appends beyond the initial buffer keep every value, in order, as float64."""
    store = MetricStore()
    for i in range(1000):
        store.append(i if i % 3 else bool(i % 2))
    store.extend_numeric(np.arange(5, dtype=np.int32))
    expected = [float(i if i % 3 else bool(i % 2)) for i in range(1000)] + [0, 1, 2, 3, 4]
    assert len(store) == 1005
    assert store.numeric.dtype == np.float64
    assert store.numeric.tolist() == expected
    assert store.nbytes >= 1005 * 8


def test_store_numeric_view_is_read_only() -> None:
    """Aggregations cannot mutate the stored values through the view."""
    store = store_of([1.0, 2.0])
    with pytest.raises(ValueError, match="read-only"):
        store.numeric[0] = 5.0


def test_store_keeps_corpus_tuples_and_counts_their_memory() -> None:
    """Tuples, lists (stored as tuples) and strings go to the object list."""
    store = store_of([("a", "b"), ["c", "d"], "text"])
    assert store.objects == [("a", "b"), ("c", "d"), "text"]
    assert len(store) == 3 and store.numeric.size == 0
    before = store.nbytes
    store.append(("x" * 1000, "y"))
    assert store.nbytes > before + 1000


@pytest.mark.parametrize("bad", [None, {"a": 1}, 1 + 2j, np.complex128(1j), object(), b"bytes"])
def test_store_refuses_unsupported_values(bad: object) -> None:
    """Values that are neither numbers nor tuples/lists/str raise MetricValueError."""
    with pytest.raises(MetricValueError, match="not supported"):
        MetricStore().append(bad)


def test_store_refuses_mixing_numbers_and_tuples() -> None:
    """One metric holds one kind of value; mixing is reported at the mixing sample."""
    with pytest.raises(MetricValueError, match="one kind"):
        store_of([1.0, ("a", "b")])
    with pytest.raises(MetricValueError, match="one kind"):
        store_of([("a", "b"), 1.0])
    with pytest.raises(MetricValueError, match="1-D numeric"):
        MetricStore().extend_numeric(np.array(["a", "b"]))


def test_store_refuses_an_int_too_large_for_float64() -> None:
    """A Python int beyond float64 range is an input error, not an inf."""
    with pytest.raises(MetricValueError, match="overflows"):
        MetricStore().append(10**400)


# ---- registry ---------------------------------------------------------------------------


def test_unknown_aggregation_is_a_config_error_listing_known_names() -> None:
    """get() of an unknown name raises ConfigError naming the registered aggregations."""
    with pytest.raises(ConfigError, match=r"unknown aggregation 'nope'.*corpus_f1.*median"):
        default_registry().get("nope")


def test_registries_are_independent_and_refuse_silent_override() -> None:
    """A registration stays in its registry; re-registering a name needs replace=True."""
    first, second = default_registry(), AggregationRegistry()
    first.register("p90", lambda v: float(np.quantile(v, 0.9)))
    assert "p90" in first and "p90" not in second and "p90" not in default_registry()
    with pytest.raises(ConfigError, match="replace=True"):
        first.register("mean", np.median)
    first.register("mean", np.median, replace=True)
    assert first.get("mean").fn is np.median and second.get("mean").fn is not np.median
    with pytest.raises(ConfigError, match="only one"):
        first.register("x", np.mean, vectorised=True, corpus=True)


# ---- aggregate_metric -------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=200))
def test_mean_stderr_is_sample_std_over_sqrt_n(data: list[float]) -> None:
    """The mean's stderr is √(Σ(x-x̄)²/(n-1))/√n, computed here with exact sums."""
    n = len(data)
    mean = math.fsum(data) / n
    direct = math.sqrt(math.fsum((x - mean) ** 2 for x in data) / (n - 1) / n)
    result = aggregate_metric(store_of(list(data)), "mean", default_registry())
    assert result.value == pytest.approx(mean, rel=1e-9, abs=1e-6)
    assert result.stderr == pytest.approx(direct, rel=1e-7, abs=1e-6)
    assert result.warning is None


NONFINITE_LISTS = st.lists(
    st.one_of(st.floats(-1e6, 1e6), st.sampled_from([math.nan, math.inf, -math.inf])),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(NONFINITE_LISTS, st.sampled_from(NUMERIC))
def test_nan_and_inf_inputs_never_crash_and_are_reported(data: list[float], name: str) -> None:
    """Non-finite inputs propagate honestly into the value and the warning counts them."""
    result = aggregate_metric(store_of(list(data)), name, default_registry(), bootstrap_iters=20)
    x = np.asarray(data, dtype=np.float64)
    bad = int(np.sum(~np.isfinite(x)))
    if not data:
        assert result.value is not None and math.isnan(result.value)
        assert result.warning is not None and "no values" in result.warning
        return
    with np.errstate(all="ignore"):
        honest = float(getattr(np, name)(x))
    assert result.value is not None
    assert np.array_equal([result.value], [honest], equal_nan=True)
    if bad:
        assert result.warning is not None
        assert f"{bad} of {len(data)} values are non-finite" in result.warning
    elif len(data) == 1:
        assert result.warning is not None and "one sample" in result.warning
    else:
        assert result.warning is None
    assert result.warning is None or " raised " not in result.warning
    assert (result.stderr is None) == (len(data) < 2)


def test_raising_user_aggregation_gives_nan_and_a_warning() -> None:
    """A user aggregation that raises yields NaN, no stderr and a warning naming the error."""
    registry = default_registry()

    def broken(values: object) -> float:
        raise ValueError("bad input shape")

    registry.register("broken", broken)
    result = aggregate_metric(store_of([1.0, 2.0]), "broken", registry, metric_name="acc")
    assert result.value is not None and math.isnan(result.value) and result.stderr is None
    assert result.warning == (
        "aggregation 'broken' of metric 'acc' raised ValueError: bad input shape; value is NaN"
    )


def test_failure_only_while_bootstrapping_keeps_the_value() -> None:
    """An aggregation failing on some resamples keeps its value; stderr is None plus a warning."""
    registry = default_registry()
    data = np.array([1.0, 2.0, 3.0])
    registry.register("picky", lambda v: float(np.mean(v)) if np.array_equal(v, data) else 1 / 0)
    result = aggregate_metric(store_of([1.0, 2.0, 3.0]), "picky", registry)
    assert result.value == 2.0 and result.stderr is None
    assert result.warning is not None and "stderr failed with ZeroDivisionError" in result.warning


@pytest.mark.parametrize(
    ("name", "values"),
    [("sum", [1e308, 1e308]), ("perplexity", [(-1e6, 1), (-1e6, 1)])],
)
def test_overflow_gives_nan_and_a_warning(name: str, values: list[object]) -> None:
    """An overflow inside an aggregation is a failure: NaN and a warning, as in lighteval."""
    result = aggregate_metric(store_of(values), name, default_registry())
    assert result.value is not None and math.isnan(result.value)
    assert result.warning is not None and "overflow" in result.warning


def test_mapping_result_goes_to_extra_without_stderr() -> None:
    """A mapping-returning aggregation fills `extra`, with value and stderr None."""
    registry = default_registry()
    registry.register("prf", lambda v: {"p": float(np.mean(v)), "r": 0.5})
    result = aggregate_metric(store_of([0.0, 1.0]), "prf", registry)
    assert (result.value, result.stderr, result.extra) == (None, None, {"p": 0.5, "r": 0.5})


def test_stderr_absent_for_one_sample_or_disabled_bootstrap() -> None:
    """n ≤ 1 or bootstrap_iters=0 gives stderr None; bootstrap_iters=1 is a config error."""
    registry = default_registry()
    assert aggregate_metric(store_of([3.0]), "median", registry).stderr is None
    assert (
        aggregate_metric(store_of([1.0, 2.0]), "mean", registry, bootstrap_iters=0).stderr is None
    )
    with pytest.raises(ConfigError, match="bootstrap_iters"):
        aggregate_metric(store_of([1.0, 2.0]), "median", registry, bootstrap_iters=1)


def test_kind_mismatch_between_store_and_aggregation_is_reported() -> None:
    """Numbers given to a corpus aggregation (or tuples to a numeric one) give NaN + warning."""
    registry = default_registry()
    numeric = aggregate_metric(store_of([1.0]), "corpus_f1", registry, metric_name="f1")
    tuples = aggregate_metric(store_of([("a", "a")]), "mean", registry, metric_name="acc")
    assert numeric.warning is not None and "needs per-sample tuples" in numeric.warning
    assert tuples.warning is not None and "needs numbers" in tuples.warning


def test_corpus_f1_is_sklearn_macro_f1() -> None:
    """Macro F1 over labels seen as pred or gold: here (2/3 + 1/2 + 0) / 3."""
    pairs: list[object] = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")]
    result = aggregate_metric(store_of(pairs), "corpus_f1", default_registry())
    assert result.value == pytest.approx((2 / 3 + 1 / 2 + 0) / 3, rel=1e-12)
    assert result.stderr is not None and result.stderr > 0


def test_perplexity_family_against_hand_values() -> None:
    """exp(-Σll/Σlen), and bits per byte = -Σll/(Σbytes·ln 2)."""
    pairs: list[object] = [(-2.0, 2), (-4.0, 3)]
    registry = default_registry()
    for name in ("perplexity", "word_perplexity", "byte_perplexity"):
        assert aggregate_metric(store_of(pairs), name, registry).value == pytest.approx(
            math.exp(6 / 5), rel=1e-12
        )
    bpb = aggregate_metric(store_of(pairs), "bits_per_byte", registry).value
    assert bpb == pytest.approx(6 / (5 * math.log(2)), rel=1e-12)


def test_mean_f1_is_mean_of_squad_token_f1_with_analytic_stderr() -> None:
    """Articles/punctuation dropped, best gold taken: F1s 0.8 and 1.0, stderr √0.02/√2."""
    pairs: list[object] = [("The cat sat.", "a cat sat down"), ("Paris", ["London", "paris!"])]
    result = aggregate_metric(store_of(pairs), "mean_f1", default_registry())
    assert result.value == pytest.approx(0.9, rel=1e-12)
    assert result.stderr == pytest.approx(math.sqrt(0.02) / math.sqrt(2), rel=1e-12)


def test_malformed_corpus_sample_gives_nan_and_a_clear_warning() -> None:
    """A sample that is not a pair is named in the warning; the run continues."""
    result = aggregate_metric(store_of([("a", "a"), ("b",)]), "corpus_f1", default_registry())
    assert result.value is not None and math.isnan(result.value)
    assert result.warning is not None and "sample 1 is ('b',)" in result.warning


# ---- derived rows -----------------------------------------------------------------------


def test_derived_rows_follow_lighteval_grouping_with_honest_stderr() -> None:
    """Groups by suite|benchmark|fewshot; mean, √Σse²/k, size-weighted mean; 'all' over tasks."""
    rows: dict[str, Mapping[str, float | None]] = {
        "lb|mmlu:a|5": {"acc": 0.5, "acc_stderr": 0.1},
        "lb|mmlu:b|5": {"acc": 0.7, "acc_stderr": 0.2, "f1": 0.3},
        "lb|mmlu:c|0": {"acc": 0.9, "acc_stderr": 0.05},
        "lb|arc:easy|0": {"acc": 0.4, "acc_stderr": None},
        "lb|arc:challenge|0": {"acc": 0.2, "acc_stderr": 0.1},
        "bbh:x|3": {"em": 0.1, "em_stderr": 0.02},
        "bbh:y|3": {"em": 0.2, "em_stderr": 0.03},
    }
    sizes = {"lb|mmlu:a|5": 100, "lb|mmlu:b|5": 300, "lb|mmlu:c|0": 10, "lb|arc:easy|0": 50}
    sizes |= {"lb|arc:challenge|0": 150, "bbh:x|3": 20, "bbh:y|3": 60}
    out = derive_rows(rows, sizes)
    assert list(out) == ["lb|mmlu:_average|5", "lb|arc:_average|0", "bbh:_average|3", "all"]
    mmlu = out["lb|mmlu:_average|5"]
    assert mmlu["acc"] == pytest.approx(0.6)
    assert mmlu["acc_stderr"] == pytest.approx(math.sqrt(0.01 + 0.04) / 2)
    assert mmlu["acc_weighted"] == pytest.approx((100 * 0.5 + 300 * 0.7) / 400)
    assert mmlu["acc_weighted_stderr"] == pytest.approx(math.sqrt(10**2 + 60**2) / 400)
    assert mmlu["f1"] == pytest.approx(0.3) and "f1_stderr" not in mmlu
    assert out["lb|arc:_average|0"]["acc_stderr"] is None  # one task has no stderr
    assert out["bbh:_average|3"]["em_stderr"] == pytest.approx(math.sqrt(0.02**2 + 0.03**2) / 2)
    everything = out["all"]
    assert everything["acc"] == pytest.approx((0.5 + 0.7 + 0.9 + 0.4 + 0.2) / 5)
    assert everything["acc_stderr"] is None and everything["em"] == pytest.approx(0.15)
    assert DerivedRows(out).rows is out


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1), st.floats(0.001, 0.5), st.integers(1, 10_000), st.sampled_from("ab")
        ),
        min_size=1,
        max_size=12,
    )
)
def test_derived_rows_against_independent_computation(
    tasks: list[tuple[float, float, int, str]],
) -> None:
    """Every derived value equals a direct numpy computation over its member tasks."""
    rows = {f"s|{b}:t{i}|0": {"m": v, "m_stderr": se} for i, (v, se, _, b) in enumerate(tasks)}
    sizes = {f"s|{b}:t{i}|0": w for i, (_, _, w, b) in enumerate(tasks)}
    out = derive_rows(rows, sizes)
    for bench in "ab":
        members = [t for t in tasks if t[3] == bench]
        name = f"s|{bench}:_average|0"
        assert (name in out) == (len(members) > 1)
        for row, group in ((out.get(name), members), (out["all"], tasks)):
            if row is None:
                continue
            v, se, w = (np.array([t[k] for t in group], dtype=float) for k in range(3))
            assert row["m"] == pytest.approx(np.mean(v))
            assert row["m_stderr"] == pytest.approx(np.sqrt(np.sum(se**2)) / len(group))
            assert row["m_weighted"] == pytest.approx(np.average(v, weights=w))
            assert row["m_weighted_stderr"] == pytest.approx(
                np.sqrt(np.sum((w * se) ** 2)) / w.sum()
            )
