"""use_wandb without a tracker client: the checks at construction, lighteval's keys, the details
tables. The real trackio and W&B are driven in test_trackers.py (``-m trackers``)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import ConfigError, EvaluationTracker, ModelInfo, RunResult, SyncEvaluationTracker
from evalstream.details.protocol import DetailsWritten
from evalstream.durability.storage import OutputStore
from evalstream.sinks.trackers import pick_backend
from evalstream.sinks.wandb_output import details_tables, results_keys, table_key

from _workload import TASKS, sample

if TYPE_CHECKING:
    from evalstream._types import DetailsLayout


@pytest.fixture
def no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither trackio nor wandb can be imported, whatever this venv holds."""
    monkeypatch.setitem(sys.modules, "trackio", None)
    monkeypatch.setitem(sys.modules, "wandb", None)


def test_no_tracker_installed_fails_at_construction(
    tmp_path: Path, no_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """use_wandb=True with neither client installed is a ConfigError naming both extras."""
    monkeypatch.setenv("WANDB_PROJECT", "evals")
    assert pick_backend() is None
    with pytest.raises(ConfigError, match=r"trackio or wandb installed.*evalstream\[trackio\]"):
        EvaluationTracker(tmp_path, use_wandb=True)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # construction wrote nothing


def test_no_project_fails_at_construction_with_every_missing_piece(
    tmp_path: Path, no_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No WANDB_PROJECT (lighteval's variable) is named in the same error as the client."""
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    with pytest.raises(ConfigError, match="WANDB_PROJECT environment variable and trackio"):
        EvaluationTracker(tmp_path, use_wandb=True)


def test_the_sync_tracker_passes_use_wandb_through(
    tmp_path: Path, no_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lighteval's ``use_wandb=True`` reaches the output: its checks, not a refusal."""
    monkeypatch.setenv("WANDB_PROJECT", "evals")
    with pytest.raises(ConfigError, match="use_wandb=True needs trackio or wandb installed"):
        SyncEvaluationTracker(output_dir=str(tmp_path), use_wandb=True)


def test_use_wandb_off_adds_no_output(tmp_path: Path, no_client: None) -> None:
    """The default builds no tracker output (and needs no client, no project)."""
    tracker = EvaluationTracker(tmp_path)
    assert [o.name for o in tracker._parts.outputs] == ["local"]


def test_results_go_under_lighteval_keys() -> None:
    """Every results row, ':' replaced by '/' as lighteval's push_to_wandb does."""
    final = {"results": {"lb|mmlu:anatomy|5": {"acc": 0.5, "acc_stderr": 0.1}, "all": {"acc": 1}}}
    assert results_keys(final) == {
        "lb|mmlu/anatomy|5": {"acc": 0.5, "acc_stderr": 0.1},
        "all": {"acc": 1},
    }
    assert table_key("lb|mmlu:anatomy|5") == "details/lb|mmlu/anatomy|5"


async def _saved(out: Path, layout: DetailsLayout, n: int) -> RunResult:
    rng = random.Random(8)
    with anyio.fail_after(60):
        async with EvaluationTracker(out, bootstrap_iters=0, details_layout=layout) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks(TASKS[:2])
            for i in range(n):
                await tracker.log_sample(TASKS[i % 2].name, *sample(rng, TASKS[i % 2], i))
            return await tracker.save()


def _written(out: Path, result: RunResult) -> DetailsWritten:
    paths = {t: Path(p).relative_to(out).as_posix() for t, p in result.details_paths.items()}
    return DetailsWritten(paths=paths, warnings=[])


@pytest.mark.parametrize("layout", ["flat", "lighteval"])
async def test_each_task_is_one_table_with_a_row_per_sample(
    tmp_path: Path, layout: DetailsLayout
) -> None:
    """The details file's rows, nested fields as dotted columns and lists as JSON text."""
    result = await _saved(tmp_path, layout, 30)
    tables, truncated = details_tables(OutputStore(tmp_path), _written(tmp_path, result))
    assert truncated == {} and set(tables) == {t.name for t in TASKS[:2]}
    for task, table in tables.items():
        rows = pq.read_table(result.details_paths[task]).to_pylist()
        assert len(table.rows) == len(rows) == 15
        cells = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
        metrics = "metrics.acc" if layout == "flat" else "metric.acc"
        assert [c[metrics] for c in cells] == [
            (r["metrics"] if layout == "flat" else r["metric"])["acc"] for r in rows
        ]
        tokens = "input_tokens" if layout == "flat" else "model_response.input_tokens"
        first = rows[0] if layout == "flat" else rows[0]["model_response"]
        assert json.loads(cells[0][tokens]) == first["input_tokens"]
        assert all(not isinstance(v, list | dict) for row in table.rows for v in row)


async def test_a_task_beyond_the_row_limit_is_cut_and_named(tmp_path: Path) -> None:
    """A table keeps the first ``limit`` rows; the outcome names the task and its size."""
    result = await _saved(tmp_path, "flat", 30)
    written = _written(tmp_path, result)
    tables, truncated = details_tables(OutputStore(tmp_path), written, limit=10)
    assert truncated == {t.name: 15 for t in TASKS[:2]}
    assert all(len(t.rows) == 10 for t in tables.values())
