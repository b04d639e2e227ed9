"""A task with more than WIDE_METRICS metric names stores its metrics as (name, value) pairs,
on the live path and the two passes alike, readable back to every logged value; and 100,000
names cost the tracker and its details worker less than 500 MB each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream._messages import ENCODER, SampleBatch, ScoredSample, TasksDeclared
from evalstream.details.parquet import segment_to_parquet
from evalstream.details.protocol import Output
from evalstream.details.wide import WIDE_METRICS, WideColumn, is_pairs, pairs_array, pairs_type
from evalstream.details.worker import Worker

SCRIPTS = Path(__file__).resolve().parent.parent.parent / "scripts"
ROWS = 400


def metrics_of(task: str, i: int) -> dict[str, Any]:
    """Sample ``i``'s metrics in each task of the workload."""
    if task == "w|grow|0":  # one new name per sample: the first batches fit a struct
        return {f"g{i}": i}
    if task == "w|born|0":  # more names than the bound in the first batch already
        return {f"m{i}_{k}": k / 2 for k in range(20)} | {"acc": i % 2 == 0}
    if task == "w|text|0":  # wide, and a value that is no number: values as JSON text
        return {f"t{i}": 1.5, "pair": ["a", i]} if i % 3 else {f"t{i}": "low"}
    return {f"n{i % WIDE_METRICS}": float(i)}  # w|narrow|0: exactly the bound, a struct


TASKS = ["w|grow|0", "w|born|0", "w|text|0", "w|narrow|0"]


async def _save(out: Path, layout: str) -> dict[str, str]:
    async with EvaluationTracker(
        out, save_details=True, details_layout=layout, batch_size=16
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/wide"))
        await tracker.log_tasks([TaskSpec(name=t, categories=["generative"]) for t in TASKS])
        for i in range(ROWS):
            doc = Doc(query=f"q{i}", choices=["a"], gold_index=0, id=str(i))
            for task in TASKS:
                await tracker.log_sample(
                    task, doc, [ModelResponse(result=["a"])], metrics_of(task, i)
                )
        result = await tracker.save()
    return result.details_paths


def _as_dict(value: Any, text: bool) -> dict[str, Any]:
    return {p["name"]: json.loads(p["value"]) if text else p["value"] for p in value}


@pytest.mark.parametrize("layout", ["flat", "lighteval"])
def test_wide_tasks_store_pairs_that_read_back_to_every_value(tmp_path: Path, layout: str) -> None:
    """Past the bound, pairs (float64 or JSON text values); at the bound, lighteval's struct."""
    paths = anyio.run(_save, tmp_path, layout)
    column = "metrics" if layout == "flat" else "metric"
    for task in TASKS:
        table = pq.read_table(paths[task])
        kind = table.schema.field(column).type
        assert table.num_rows == ROWS
        if task == "w|narrow|0":
            assert pa.types.is_struct(kind) and kind.num_fields == WIDE_METRICS
            continue
        text = task == "w|text|0"
        assert kind == pairs_type(pa.string() if text else pa.float64()), (task, kind)
        rows = table.column(column).to_pylist()
        for i, value in enumerate(rows):
            logged = metrics_of(task, i)
            assert _as_dict(value, text) == (
                logged if text else {k: float(v) for k, v in logged.items()}
            )


def _worker_tables(batches: list[list[ScoredSample]]) -> tuple[bool, pa.Table, pa.Table]:
    """Feed a worker, convert; (live file kept, the file written, the two passes' table)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        worker = Worker(root / "work", keep_rows=True)
        worker.hold_rows = 0  # one ingest per batch: a later batch changes the schema
        spec = TaskSpec(name="t|0", categories=["generative"])
        worker.message(ENCODER.encode(TasksDeclared(tasks=[spec])))
        for batch in batches:
            worker.guarded(ENCODER.encode(SampleBatch(samples=batch)))
        worker.sync()
        worker.close()
        live = worker.tasks["t|0"].live
        kept = live is not None and not live.abandoned
        written = worker.convert(Output(root=str(root / "out"), model_name="org/m", date_id="d"))
        assert written.error is None
        slow = root / "slow.parquet"
        segment_to_parquet(worker.tasks["t|0"].segment, slow)
        return kept, pq.read_table(root / "out" / written.paths["t|0"]), pq.read_table(slow)


def _scored(i: int, metrics: dict[str, Any]) -> ScoredSample:
    doc = Doc(query=f"q{i}", choices=["a"], gold_index=0, id=str(i))
    outputs = (ModelResponse(result=["a"]),)
    return ScoredSample(task_name="t|0", doc=doc, outputs=outputs, metrics=metrics)


def test_a_live_wide_file_equals_the_two_passes() -> None:
    """Born wide, the live file is kept and is the two passes' table; a later text value
    abandons it for the two passes, which store every value as JSON text."""
    wide = [
        [_scored(i, {f"m{i}_{k}": k for k in range(30)}) for i in range(b, b + 10)] for b in (0, 10)
    ]
    kept, live, slow = _worker_tables(wide)
    assert kept and live.equals(slow)
    assert live.schema.field("metrics").type == pairs_type(pa.float64())
    text = [*wide, [_scored(20, {"x": "yes"})]]
    kept, written, slow = _worker_tables(text)
    assert not kept and written.equals(slow)
    assert written.schema.field("metrics").type == pairs_type(pa.string())
    assert written.column("metrics")[20].as_py() == [{"name": "x", "value": '"yes"'}]


def test_the_bound_and_the_values_float64_cannot_hold() -> None:
    """257 names make a column wide, 256 do not; a null row stays null; an int past 2**53
    keeps its digits as JSON text."""
    column = WideColumn()
    assert not column.see([{f"n{k}": 1 for k in range(WIDE_METRICS)}])
    assert column.see([{"one more": 1}]) and column.kind() == pairs_type(pa.float64())
    big = 2**53 + 1
    rows = [{"big": big}, None, {}]
    grown = WideColumn()
    grown.see([{f"n{k}": 1 for k in range(WIDE_METRICS + 1)}, *rows])
    kind = grown.kind()
    assert kind == pairs_type(pa.string()) and is_pairs(kind)
    array = pairs_array(rows, kind)
    assert array.to_pylist() == [[{"name": "big", "value": str(big)}], None, []]
    with pytest.raises(pa.ArrowInvalid):
        pairs_array(rows, pairs_type(pa.float64()))


def test_a_hundred_thousand_metric_names_stay_within_memory() -> None:
    """1,000 samples with 100 new metric names each: each process's peak under 500 MB (before
    the pairs, the details worker peaked at 2.4 GB and save() took 25-30 s)."""
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_wide_metrics.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["rows"] == 1000 and found["parquet_columns"] < 40, found
    assert found["peak_worker_mb"] < 500, found
    assert found["peak_tracker_mb"] < 500, found
