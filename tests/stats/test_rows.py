"""The one results row (which keys are metrics, the 95 % interval) and the layout parsers."""

from __future__ import annotations

import glob
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._naming import (
    RESULTS_GLOB,
    check_model_name,
    check_task_name,
    details_dir,
    details_glob,
    details_name,
    details_path,
    details_task,
    make_date_id,
    model_details_dir,
    results_date_id,
    results_path,
    results_root,
)
from evalstream.stats.rows import Z95, MetricRow, metric_rows

_NAMES = st.one_of(
    st.sampled_from(["acc", "stderr", "stderr_acc", "acc_stderr_norm", "_stderrx"]),
    st.text(alphabet="abcdz_:|", min_size=1, max_size=8),
).filter(lambda n: not n.endswith("_stderr"))
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**6), max_value=10**6),
)
_VALUES = st.one_of(_NUMBERS, st.none(), st.booleans(), st.text(max_size=3))
_ABSENT = object()


@st.composite
def _results(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], list[tuple[Any, ...]]]:
    """A results dict built from the rows it should read back as (what the old copies computed)."""
    results: dict[str, dict[str, Any]] = {}
    expected: list[tuple[Any, ...]] = []
    for task in draw(st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=4)):
        row: dict[str, Any] = {}
        metrics = draw(st.lists(_NAMES, unique=True, max_size=5))
        for metric in metrics:
            value = draw(_VALUES)
            stderr = draw(st.one_of(st.just(_ABSENT), _VALUES))
            row[metric] = value
            if stderr is not _ABSENT:
                row[f"{metric}_stderr"] = stderr
            v = _number(value)
            se = _number(None if stderr is _ABSENT else stderr)
            finite = v is not None and se is not None and math.isfinite(v) and math.isfinite(se)
            low = v - Z95 * se if finite else None  # type: ignore[operator]
            high = v + Z95 * se if finite else None  # type: ignore[operator]
            expected.append((task, metric, v, se, low, high))
        for orphan in draw(st.lists(_NAMES, max_size=2)):  # a stderr of no metric is no row
            if orphan not in metrics:
                row[f"{orphan}_stderr"] = draw(_NUMBERS)
        results[task] = dict(sorted(row.items(), key=lambda kv: draw(st.integers(0, 3))))
    return results, expected


def _number(x: Any) -> float | None:
    return None if isinstance(x, bool) or not isinstance(x, int | float) else x


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """NaN != NaN, so rows are compared by repr of their cells."""
    return tuple(repr(cell) for cell in row)


@settings(max_examples=300, deadline=None)
@given(_results())
def test_rows_are_the_metrics_with_their_interval(case: Any) -> None:
    results, expected = case
    rows = metric_rows(results)
    assert all(isinstance(r, MetricRow) for r in rows)
    assert not any(r.metric.endswith("_stderr") for r in rows)
    got = [
        _key((r.task, r.metric, r.value, r.stderr, r.low, r.high))
        for r in sorted(rows, key=lambda r: (r.task, r.metric))
    ]
    assert got == [_key(e) for e in sorted(expected, key=lambda e: (e[0], e[1]))]
    for r in rows:
        assert (r.low is None) == (r.high is None)
        assert r.half_width == (Z95 * r.stderr if r.low is not None else 0.0)  # type: ignore[operator]


def test_rows_keep_the_order_of_the_results() -> None:
    results = {"b": {"acc": 0.5, "acc_stderr": 0.1, "em": 1}, "a": {"f1": 0.25}}
    assert [(r.task, r.metric) for r in metric_rows(results)] == [
        ("b", "acc"),
        ("b", "em"),
        ("a", "f1"),
    ]
    assert metric_rows(results)[0] == MetricRow(
        "b", "acc", 0.5, 0.1, 0.5 - Z95 * 0.1, 0.5 + Z95 * 0.1
    )


def test_no_interval_without_a_finite_value_and_stderr() -> None:
    """A NaN or infinite bound is no interval; neither is a missing or non-number stderr."""
    nan, inf = float("nan"), float("inf")
    row = {"a": nan, "a_stderr": 0.1, "b": 0.5, "b_stderr": inf, "c": 0.5, "d": 0.5}
    row |= {"d_stderr": None, "e": True, "e_stderr": 0.1, "f": 0.5, "f_stderr": False}
    got = {r.metric: (r.low, r.high, r.half_width) for r in metric_rows({"t": row})}
    assert got == dict.fromkeys("abcdef", (None, None, 0.0))


# --- the folder layout: the readers' globs and parsers undo what the builders wrote -----------

_SEGMENT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and not s.startswith("."))
_MODELS = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join).map(check_model_name)
_TASKS = st.lists(_SEGMENT, min_size=1, max_size=3).map("|".join).map(check_task_name)
_DATE_IDS = st.datetimes().map(make_date_id)


@settings(max_examples=60, deadline=None)
@given(_MODELS, st.lists(_TASKS, min_size=1, max_size=3, unique=True), _DATE_IDS)
def test_layout_parsers_invert_the_builders(model: str, tasks: list[str], date_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = root / results_path(model, date_id)
        results.parent.mkdir(parents=True)
        results.write_text("{}")
        for task in tasks:
            details = root / details_path(model, date_id, task)
            details.parent.mkdir(parents=True, exist_ok=True)
            details.write_bytes(b"")
        (root / details_dir(model, date_id) / "README.md").write_text("")  # not a details file
        assert [Path(p) for p in glob.glob(str(root / RESULTS_GLOB), recursive=True)] == [results]
        assert results_date_id(str(results)) == date_id
        assert results_root(str(results), model) == str(root)
        folder = root / details_dir(model, date_id)
        assert (root / model_details_dir(model) / date_id) == folder
        found = {details_task(p.name, date_id) for p in folder.glob(details_glob(date_id))}
        assert found == set(tasks)
        assert details_task("README.md", date_id) is None
        assert details_task(details_name(tasks[0], date_id + "0"), date_id) is None
