"""The write-ahead journal: torn tails, corruption, rotation, group commit and storage faults."""

from __future__ import annotations

import errno
import os
import random
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import EvaluationTracker, JournalCorruptError, ModelInfo, StorageError
from evalstream._messages import ENCODER, NumDocs, SampleBatch
from evalstream.durability.journal import Journal
from evalstream.durability.segments import read_journal, segment_paths

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


def _message(i: int) -> NumDocs:
    return NumDocs(task_name=f"task{i}", original_num_docs=i, effective_num_docs=i)


class _Running:
    """A journal whose writer runs in a task group for the duration of a test."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def write(self, messages: range, *, each: bool = False) -> None:
        """Append ``messages`` and wait until they are fsynced (``each``: one by one)."""
        for i in messages:
            await self.journal.append(ENCODER.encode(_message(i)))
            if each:
                await self.journal.wait_synced()
        await self.journal.wait_synced()


@asynccontextmanager
async def _journal(folder: Path, **options: Any) -> AsyncIterator[_Running]:
    journal = Journal(folder, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        yield _Running(journal)
        await journal.close()


def _written(folder: Path, n: int, *, each: bool = False, **options: Any) -> None:
    """Write messages 0..n-1 to a journal in ``folder`` and close it."""

    async def main() -> None:
        async with _journal(folder, **options) as running:
            await running.write(range(n), each=each)

    anyio.run(main)


def _names(folder: Path, **kwargs: Any) -> list[str]:
    return [m.task_name for m in read_journal(folder, **kwargs).messages]


def _expected(n: int) -> list[str]:
    return [f"task{i}" for i in range(n)]


def test_messages_come_back_in_order(tmp_path: Path) -> None:
    """Every appended message is read back, in order, with no torn tail or corruption."""
    _written(tmp_path, 100)
    read = read_journal(tmp_path, strict=True)
    assert read.messages == [_message(i) for i in range(100)]
    assert (read.torn_tail, read.corrupt) == (False, None)


@pytest.mark.parametrize("cut", [1, 5, 8, 12])
def test_torn_last_frame_is_dropped(tmp_path: Path, cut: int) -> None:
    """A last frame cut by a crash (in its header or payload) is dropped; the rest is read."""
    _written(tmp_path, 10)
    (segment,) = segment_paths(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - cut])
    read = read_journal(tmp_path, strict=True)
    assert [m.task_name for m in read.messages] == _expected(9)
    assert read.torn_tail and read.corrupt is None


def test_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    """The zeros a power cut can leave after the last frame read as a torn tail, not data."""
    _written(tmp_path, 10)
    (segment,) = segment_paths(tmp_path)
    segment.write_bytes(segment.read_bytes() + bytes(4096))
    read = read_journal(tmp_path, strict=True)
    assert len(read.messages) == 10
    assert read.torn_tail and read.corrupt is None


def test_corrupt_middle_frame_names_segment_and_offset(tmp_path: Path) -> None:
    """A bad checksum before the tail raises naming segment and offset; the prefix is kept."""
    _written(tmp_path, 10)
    (segment,) = segment_paths(tmp_path)
    data = bytearray(segment.read_bytes())
    offset = len(data) * 4 // 10
    data[offset] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match=f"{segment} at byte offset") as caught:
        read_journal(tmp_path, strict=True)
    read = read_journal(tmp_path)
    kept = len(read.messages)
    assert 0 < kept < 10
    assert read.messages == [_message(i) for i in range(kept)]
    assert read.corrupt is not None and read.corrupt in str(caught.value)
    frame_start = int(read.corrupt.rsplit(" ", 1)[1])
    assert frame_start <= offset < frame_start + len(data) // 10 + 8


def test_rotation_spreads_frames_over_segments_in_order(tmp_path: Path) -> None:
    """Past ``segment_bytes`` the journal starts a new segment; reading joins them in order."""

    async def main() -> int:
        async with _journal(tmp_path, segment_bytes=512) as running:
            await running.write(range(300), each=True)
            return running.journal.stats().segments

    segments = anyio.run(main)
    assert len(segment_paths(tmp_path)) == segments > 5
    assert _names(tmp_path, strict=True) == _expected(300)


def test_torn_frame_before_the_last_segment_is_corruption(tmp_path: Path) -> None:
    """Only the last segment can be cut by a crash: a torn earlier one stops reading there."""
    _written(tmp_path, 300, each=True, segment_bytes=512)
    first = segment_paths(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:-3])
    with pytest.raises(JournalCorruptError, match=r"000000\.wal"):
        read_journal(tmp_path, strict=True)
    names = _names(tmp_path)
    assert names == _expected(len(names)) and 0 < len(names) < 300


def test_reopening_continues_after_existing_segments(tmp_path: Path) -> None:
    """A journal opened on a folder with segments appends a new segment after them."""
    _written(tmp_path, 5)
    _written(tmp_path, 5)
    assert [p.name for p in segment_paths(tmp_path)] == ["000000.wal", "000001.wal"]
    assert len(read_journal(tmp_path).messages) == 10


async def test_group_commit_shares_fsyncs_between_waiters(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    """A thousand concurrent ``wait_synced`` calls are served by far fewer fsyncs."""
    waits = 0

    async def waiter(k: int, journal: Journal) -> None:
        nonlocal waits
        for i in range(20):
            seq = await journal.append(ENCODER.encode(_message(k * 100 + i)))
            await journal.wait_synced(seq)
            assert journal.stats().synced >= seq
            waits += 1

    with anyio.fail_after(20):
        async with _journal(tmp_path, flush_interval=60, flush_every=10**9) as running:
            del fsyncs[:]
            async with anyio.create_task_group() as tg:
                for k in range(50):
                    tg.start_soon(waiter, k, running.journal)
    assert waits == 1000
    assert 1 <= len(fsyncs) <= waits // 10
    assert len(read_journal(tmp_path).messages) == 1000


async def test_background_policy_fsyncs_every_flush_every_frames(tmp_path: Path) -> None:
    """Without any waiter, the writer fsyncs once ``flush_every`` frames are unsynced."""
    with anyio.fail_after(10):
        async with _journal(tmp_path, flush_interval=3600, flush_every=10) as running:
            journal = running.journal
            for i in range(25):
                await journal.append(ENCODER.encode(_message(i)))
            while journal.stats().synced < 20:
                await journal._wait_progress()
            assert journal.stats().written == 25


async def test_background_policy_fsyncs_after_flush_interval(tmp_path: Path) -> None:
    """Without any waiter, a lone frame is fsynced once ``flush_interval`` has passed."""
    with anyio.fail_after(10):
        async with _journal(tmp_path, flush_interval=0.05, flush_every=10**9) as running:
            journal = running.journal
            await journal.append(ENCODER.encode(_message(0)))
            while journal.stats().synced < 1:
                await journal._wait_progress()


# -- storage faults ----------------------------------------------------------------------------


class Fault:
    """An errno that the next writes of journal segments fail with (half written first)."""

    def __init__(self) -> None:
        self.errno: int | None = None
        self.failed_writes = 0


class _FaultyFile:
    """A segment handle whose ``write`` fails while ``fault.errno`` is set."""

    def __init__(self, raw: Any, fault: Fault) -> None:
        self._raw = raw
        self._fault = fault

    def write(self, data: bytes) -> int:
        code = self._fault.errno
        if code is None:
            return int(self._raw.write(data))
        self._fault.failed_writes += 1
        self._raw.write(data[: len(data) // 2])  # a short write reached the disk
        self._raw.flush()
        raise OSError(code, os.strerror(code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch) -> Fault:
    """Inject write failures at the journal's write boundary (its segment file handles)."""
    fault = Fault()
    real_open: Callable[..., Any] = Path.open

    def open_(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(path, mode, *args, **kwargs)
        return _FaultyFile(handle, fault) if path.suffix == ".wal" and "a" in mode else handle

    monkeypatch.setattr(Path, "open", open_)
    return fault


async def test_enospc_keeps_the_journal_readable_and_retries(tmp_path: Path, fault: Fault) -> None:
    """A full disk fails waiters with a clear error, cuts the torn write, and loses nothing."""
    with anyio.fail_after(20):
        async with _journal(tmp_path) as running:
            journal = running.journal
            await running.write(range(10))
            fault.errno = errno.ENOSPC
            for i in range(10, 15):
                await journal.append(ENCODER.encode(_message(i)))
            with pytest.raises(StorageError, match="disk is full"):
                await journal.wait_synced()
            assert fault.failed_writes >= 1
            assert _names(tmp_path, strict=True) == _expected(10)  # no torn frame left
            fault.errno = None
            await journal.wait_synced()
            assert journal.failure is None
    assert _names(tmp_path, strict=True) == _expected(15)


async def test_failed_fsync_is_retried_without_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync that fails is reported and retried; the frames it covered are not written twice."""
    failures = [errno.EIO]
    real = os.fsync

    def flaky(fd: int) -> None:
        if failures:
            raise OSError(failures.pop(), "fsync failed")
        real(fd)

    with anyio.fail_after(10):
        async with _journal(tmp_path) as running:
            monkeypatch.setattr(os, "fsync", flaky)
            await running.journal.append(ENCODER.encode(_message(0)))
            with pytest.raises(StorageError):
                await running.journal.wait_synced()
            await running.write(range(1, 3))
    assert _names(tmp_path, strict=True) == _expected(3)


async def test_close_gives_up_on_a_disk_that_stays_broken(tmp_path: Path, fault: Fault) -> None:
    """Closing makes one last attempt, then stops: a dead disk cannot hang the run's exit."""
    with anyio.fail_after(10):
        async with _journal(tmp_path) as running:
            await running.write(range(3))
            fault.errno = errno.EROFS
            await running.journal.append(ENCODER.encode(_message(3)))
            with pytest.raises(StorageError, match="not writable"):
                await running.journal.wait_synced()
    assert running.journal.failure is not None
    assert _names(tmp_path, strict=True) == _expected(3)


# -- through the tracker -----------------------------------------------------------------------


def _sample(i: int) -> tuple[str, Any, Any, Any]:
    task = TASKS[i % len(TASKS)]
    return (task.name, *sample(random.Random(i), task, i))


def _query(i: int) -> str:
    return str(_sample(i)[1].query)


async def _start(tracker: EvaluationTracker) -> None:
    await tracker.log_model_info(ModelInfo(model_name="org/model"))
    await tracker.log_tasks(TASKS)


def _saved_queries(result: Any) -> list[str]:
    """Every ``example`` of every details parquet of a saved run."""
    return [
        q
        for path in result.details_paths.values()
        for q in pq.read_table(path)["example"].to_pylist()
    ]


async def test_durable_log_sample_returns_once_its_sample_is_fsynced(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    """With ``durable=True`` a returned sample is in the fsynced prefix; callers share fsyncs."""
    calls = 0
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, durable=True, bootstrap_iters=0) as tracker:
            await _start(tracker)
            journal = tracker.workdir / "journal"

            async def producer(k: int) -> None:
                nonlocal calls
                for i in range(k, 160, 8):
                    await tracker.log_sample(*_sample(i))
                    calls += 1
                    synced = read_journal(journal).messages[: tracker.journal_stats().synced]
                    queries = {
                        s.doc.query for m in synced if isinstance(m, SampleBatch) for s in m.samples
                    }
                    assert _query(i) in queries

            del fsyncs[:]
            async with anyio.create_task_group() as tg:
                for k in range(8):
                    tg.start_soon(producer, k)
            assert calls == 160
            assert len(fsyncs) <= calls // 2
            result = await tracker.save()
    assert sorted(_saved_queries(result)) == sorted(_query(i) for i in range(160))


async def test_a_durable_call_that_failed_on_storage_counts_once_when_retried(
    tmp_path: Path, fault: Fault
) -> None:
    """With ``durable=True`` a ``log_sample`` whose fsync failed raises ``StorageError``, yet its
    sample was taken (the journal keeps the frame and writes it at the next flush): once the disk
    is back, the caller's retry of that call is skipped, so the doc is saved once."""
    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, durable=True, bootstrap_iters=0) as tracker:
            await _start(tracker)
            for i in range(5):
                await tracker.log_sample(*_sample(i))
            fault.errno = errno.ENOSPC
            with pytest.raises(StorageError, match="disk is full"):
                await tracker.log_sample(*_sample(5))
            fault.errno = None
            await tracker.flush()
            await tracker.log_sample(*_sample(5))  # the retry: its sample is in already
            await tracker.log_sample(*_sample(6))
            assert tracker.samples_logged == 7
            result = await tracker.save()
    assert sorted(_saved_queries(result)) == sorted(_query(i) for i in range(7))


async def _log_through_a_fault(
    tracker: EvaluationTracker, start_fault: Callable[[], Any], end_fault: Callable[[], Any]
) -> tuple[list[int], str]:
    """Log until the fault stops ``log_sample``; check the journal; clear it; flush; log more.

    Returns the samples whose ``log_sample`` returned, and the error message seen.
    """
    accepted = []
    await _start(tracker)
    for i in range(40):
        await tracker.log_sample(*_sample(i))
        accepted.append(i)
    await tracker.flush()
    await start_fault()
    with pytest.raises(StorageError) as caught:
        for i in range(40, 100_000):
            await tracker.log_sample(*_sample(i))
            accepted.append(i)
    with pytest.raises(StorageError):
        await tracker.flush()
    read = read_journal(tracker.workdir / "journal", strict=True)
    journaled = {
        s.doc.query for m in read.messages if isinstance(m, SampleBatch) for s in m.samples
    }
    assert journaled >= {_query(i) for i in range(40)}
    await end_fault()
    await tracker.flush()
    for i in range(100_000, 100_040):
        await tracker.log_sample(*_sample(i))
        accepted.append(i)
    return accepted, str(caught.value)


@pytest.mark.parametrize(
    ("code", "message"), [(errno.ENOSPC, "disk is full"), (errno.EROFS, "not writable")]
)
async def test_injected_write_fault_reaches_the_caller_and_loses_nothing(
    tmp_path: Path, fault: Fault, code: int, message: str
) -> None:
    """A failing journal write raises a clear StorageError; once it clears, flush() recovers."""

    async def start() -> None:
        fault.errno = code

    async def end() -> None:
        fault.errno = None

    with anyio.fail_after(30):
        async with EvaluationTracker(tmp_path, batch_size=8, bootstrap_iters=0) as tracker:
            accepted, error = await _log_through_a_fault(tracker, start, end)
            result = await tracker.save()
    assert message in error
    assert sorted(_saved_queries(result)) == sorted(_query(i) for i in accepted)


async def test_full_filesystem_reaches_the_caller_and_loses_nothing(small_fs: Path) -> None:
    """On a really full file system log_sample raises; freeing space and flushing loses nothing."""
    filler = small_fs / "filler"

    async def fill() -> None:
        free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
        filler.write_bytes(bytes(max(0, free - (64 << 10))))

    async def free() -> None:
        filler.unlink()

    with anyio.fail_after(30):
        async with EvaluationTracker(small_fs / "out", batch_size=8, bootstrap_iters=0) as tracker:
            accepted, error = await _log_through_a_fault(tracker, fill, free)
            result = await tracker.save()
    assert "disk is full" in error
    assert sorted(_saved_queries(result)) == sorted(_query(i) for i in accepted)


async def test_read_only_output_dir_fails_at_start_with_a_storage_error(small_fs: Path) -> None:
    """A tracker on a read-only output dir fails on entry with a StorageError."""
    await anyio.run_process(["mount", "-o", "remount,ro", str(small_fs)])
    with anyio.fail_after(10), pytest.raises(StorageError, match="not writable"):
        async with EvaluationTracker(small_fs / "out"):
            pass
