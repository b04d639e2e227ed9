"""Everything is checked at log_sample, before the sample is acknowledged: a refused sample
raises an InputError naming the task, the field and the fix, is not journaled, and the run goes
on to save every other sample."""

from __future__ import annotations

import decimal
import fractions
import json
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pyarrow.parquet as pq
import pytest

from evalstream import (
    ConfigError,
    Doc,
    EvaluationTracker,
    InputError,
    InvalidSampleError,
    MetricValueError,
    ModelInfo,
    ModelResponse,
    TaskSpec,
)
from evalstream.durability.segments import read_journal

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

TASK = TASKS[0]
OUT = [ModelResponse(result=[-1.0])]


def _nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return value


@asynccontextmanager
async def _open(tmp_path: Path, **kwargs: Any) -> AsyncIterator[EvaluationTracker]:
    async with EvaluationTracker(tmp_path, batch_size=4, keep_workdir=True, **kwargs) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TASK])
        yield tracker


async def _good(tracker: EvaluationTracker, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        doc, outputs, metrics = sample(rng, TASK, i)
        await tracker.log_sample(TASK.name, doc, outputs, metrics)


def _journaled(workdir: Path) -> list[str]:
    """Queries of every sample in the journal."""
    queries = []
    for message in read_journal(workdir / "journal").messages:
        for s in getattr(message, "samples", ()):
            queries.append(s.doc.query)
    return queries


BAD: list[tuple[str, dict[str, Any], type[InputError], str]] = [
    ("decimal", {"metrics": {"acc": decimal.Decimal("0.5")}}, MetricValueError, r"'acc'.*float\("),
    ("metrics list", {"metrics": ["acc"]}, InvalidSampleError, "metrics is a list"),
    ("metric name", {"metrics": {1: 1.0}}, MetricValueError, "names are strings"),
    ("huge int", {"metrics": {"acc": 10**400}}, MetricValueError, "overflows"),
    ("object", {"metrics": {"acc": object()}}, MetricValueError, "not supported"),
    ("output type", {"outputs": [object()]}, InvalidSampleError, "not a ModelResponse"),
    ("output field", {"outputs": [{"reslt": 1}]}, InvalidSampleError, "unknown field"),
    ("doc type", {"doc": 42}, InvalidSampleError, "not a Doc"),
    ("surrogate", {"doc": Doc(query="bad \ud800")}, InvalidSampleError, r"doc\.query.*surrogate"),
    (
        "surrogate key",
        {"doc": Doc(query="q", specific={"k\udc80": 1})},
        InvalidSampleError,
        r"doc\.specific key.*surrogate",
    ),
    (
        "surrogate output",
        {"outputs": [ModelResponse(result=["ok", "x\udfff"])]},
        InvalidSampleError,
        r"outputs\[0\]\.result\[1\].*surrogate",
    ),
    (
        "deep specific",
        {"doc": Doc(query="q", specific={"x": _nested(10_000, "dict")})},
        InvalidSampleError,
        r"doc\.specific is nested deeper",
    ),
    (
        "deep result",
        {"outputs": [ModelResponse(result=_nested(500, "list"))]},
        InvalidSampleError,
        r"outputs\[0\]\.result is nested deeper",
    ),
    (
        "big int inside",
        {"doc": Doc(query="q", specific={"k": [2**70]})},
        InvalidSampleError,
        r"doc\.specific\['k'\]\[0\].*64 bits",
    ),
    ("judgement", {"judgement": "yes"}, InvalidSampleError, "judgement"),
    ("empty metric name", {"metrics": {"": 1.0}}, MetricValueError, "metric name is empty"),
    (
        "stderr of acc",
        {"metrics": {"acc": 1.0, "acc_stderr": 0.0}},
        MetricValueError,
        r"'acc_stderr' collides with the standard error .* from metric 'acc'",
    ),
]


async def test_a_refused_sample_names_task_and_field_and_the_run_goes_on(tmp_path: Path) -> None:
    """Each hostile input raises its InputError subclass at the call, naming the task and the
    field; none is journaled and every other sample is saved."""
    with anyio.fail_after(60):
        async with _open(tmp_path) as tracker:
            await _good(tracker, 6)
            for case, change, error, match in BAD:
                args: dict[str, Any] = {
                    "doc": Doc(query=f"refused {case}"),
                    "outputs": OUT,
                    "metrics": {"acc": 1.0},
                    "judgement": None,
                    **change,
                }
                with pytest.raises(error, match=match) as raised:
                    await tracker.log_sample(
                        TASK.name, args["doc"], args["outputs"], args["metrics"], args["judgement"]
                    )
                assert TASK.name in str(raised.value), case
            await _good(tracker, 5, seed=1)
            await tracker.flush()
            journaled = _journaled(tracker.workdir)
            result = await tracker.save()
    assert result.ok, result.outputs
    assert result.samples[TASK.name] == 11
    assert len(journaled) == 11 and not any(q.startswith("refused") for q in journaled)
    assert pq.read_metadata(result.details_paths[TASK.name]).num_rows == 11


async def test_numpy_and_other_real_numbers_are_accepted_as_numbers(tmp_path: Path) -> None:
    """np.float64/float32/int64/bool_, 0-d arrays and Fractions are numbers, stored as such."""
    values = [
        np.float64(0.25),
        np.float32(0.5),
        np.int64(1),
        np.bool_(True),
        np.array(0.75),
        fractions.Fraction(1, 4),
        10**30,
    ]
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            for i, value in enumerate(values):
                await tracker.log_sample(TASK.name, Doc(query=str(i)), OUT, {"acc": value})
            result = await tracker.save()
    expected = float(np.mean([float(v) for v in values]))
    assert result.results["results"][TASK.name]["acc"] == pytest.approx(expected)
    rows = pq.read_table(result.details_paths[TASK.name]).to_pylist()
    assert sorted(r["metrics"]["acc"] for r in rows) == sorted(float(v) for v in values)


@pytest.mark.parametrize(
    ("first", "then"), [(1.0, "abc"), (1.0, [1.0, 2.0]), (("p", "g"), 0.5), ("txt", True)]
)
async def test_the_first_value_fixes_a_metrics_kind(
    tmp_path: Path, first: object, then: object
) -> None:
    """A metric that changes kind mid-run is refused at the call, naming both kinds; the run
    saves (the poisoned-metric crash of the metrics actor cannot happen)."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await tracker.log_sample(TASK.name, Doc(query="a"), OUT, {"m": first, "acc": 1.0})
            with pytest.raises(MetricValueError, match=r"'m'.*first value in this run"):
                await tracker.log_sample(TASK.name, Doc(query="b"), OUT, {"m": then, "acc": 0.0})
            await tracker.log_sample(TASK.name, Doc(query="c"), OUT, {"m": first, "acc": 0.0})
            other = TaskSpec(name="lb|other|0")
            await tracker.log_tasks([other])
            await tracker.log_sample(other.name, Doc(query="d"), OUT, {"m": then})  # its own kind
            result = await tracker.save()
    assert result.ok and result.samples == {TASK.name: 2, other.name: 1}
    assert result.results["results"][TASK.name]["acc"] == 0.5


async def test_a_refused_sample_fixes_no_kind(tmp_path: Path) -> None:
    """Kinds are learned only from accepted samples: a refused first sample leaves none."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            with pytest.raises(InvalidSampleError):
                await tracker.log_sample(TASK.name, Doc(query="\ud800"), OUT, {"m": "text"})
            await tracker.log_sample(TASK.name, Doc(query="ok"), OUT, {"m": 1.0})
            result = await tracker.save()
    assert result.results["results"][TASK.name]["m"] == 1.0


@pytest.mark.parametrize("depth", [49, 60, 99])
async def test_nesting_parquet_cannot_hold_is_stored_as_json_text(
    tmp_path: Path, depth: int
) -> None:
    """Doc.specific nested 49-99 levels saves, warns, and every file opens with pyarrow."""
    specific = {"d": _nested(depth, "dict"), "l": _nested(depth, "list")}
    with anyio.fail_after(60):
        async with _open(tmp_path) as tracker:
            await tracker.log_sample(TASK.name, Doc(query="deep", specific=specific), OUT, {"a": 1})
            await tracker.log_sample(TASK.name, Doc(query="flat", specific={"d": 1}), OUT, {"a": 0})
            result = await tracker.save()
    assert result.ok
    table = pq.read_table(result.details_paths[TASK.name])  # raised "schema too deep" before
    assert any("specifics" in w and "JSON text" in w for w in result.warnings)
    rows = {r["example"]: r for r in table.to_pylist()}
    assert json.loads(rows["deep"]["specifics"]) == specific


async def test_metric_names_that_collide_with_derived_keys_are_refused(tmp_path: Path) -> None:
    """A metric named like a key derived from another (``_stderr``, ``_weighted``,
    ``_weighted_stderr``), in any task and either order, is refused at the call; the derived
    numbers in the results stay the real ones, and near names are fine."""
    other, third = TaskSpec(name="lb|other|0"), TaskSpec(name="lb|third|0")
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await tracker.log_tasks([other, third])
            await tracker.log_sample(TASK.name, Doc(query="a"), OUT, {"acc": 1.0, "f1_w": 0.5})
            await tracker.log_sample(TASK.name, Doc(query="b"), OUT, {"acc": 0.0, "f1_w": 0.5})
            refused = {
                "acc_stderr": "standard error",
                "acc_weighted": "sample-weighted mean",
                "acc_weighted_stderr": "weighted mean's standard error",
            }
            for name, what in refused.items():
                with pytest.raises(MetricValueError, match=f"'{name}' collides with the {what}"):
                    await tracker.log_sample(other.name, Doc(query=name), OUT, {name: 0.5})
            with pytest.raises(MetricValueError, match="'f1_w_weighted' collides"):
                await tracker.log_sample(other.name, Doc(query="w"), OUT, {"f1_w_weighted": 1})
            await tracker.log_sample(third.name, Doc(query="x"), OUT, {"em_weighted": 1.0})
            with pytest.raises(MetricValueError, match="'em' collides"):  # the other order
                await tracker.log_sample(TASK.name, Doc(query="c"), OUT, {"em": 1.0})
            with pytest.raises(MetricValueError, match="metric name is empty"):
                await tracker.log_sample(other.name, Doc(query="d"), OUT, {"": 1}, scope="details")
            await tracker.log_sample(other.name, Doc(query="e"), OUT, {"acc_norm": 1.0})
            await tracker.log_sample(other.name, Doc(query="f"), OUT, {"acc": 0.5})
            await tracker.log_sample(other.name, Doc(query="f2"), OUT, {"acc": 0.5})
            await tracker.log_sample(  # details-only values derive nothing
                other.name, Doc(query="g"), OUT, {"acc_stderr": 9.0}, scope="details"
            )
            result = await tracker.save()
    rows = result.results["results"]
    assert (rows[TASK.name]["acc_stderr"], rows[other.name]["acc_stderr"]) == (0.5, 0.0)
    assert rows["all"]["acc_stderr"] == pytest.approx(0.25)  # √(0.5² + 0²) / 2
    assert rows["all"]["acc_weighted"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["all", "lb|mmlu:_average|5", "mmlu:_average|0"])
async def test_a_task_named_like_a_derived_row_is_refused(tmp_path: Path, name: str) -> None:
    """``all`` and ``…:_average`` rows are derived from the tasks: a task so named would be
    overwritten, so log_tasks refuses it; ``mmlu:average`` is fine."""
    async with EvaluationTracker(tmp_path) as tracker:
        with pytest.raises(ConfigError, match="name of a row evalstream derives"):
            await tracker.log_tasks([TaskSpec(name=name)])
        await tracker.log_tasks([TaskSpec(name="lb|mmlu:average|5")])
