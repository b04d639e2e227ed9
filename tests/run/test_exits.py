"""Every exit is recoverable and loses nothing accepted: an exception in the body, an actor
that fails, a save that fails on storage, symbolic links in the output folder."""

from __future__ import annotations

import decimal
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pyarrow.parquet as pq
import pytest

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    RunFailedError,
    RunStateError,
    StorageError,
    TaskSpec,
    UnsafeNameError,
    recover,
)
from evalstream._messages import SampleBatch, ScoredSample
from evalstream.durability.frames import frame
from evalstream.durability.runstate import read_status

if TYPE_CHECKING:
    from collections.abc import Callable

TASK = TaskSpec(name="lb|t|0")
OUT = [ModelResponse(result=[-1.0])]
POISONED = ScoredSample(  # as an older version journaled it: no check at the call
    task_name=TASK.name, doc=Doc(query="poison"), outputs=(), metrics={"acc": decimal.Decimal(1)}
)


async def _start(tracker: EvaluationTracker, n: int, *, first: int = 0) -> None:
    await tracker.log_model_info(ModelInfo(model_name="org/m"))
    await tracker.log_tasks([TASK])
    await _log(tracker, n, first=first)


async def _log(tracker: EvaluationTracker, n: int, *, first: int = 0) -> None:
    for i in range(first, first + n):
        await tracker.log_sample(TASK.name, Doc(query=f"q{i}", id=str(i)), OUT, {"acc": i % 2})


def _examples(path: str) -> set[str]:
    return set(pq.read_table(path, columns=["example"]).column("example").to_pylist())


def _state(workdir: Path) -> str:
    status = read_status(workdir)
    assert status is not None
    return status.state


async def test_an_exception_in_the_body_comes_back_as_raised(tmp_path: Path) -> None:
    """The caller gets their own ValueError (no ExceptionGroup); the run is failed, recoverable."""
    with anyio.fail_after(60):
        with pytest.raises(ValueError, match="mine") as raised:
            async with EvaluationTracker(tmp_path, batch_size=8) as tracker:
                await _start(tracker, 13)  # 13: a pending batch is shipped at exit
                raise ValueError("mine")
        assert type(raised.value) is ValueError
        status = read_status(tracker.workdir)
        assert status is not None and status.state == "failed" and "mine" in str(status.error)
        result = await recover(tracker.workdir)
    assert _examples(result.details_paths[TASK.name]) == {f"q{i}" for i in range(13)}


async def test_an_actor_failure_is_contained_reported_and_recovered(tmp_path: Path) -> None:
    """A sample an actor cannot apply (replayed from an old journal: a Decimal metric) marks
    the run failed with the cause, log_sample and save raise one RunFailedError with it chained,
    and recover gives the partial results, the bad sample skipped and counted."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4) as tracker:
            await _start(tracker, 10)
            await tracker.flush()
            await tracker.replay(SampleBatch(samples=(POISONED,)))
            await tracker.flush()  # the actors have handled it
            status = read_status(tracker.workdir)
            assert status is not None and status.state == "failed"
            assert "metrics actor" in str(status.error) and "Decimal" in str(status.error)
            with pytest.raises(RunFailedError, match="recover") as logged:
                await _log(tracker, 1, first=10)
            assert "Decimal" in repr(logged.value.__cause__)
            with pytest.raises(RunFailedError) as saved:
                await tracker.save()
            assert saved.value.__cause__ is not None
        assert _state(tracker.workdir) == "failed"
        result = await recover(tracker.workdir)
    section = result.results["evalstream"]
    assert section["skipped"]["samples"] == 1  # journaled as the text "1": not a number
    assert "cannot join a metric" in section["skipped"]["errors"][0]
    assert result.results["results"][TASK.name]["acc"] == 0.5  # the 10 good samples
    assert _examples(result.details_paths[TASK.name]) >= {f"q{i}" for i in range(10)}


async def test_a_frame_that_does_not_decode_is_skipped_and_counted(tmp_path: Path) -> None:
    """A checksummed frame this version cannot read is skipped; recovery keeps the rest."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4) as tracker:
            await _start(tracker, 8)
            await tracker.flush()
            segment = max((tracker.workdir / "journal").glob("*.wal"))
            with segment.open("ab") as handle:
                handle.write(frame(msgspec.msgpack.encode({"type": "FromTheFuture", "x": 1})))
            await _log(tracker, 8, first=8)  # the writer appends after the foreign frame
            await tracker.flush()
        result = await recover(tracker.workdir)
    assert result.results["evalstream"]["skipped_frames"] == 1
    assert result.results["evalstream"]["journal_corruption"] is None
    assert _examples(result.details_paths[TASK.name]) == {f"q{i}" for i in range(16)}


async def _fix_and_save_again(tracker: EvaluationTracker, fix: Callable[[], None]) -> Any:
    """After a failed save: logging is refused; once ``fix()`` ran, save() again succeeds."""
    with pytest.raises(RunStateError, match="save"):
        await _log(tracker, 1, first=99)
    fix()
    second = await tracker.save()
    assert second.ok, second.outputs
    assert _state(tracker.workdir) == "saved"
    return second


@pytest.mark.parametrize("blocked", ["details/org/m", "results/org/m"])
async def test_a_failed_save_can_be_retried(tmp_path: Path, blocked: str) -> None:
    """A save whose files cannot be written returns a failed local outcome and marks the run
    failed; once the fault is gone, save() again writes everything."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=8) as tracker:
            await _start(tracker, 21)
            blocker = tmp_path / blocked
            blocker.parent.mkdir(parents=True, exist_ok=True)
            blocker.write_text("a file where a folder must go, as a full disk would refuse it")
            first = await tracker.save()
            assert not first.ok and first.outputs[0].error
            assert _state(tracker.workdir) == "failed"
            second = await _fix_and_save_again(tracker, blocker.unlink)
    assert _examples(second.details_paths[TASK.name]) == {f"q{i}" for i in range(21)}
    data = json.loads(Path(second.results_path).read_text())
    assert data["results"][TASK.name]["acc"] == pytest.approx(10 / 21)


@pytest.mark.parametrize("link", ["details", "results", "details/org"])
async def test_symbolic_links_inside_output_dir_are_refused(tmp_path: Path, link: str) -> None:
    """A link inside output_dir is never followed: log_model_info refuses it up front, a link
    made later fails the local output, and nothing lands outside output_dir."""
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    outside.mkdir()
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(outside, target_is_directory=True)
    with anyio.fail_after(60):
        async with EvaluationTracker(out) as tracker:
            with pytest.raises(UnsafeNameError, match="symbolic link"):
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
        (out / link).unlink()
        async with EvaluationTracker(out) as tracker:
            await _start(tracker, 5)
            (out / link).parent.mkdir(parents=True, exist_ok=True)
            (out / link).symlink_to(outside, target_is_directory=True)
            result = await tracker.save()
    assert not result.ok and "symbolic link" in str(result.outputs[0].error)
    assert list(outside.iterdir()) == []


def test_a_linked_working_folder_is_refused(tmp_path: Path) -> None:
    """An ``.evalstream`` link fails at construction, before anything is written."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".evalstream").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="symbolic link"):
        EvaluationTracker(tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_an_output_dir_that_is_a_file_is_refused_at_construction(tmp_path: Path) -> None:
    """A file, or a path under one, as output_dir: said when the tracker is made, not when its
    run starts; the file is left as it was."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(UnsafeNameError, match="is a file, not a folder"):
        EvaluationTracker(afile)
    with pytest.raises(UnsafeNameError, match=f"is inside {afile}, which is a file"):
        EvaluationTracker(afile / "sub" / "deeper")
    assert afile.read_text() == "not a folder"


async def test_the_output_dir_itself_may_be_a_link(tmp_path: Path) -> None:
    """Only links inside output_dir are refused: output_dir itself is the caller's choice."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path / "link") as tracker:
            await _start(tracker, 3)
            result: Any = await tracker.save()
    assert result.ok and list((real / "results").rglob("*.json"))


async def test_a_save_on_a_full_disk_can_be_retried(small_fs: Path) -> None:
    """On a really full file system save() fails with a StorageError (or a failed local
    outcome) saying to free space; once freed, save() again saves every sample."""
    filler = small_fs / "filler"
    with anyio.fail_after(60):
        async with EvaluationTracker(small_fs / "out", batch_size=8, bootstrap_iters=0) as tracker:
            await _start(tracker, 30)
            await tracker.flush()
            stats = os.statvfs(small_fs)
            filler.write_bytes(bytes(stats.f_bavail * stats.f_frsize))
            try:
                first = await tracker.save()
            except StorageError as exc:
                assert "disk is full" in str(exc)
            else:
                assert not first.ok and "disk is full" in str(first.outputs[0].error)
            assert _state(tracker.workdir) in ("failed", "running")  # if the marker fitted
            second = await _fix_and_save_again(tracker, filler.unlink)
    assert _examples(second.details_paths[TASK.name]) == {f"q{i}" for i in range(30)}


async def test_a_dead_runs_poisoned_journal_can_be_resumed(tmp_path: Path) -> None:
    """resume_from a run whose journal holds a sample no actor can apply: it is skipped with a
    warning, the new run goes on and saves the dead run's good samples with its own."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4) as dead:
            await _start(dead, 10)
            await dead.replay(SampleBatch(samples=(POISONED,)))
            await dead.flush()
        async with EvaluationTracker(tmp_path, batch_size=4, resume_from=dead.workdir) as tracker:
            assert _state(tracker.workdir) == "running"
            await _log(tracker, 10, first=10)
            result = await tracker.save()
    assert result.ok, result.outputs
    assert any("could not be replayed" in w for w in result.warnings)
    assert result.results["results"][TASK.name]["acc"] == 0.5  # 20 good samples
    assert _examples(result.details_paths[TASK.name]) >= {f"q{i}" for i in range(20)}


async def test_a_retried_save_keeps_the_runs_details_layout(tmp_path: Path) -> None:
    """The retry rebuilds the details from the journal in the layout the run chose."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=8, details_layout="lighteval") as tracker:
            await _start(tracker, 9)
            blocker = tmp_path / "details/org/m"
            blocker.parent.mkdir(parents=True, exist_ok=True)
            blocker.write_text("a file where a folder must go")
            first = await tracker.save()
            assert not first.ok
            second = await _fix_and_save_again(tracker, blocker.unlink)
    table = pq.read_table(second.details_paths[TASK.name])
    assert {"doc", "metric", "model_response"} <= set(table.column_names)
    assert sorted(row["query"] for row in table.column("doc").to_pylist()) == sorted(
        f"q{i}" for i in range(9)
    )
