"""Bad input gets its own clear error, and nothing logged before it is lost."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import (
    ConfigError,
    Doc,
    EvaluationTracker,
    InputError,
    MetricValueError,
    ModelInfo,
    ModelResponse,
    RunStateError,
    StorageError,
    TaskSpec,
    UnknownTaskError,
    UnsafeNameError,
)

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TASK = TASKS[0]


async def _log(tracker: EvaluationTracker, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        doc, outputs, metrics = sample(rng, TASK, i)
        await tracker.log_sample(TASK.name, doc, outputs, metrics)


@asynccontextmanager
async def _open(tmp_path: Path, **kwargs: Any) -> AsyncIterator[EvaluationTracker]:
    async with EvaluationTracker(tmp_path, batch_size=8, **kwargs) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TASK])
        yield tracker


def _rows(path: str) -> int:
    return int(pq.read_metadata(path).num_rows)


async def test_unknown_task_is_rejected_and_nothing_is_lost(tmp_path: Path) -> None:
    """A sample for an undeclared task raises UnknownTaskError; earlier samples are saved."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await _log(tracker, 20)
            with pytest.raises(UnknownTaskError, match="log_tasks"):
                await tracker.log_sample("nope|x|0", Doc(query="q"), [], {"acc": 1.0})
            result = await tracker.save()
    assert _rows(result.details_paths[TASK.name]) == 20


@pytest.mark.parametrize("value", [object(), {"a": 1}, None, b"bytes"])
async def test_non_numeric_metric_is_rejected(tmp_path: Path, value: object) -> None:
    """A metric that is neither a number nor a corpus tuple raises MetricValueError."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await _log(tracker, 5)
            with pytest.raises(MetricValueError, match="acc"):
                await tracker.log_sample(TASK.name, Doc(query="q"), [], {"acc": value})
            result = await tracker.save()
    assert result.samples[TASK.name] == 5


async def test_unserialisable_object_is_rejected(tmp_path: Path) -> None:
    """A doc holding an object that cannot be stored raises InputError at log time."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await _log(tracker, 3)
            bad = Doc(query="q", specific={"handle": object()})
            with pytest.raises(InputError, match="cannot be stored"):
                await tracker.log_sample(TASK.name, bad, [], {"acc": 1.0})
            result = await tracker.save()
    assert _rows(result.details_paths[TASK.name]) == 3


async def test_sample_after_save_is_rejected(tmp_path: Path) -> None:
    """Logging after save() raises RunStateError; the saved files are untouched."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await _log(tracker, 4)
            result = await tracker.save()
            before = Path(result.results_path).read_bytes()
            with pytest.raises(RunStateError, match="after save"):
                await _log(tracker, 1)
    assert Path(result.results_path).read_bytes() == before


async def test_save_without_model_fails_then_succeeds(tmp_path: Path) -> None:
    """save() without a model raises ConfigError and keeps the run open and intact."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path) as tracker:
            await tracker.log_tasks([TASK])
            await _log(tracker, 10)
            with pytest.raises(ConfigError, match="log_model_info"):
                await tracker.save()
            await tracker.log_model_info(ModelInfo(model_name="late/model"))
            result = await tracker.save()
    assert _rows(result.details_paths[TASK.name]) == 10


@pytest.mark.parametrize(
    "name", ["../../escape", "org/../../x", "/abs/path", "a//b", "", "a\\b", "bad\x00name", "./m"]
)
async def test_unsafe_model_names_are_rejected(tmp_path: Path, name: str) -> None:
    """A model name that could leave output_dir raises UnsafeNameError; nothing is written."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path / "out") as tracker:
            with pytest.raises(UnsafeNameError):
                await tracker.log_model_info(ModelInfo(model_name=name))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(tmp_path / "out") for p in written)


@pytest.mark.parametrize("name", ["suite|a/b|0", "..", ".hidden|x|0", "x" * 300, "tab\there|0"])
async def test_unsafe_task_names_are_rejected(tmp_path: Path, name: str) -> None:
    """A task name that is not one safe file-name component raises UnsafeNameError."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path) as tracker:
            with pytest.raises(UnsafeNameError):
                await tracker.log_tasks([TaskSpec(name=name)])


def _model_of(size: int) -> str:
    """A model name of exactly ``size`` bytes, in segments of at most 100."""
    segments, left = [], size
    while left > 0:
        n = min(100, left) if left != 101 else 99  # never leave a 0-byte last segment
        segments.append("m" * n)
        left -= n + 1
    return "/".join(segments)[:size]


def _path_max(folder: Path) -> int:
    return os.pathconf(folder, "PC_PATH_MAX")


async def test_a_model_name_too_long_for_the_file_system_is_refused(tmp_path: Path) -> None:
    """A model whose results path passes PATH_MAX raises UnsafeNameError at log_model_info,
    saying which limit (it raised a raw OSError ENAMETOOLONG)."""
    model = _model_of(_path_max(tmp_path))
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path) as tracker:
            with pytest.raises(UnsafeNameError, match=r"limit of paths in .*\(PATH_MAX\)"):
                await tracker.log_model_info(ModelInfo(model_name=model))


@pytest.mark.parametrize("model_first", [True, False])
async def test_a_details_path_too_long_is_refused_where_the_name_is_given(
    tmp_path: Path, model_first: bool
) -> None:
    """A model whose results fit but whose details path for a long task does not: the second
    of the two names given is refused (it used to fail save() after the whole run); a short
    task of the same model saves."""
    room = _path_max(tmp_path) - len(str(tmp_path).encode())
    model = _model_of(room - 150)  # results/{model}/.tmp-results_…: fits; details_{task}: not
    long_task, short = TaskSpec(name="t|" + "x" * 140 + "|0"), TaskSpec(name="t|0")
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
            if model_first:
                await tracker.log_model_info(ModelInfo(model_name=model))
                with pytest.raises(UnsafeNameError, match=r"the task name .*\(PATH_MAX\)"):
                    await tracker.log_tasks([long_task])
            else:
                await tracker.log_tasks([long_task])
                with pytest.raises(UnsafeNameError, match=r"the model name .*\(PATH_MAX\)"):
                    await tracker.log_model_info(ModelInfo(model_name=model))
                return
            await tracker.log_tasks([short])
            await tracker.log_sample(short.name, Doc(query="q"), [], {"acc": 1.0})
            result = await tracker.save()
    assert result.ok and Path(result.details_paths[short.name]).is_file()


def test_name_max_of_the_file_system_is_the_limit() -> None:
    """On a file system with short names (eCryptfs: 143 bytes) a task name that fits ext4's
    255 is refused, naming NAME_MAX; the check reads the real limit, not a constant."""
    from evalstream._naming import check_path_limits

    task = "t|" + "x" * 100
    check_path_limits("/out", "org/m", [task], name_max=255, path_max=4096, blame="task")
    with pytest.raises(UnsafeNameError, match=r"over the 143-byte limit .*\(NAME_MAX\)"):
        check_path_limits("/out", "org/m", [task], name_max=143, path_max=4096, blame="task")


async def test_odd_but_safe_names_round_trip(tmp_path: Path) -> None:
    """Pipes, colons, dots and unicode in names are kept as lighteval writes them."""
    task = TaskSpec(name="suite|ünï:code..x|3")
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="Org.Name/model-v1..2"))
            await tracker.log_tasks([task])
            await tracker.log_sample(task.name, Doc(query="q"), [], {"acc": 1.0})
            result = await tracker.save()
    path = Path(result.details_paths[task.name])
    assert path.is_relative_to(tmp_path) and path.name.startswith("details_suite|ünï:code..x|3_")


async def test_nan_and_inf_become_null_and_are_counted(tmp_path: Path) -> None:
    """Non-finite metrics never crash; the JSON is strict and the summary counts them."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            for i, v in enumerate([1.0, float("nan"), float("inf"), 0.0]):
                await tracker.log_sample(TASK.name, Doc(query=f"q{i}"), [], {"acc": v})
            result = await tracker.save()
    text = Path(result.results_path).read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["results"][TASK.name]["acc"] is None
    assert result.nonfinite_values >= 1
    assert any("non-finite" in w for w in result.warnings)


async def test_huge_strings_are_stored_whole(tmp_path: Path) -> None:
    """A multi-megabyte prompt and prediction are stored byte for byte."""
    big = "é" * 3_000_000
    with anyio.fail_after(60):
        async with _open(tmp_path) as tracker:
            await tracker.log_sample(
                TASK.name, Doc(query="q", ctx=big), [ModelResponse(result=[big])], {"acc": 1.0}
            )
            result = await tracker.save()
    row = pq.read_table(result.details_paths[TASK.name]).to_pylist()[0]
    assert row["full_prompt"] == big and row["predictions"] == [big]


async def test_storage_failure_reaches_the_caller_and_recovers(tmp_path: Path) -> None:
    """A failing segment write raises StorageError at flush; once fixed, nothing was lost."""
    with anyio.fail_after(30):
        async with _open(tmp_path, keep_workdir=True) as tracker:
            blocker = tracker.workdir / "segments"
            blocker.write_text("a file where the segments folder should be")
            await _log(tracker, 16)
            with pytest.raises(StorageError, match="details segment"):
                await tracker.flush()
            with pytest.raises(StorageError):
                await _log(tracker, 1, seed=9)
            blocker.unlink()
            await tracker.flush()
            await _log(tracker, 8, seed=5)
            result = await tracker.save()
    assert _rows(result.details_paths[TASK.name]) == 24


async def test_remote_output_dir_through_fsspec(tmp_path: Path) -> None:
    """An fsspec URL output_dir gets the same files, staged locally then copied."""
    import fsspec

    with anyio.fail_after(30):
        async with EvaluationTracker("memory://bucket/evals") as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            await _log(tracker, 12)
            result = await tracker.save()
    fs = fsspec.filesystem("memory")
    assert result.results_path.startswith("memory://bucket/evals/results/org/m/")
    data = json.loads(fs.cat(result.results_path))
    assert data["config_general"]["model_name"] == "org/m"
    assert fs.exists(result.details_paths[TASK.name])


async def test_ill_typed_tokens_are_rejected_at_log_time(tmp_path: Path) -> None:
    """A float among token ids fails in log_sample, naming the field; nothing is lost."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await _log(tracker, 5)
            odd = ModelResponse(result=[-1.0], input_tokens=[1, 2.5], generated_tokens=[3])  # type: ignore[list-item]
            with pytest.raises(InputError, match=r"input_tokens"):
                await tracker.log_sample(TASK.name, Doc(query="odd"), [odd], {"acc": 1.0})
            result = await tracker.save()
    assert _rows(result.details_paths[TASK.name]) == 5


async def test_mixed_prediction_types_fall_back_to_json_text(tmp_path: Path) -> None:
    """Predictions Arrow cannot type consistently become JSON text, with a warning."""
    with anyio.fail_after(30):
        async with _open(tmp_path) as tracker:
            await tracker.log_sample(
                TASK.name, Doc(query="a"), [ModelResponse(result=["x"])], {"acc": 1.0}
            )
            await tracker.log_sample(
                TASK.name, Doc(query="b"), [ModelResponse(result=[{"k": [1]}])], {"acc": 0.0}
            )
            result = await tracker.save()
    assert result.ok, result.outputs
    rows = {r["example"]: r for r in pq.read_table(result.details_paths[TASK.name]).to_pylist()}
    assert json.loads(rows["b"]["predictions"]) == [{"k": [1]}]
    assert json.loads(rows["a"]["predictions"]) == ["x"]
    assert any("predictions" in w for w in result.warnings)


def test_parquet_is_written_by_the_details_workers(tmp_path: Path) -> None:
    """The tracker's own process never imports pyarrow.parquet: the workers convert."""
    code = f"""
import sys, anyio
from evalstream import Doc, EvaluationTracker, ModelInfo, TaskSpec
async def main():
    task = TaskSpec(name="t|0")
    async with EvaluationTracker({str(tmp_path)!r}) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([task])
        for i in range(20):
            await tracker.log_sample("t|0", Doc(query=str(i)), [], {{"acc": 1.0}})
        result = await tracker.save()
    assert result.ok and result.details_paths
anyio.run(main)
print("pyarrow.parquet" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
    assert _rows(next(iter(tmp_path.rglob("details_t|0_*.parquet"))).as_posix()) == 20
