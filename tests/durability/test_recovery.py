"""Recovery and resume: dead runs rebuilt from their journal, every sample counted once."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    RunStateError,
    StorageError,
    TaskSpec,
)
from evalstream.durability.runstate import (
    RunStatus,
    is_alive,
    make_dirs_durable,
    read_status,
    write_status,
)
from evalstream.durability.segments import segment_paths
from evalstream.run.recover import recover

from _workload import TASKS, sample

N = 300  # samples per run, spread over TASKS


def _sample(i: int) -> tuple[str, Any, Any, Any]:
    task = TASKS[i % len(TASKS)]
    return (task.name, *sample(random.Random(i), task, i))


def _key(i: int) -> tuple[str, str]:
    return TASKS[i % len(TASKS)].name, str(i)


async def _start(tracker: EvaluationTracker, *, expected: int = N) -> None:
    await tracker.log_model_info(ModelInfo(model_name="org/model"))
    await tracker.log_tasks(TASKS)
    for task in TASKS:
        n = sum(1 for i in range(expected) if TASKS[i % len(TASKS)] == task)
        await tracker.log_num_docs(task.name, n, n)


def _rows(result: Any) -> dict[str, list[str]]:
    """The ``example`` column of each task's details parquet."""
    return {
        task: pq.read_table(path)["example"].to_pylist()
        for task, path in result.details_paths.items()
    }


def _queries(indices: range | list[int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in indices:
        task, doc, _, _ = _sample(i)
        out.setdefault(task, []).append(doc.query)
    return {t: sorted(q) for t, q in out.items()}


def _section(result: Any) -> dict[str, Any]:
    section: dict[str, Any] = json.loads(Path(result.results_path).read_text())["evalstream"]
    return section


async def _abandoned(out: Path, logged: range, **options: Any) -> Path:
    """A run that logged ``logged`` and exited without save(); returns its working folder."""
    async with EvaluationTracker(out, bootstrap_iters=0, **options) as tracker:
        await _start(tracker)
        for i in logged:
            await tracker.log_sample(*_sample(i))
    status = read_status(tracker.workdir)
    assert status is not None and status.state == "cancelled"
    return tracker.workdir


async def test_recover_rebuilds_an_abandoned_run_as_partial(tmp_path: Path) -> None:
    """A run left without save() is recovered: its samples, and a section naming what is missing."""
    with anyio.fail_after(30):
        workdir = await _abandoned(tmp_path, range(200))
        result = await recover(workdir)
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(200))
    section = _section(result)
    assert section["partial"] is True and section["reached_save"] is False
    assert section["incomplete_tasks"] == sorted(t.name for t in TASKS)
    for task, rows in _rows(result).items():
        assert section["tasks"][task] == {
            "samples": len(rows),
            "expected": N // 5,
            "complete": False,
        }
    status = read_status(workdir)
    assert status is not None
    assert (status.state, status.results_path) == ("recovered", result.results_path)
    with pytest.raises(RunStateError, match="already recovered"):
        await recover(workdir)


async def test_declared_tasks_without_samples_are_listed_incomplete(tmp_path: Path) -> None:
    """A task declared (or counted) but never sampled appears with 0 samples, incomplete."""
    with anyio.fail_after(30):
        workdir = await _abandoned(tmp_path, range(0, 200, 5))  # only TASKS[0]
        result = await recover(workdir)
    section = _section(result)
    assert set(section["tasks"]) == {t.name for t in TASKS}
    assert section["tasks"][TASKS[1].name] == {"samples": 0, "expected": 60, "complete": False}
    assert section["incomplete_tasks"] == sorted(t.name for t in TASKS)


async def test_recover_after_a_save_cancelled_midway(tmp_path: Path) -> None:
    """A save() cancelled while its disk work is stalled leaves the run cancelled and recoverable."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    with anyio.fail_after(10):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
            await _start(tracker, expected=100)
            for i in range(100):
                await tracker.log_sample(*_sample(i))
            await tracker.flush()
            for holder in holders:  # the disk stalls: no worker thread is available
                await limiter.acquire_on_behalf_of(holder)
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.save)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
                for holder in holders:  # the disk comes back for the shielded cleanup
                    limiter.release_on_behalf_of(holder)
        status = read_status(tracker.workdir)
        assert status is not None and status.state == "cancelled"
        result = await recover(tracker.workdir)
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(100))
    assert _section(result)["incomplete_tasks"] == []


async def test_recover_after_a_save_cancelled_at_once(tmp_path: Path) -> None:
    """A save() cancelled before it starts leaves the run cancelled; exit does not hang."""
    with anyio.fail_after(10):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
            await _start(tracker, expected=50)
            for i in range(50):
                await tracker.log_sample(*_sample(i))
            with anyio.CancelScope() as scope:
                scope.cancel()
                await tracker.save()
        status = read_status(tracker.workdir)
        assert status is not None and status.state == "cancelled"
        result = await recover(tracker.workdir)
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(50))


async def test_recovering_a_live_run_is_refused(tmp_path: Path) -> None:
    """A run whose status says running, in this live process, cannot be recovered."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
            await _start(tracker)
            with pytest.raises(RunStateError, match=f"held by the live run, pid {os.getpid()}"):
                await recover(tracker.workdir)


async def test_recovering_a_saved_run_is_refused(tmp_path: Path) -> None:
    """A saved run (working folder kept) is not recovered again."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, keep_workdir=True) as tracker:
            await _start(tracker)
            await tracker.log_sample(*_sample(0))
            await tracker.save()
        with pytest.raises(RunStateError, match="already saved"):
            await recover(tracker.workdir)


async def test_recovery_keeps_the_data_before_a_corrupt_frame(tmp_path: Path) -> None:
    """A corrupt middle frame stops replay there; the samples before it are recovered."""
    with anyio.fail_after(30):
        workdir = await _abandoned(tmp_path, range(N), batch_size=10)
        (segment,) = segment_paths(workdir / "journal")
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
        result = await recover(workdir)
    section = _section(result)
    assert section["journal_corruption"].startswith(f"{segment} at byte offset")
    recovered = sorted(q for rows in _rows(result).values() for q in rows)
    assert 0 < len(recovered) < N
    logged_first = sorted(q for qs in _queries(range(len(recovered))).values() for q in qs)
    assert recovered == logged_first  # exactly the samples before the corrupt frame


async def test_recovery_rebuilds_tiny_batches_in_large_ones(tmp_path: Path) -> None:
    """A run journaled one sample per frame is replayed in merged batches (few row groups)."""
    with anyio.fail_after(30):
        workdir = await _abandoned(tmp_path, range(N), batch_size=1)
        result = await recover(workdir)
    for path in result.details_paths.values():
        assert pq.ParquetFile(path).metadata.num_row_groups == 1
    assert sum(len(r) for r in _rows(result).values()) == N


async def _rotated(out: Path, n: int, **options: Any) -> Path:
    """Like ``_abandoned``, with the journal rotated every 8 KiB (many segments)."""
    async with EvaluationTracker(out, bootstrap_iters=0, **options) as tracker:
        tracker.journal.segment_bytes = 8 << 10
        await _start(tracker)
        for i in range(n):
            await tracker.log_sample(*_sample(i))
    assert len(segment_paths(tracker.workdir / "journal")) > 3
    return tracker.workdir


async def test_recovery_names_a_deleted_middle_segment(tmp_path: Path) -> None:
    """A journal segment deleted from the middle is a gap: named in the partial section and
    the warnings, and the segments after it are recovered."""
    with anyio.fail_after(60):
        workdir = await _rotated(tmp_path, N, batch_size=4, durable=True)
        segment = segment_paths(workdir / "journal")[1]
        segment.unlink()
        result = await recover(workdir)
    section = _section(result)
    (gap,) = section["journal_gaps"]
    assert (gap["first"], gap["last"], gap["before"]) == (1, 1, "000002.wal")
    assert section["journal_corruption"] is None and section["partial"] is True
    assert any("000001.wal is missing" in w for w in result.warnings)
    recovered = sum(len(rows) for rows in _rows(result).values())
    assert 0 < recovered < N
    assert sorted(section["incomplete_tasks"]) == sorted(t.name for t in TASKS)
    status = read_status(workdir)
    assert status is not None and status.state == "recovered"


@pytest.mark.parametrize(
    ("name", "garbage"),
    [
        ("status.json", b"\x00\x93 not json {"),
        ("status.json", b'{"state": "exploded", "run_id": 3}'),
        ("run.json", b"{truncated"),
    ],
)
async def test_recovery_of_a_run_with_an_unreadable_marker(
    tmp_path: Path, name: str, garbage: bytes
) -> None:
    """A garbage status.json or run.json does not stop recovery: the journal is the truth, a
    warning says what was assumed, and the run gets a valid marker saying it is recovered."""
    with anyio.fail_after(30):
        workdir = await _abandoned(tmp_path, range(100))
        (workdir / name).write_bytes(garbage)
        if name == "status.json":
            with pytest.raises(StorageError, match=r"status\.json is damaged"):
                read_status(workdir)
        result = await recover(workdir)
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(100))
    (note,) = [w for w in result.warnings if f"{name} is damaged" in w]
    assert ("taken as dead" if name == "status.json" else "default settings") in note
    assert _section(result)["damaged_files"] == [note]
    status = read_status(workdir)
    assert status is not None and (status.state, status.results_path) == (
        "recovered",
        result.results_path,
    )
    with pytest.raises(RunStateError, match="already recovered"):
        await recover(workdir)


# -- resume ------------------------------------------------------------------------------------


async def test_resume_counts_each_sample_once(tmp_path: Path) -> None:
    """Re-logging every sample after a resume keeps each once, in results and details."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as a:
            await _start(a)
            for i in range(0, N, 2):
                await a.log_sample(*_sample(i))
            await a.flush()
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, resume_from=a.workdir) as b:
            assert b.logged_keys() == {_key(i) for i in range(0, N, 2)}
            await _start(b)
            for i in range(N):
                await b.log_sample(*_sample(i))
            result = await b.save()
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(N))
    assert result.samples == {t.name: N // 5 for t in TASKS}
    # the run's account of what it sent the actors counts the replayed samples too
    assert b._coordinator is not None
    held = {t: len(next(iter(v.values()))) for t, v in b._coordinator.metrics.values().items()}
    assert b._batch.meter.unrouted(held) == {}
    assert b._batch.meter.unrouted(result.samples, "details") == {}
    final = json.loads(Path(result.results_path).read_text())
    for task in TASKS:
        values = [_sample(i)[3] for i in range(N) if TASKS[i % len(TASKS)] == task]
        metric = "em" if "generative" in task.categories else "acc"
        mean = sum(v[metric] for v in values) / len(values)
        assert final["results"][task.name][metric] == pytest.approx(mean)
    status = read_status(a.workdir)
    assert status is not None and (status.state, status.successor) == ("resumed", b.run_id)


async def test_resume_dedupes_metrics_only_samples(tmp_path: Path) -> None:
    """Samples logged with scope="metrics" are recognised on resume, so means are not skewed."""
    spec = TaskSpec(name="t|0")

    async def log(tracker: EvaluationTracker, i: int) -> None:
        doc = Doc(query=f"q{i}", id=str(i))
        value = {"acc": float(i < 30)}
        await tracker.log_sample(spec.name, doc, [ModelResponse()], value, scope="metrics")

    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as a:
            await a.log_model_info(ModelInfo(model_name="org/model"))
            await a.log_tasks([spec])
            for i in range(30):
                await log(a, i)
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, resume_from=a.workdir) as b:
            assert b.logged_keys() == {("t|0", str(i)) for i in range(30)}
            for i in range(60):
                await log(b, i)
            result = await b.save()
    assert result.results["results"]["t|0"]["acc"] == pytest.approx(0.5)


async def test_resume_over_a_deleted_segment_redoes_its_samples_and_says_so(
    tmp_path: Path,
) -> None:
    """The samples of a missing segment are not in logged_keys: the harness logs them again,
    and the resumed run's warnings name the segment."""
    with anyio.fail_after(60):
        workdir = await _rotated(tmp_path, N, batch_size=4, durable=True)
        segment_paths(workdir / "journal")[1].unlink()
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, resume_from=workdir) as b:
            done = b.logged_keys()
            assert 0 < len(done) < N
            await _start(b)
            for i in range(N):
                if _key(i) not in done:
                    await b.log_sample(*_sample(i))
            result = await b.save()
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(N))
    assert any("resume of" in w and "000001.wal is missing" in w for w in result.warnings)


async def test_resume_of_a_run_with_an_unreadable_marker(tmp_path: Path) -> None:
    """resume_from a run whose status.json is garbage: resumed from its journal, given a valid
    ``resumed`` marker (so recover leaves it alone), with a warning."""
    with anyio.fail_after(60):
        workdir = await _abandoned(tmp_path, range(0, N, 2))
        (workdir / "status.json").write_bytes(b"garbage")
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, resume_from=workdir) as b:
            assert b.logged_keys() == {_key(i) for i in range(0, N, 2)}
            await _start(b)
            for i in range(N):
                await b.log_sample(*_sample(i))
            result = await b.save()
        with pytest.raises(RunStateError, match="already resumed"):
            await recover(workdir)
    assert {t: sorted(q) for t, q in _rows(result).items()} == _queries(range(N))
    assert any("status.json is damaged" in w for w in result.warnings)
    status = read_status(workdir)
    assert status is not None and (status.state, status.successor) == ("resumed", b.run_id)


async def test_resuming_a_live_run_is_refused(tmp_path: Path) -> None:
    """resume_from a run that is still running in a live process fails on entry."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as a:
            with pytest.raises(RunStateError, match="held by the live run"):
                async with EvaluationTracker(tmp_path, resume_from=a.workdir):
                    pass


# -- liveness ----------------------------------------------------------------------------------


def _status(pid: int, start_time: float) -> RunStatus:
    return RunStatus(
        state="running",
        run_id="r",
        pid=pid,
        host=socket.gethostname(),
        start_time=start_time,
        updated=start_time,
    )


def test_this_process_is_alive() -> None:
    """A running status with this pid and a start time after it began is alive."""
    assert is_alive(_status(os.getpid(), time.time()))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_reused_pid_is_not_the_run() -> None:
    """A live pid whose process started after the run began (a reused pid) is not the run."""
    assert not is_alive(_status(os.getpid(), time.time() - 10 * 86400))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_zombie_is_not_alive() -> None:
    """A killed, not yet reaped child (a zombie) does not keep its run alive."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        started = time.time()
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert not is_alive(_status(child.pid, started))
    finally:
        child.wait()
        assert child.stdin is not None
        child.stdin.close()


def test_run_folders_are_created_durably_and_failures_translated(tmp_path: Path) -> None:
    """make_dirs_durable creates missing parents; a write that cannot happen is a StorageError."""
    folder = tmp_path / "out" / ".evalstream" / "run"
    make_dirs_durable(folder)
    assert folder.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="could not write"):
        make_dirs_durable(blocker / "run")
    with pytest.raises(StorageError, match="could not write"):
        write_status(blocker, _status(os.getpid(), time.time()))
