"""The details logger: every sample's row, streamed to a per-task segment file as it arrives.

Samples are hashed and encoded on the event loop in chunks of ``CHUNK``, yielding between
chunks: the work holds the GIL wherever it runs, and doing it here in slices bounds the lag it
adds to the loop (in a worker thread it would stall the loop for up to the interpreter's 5 ms
switch interval at a time). The encoded frames are appended to
``{workdir}/segments/{index}.seg`` from a worker thread, so the disk never blocks the loop. At
most one batch per task is held in memory; a batch whose write failed (disk full) is kept and
written first on the next batch or flush, and the failure is reported to the producers. Hashes
and counters are kept per task, compactly.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, BinaryIO, assert_never

import anyio

from evalstream._actor import Actor
from evalstream._errors import EvalStreamError
from evalstream._frames import frame, read_frames
from evalstream._hashing import GrowableU64, TaskCounters, compile_hashes, sample_hashes
from evalstream._messages import (
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    ScoredSample,
    TasksDeclared,
    TaskVersion,
)
from evalstream._rows import encode_rows, iter_rows
from evalstream._storage import translate_oserror

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream._types import TaskSpec


CHUNK = 64
"""Samples hashed and encoded between two yields to the event loop (about 1 ms of work)."""


class TaskDetails:
    """One task's hashes, counters and segment file; touched only by the details actor."""

    def __init__(self, name: str, segment: Path, categories: frozenset[str]) -> None:
        self.name = name
        self.segment = segment
        self.categories = categories
        self.hashes = tuple(GrowableU64() for _ in range(4))
        self.counters = TaskCounters()
        self.pending: list[bytes] = []
        self.pending_rows = 0
        self.handle: BinaryIO | None = None

    def ingest(self, samples: list[ScoredSample], keep_rows: bool) -> None:
        """Hash, count and encode ``samples`` into a pending frame (CPU only, no I/O)."""
        for sample in samples:
            for column, digest in zip(
                self.hashes, sample_hashes(sample.doc, sample.outputs), strict=True
            ):
                column.append(digest)
            self.counters.add(sample.doc, sample.outputs)
        if keep_rows and samples:
            self.pending.append(frame(encode_rows(samples, self.categories)))
            self.pending_rows += len(samples)

    def write_pending(self) -> None:
        """Append the pending frames to the segment; on failure keep them for the next try."""
        if not self.pending:
            return
        good: int | None = None
        try:
            if self.handle is None:
                self.segment.parent.mkdir(parents=True, exist_ok=True)
                self.handle = self.segment.open("ab")
            good = self.handle.tell()
            self.handle.write(b"".join(self.pending))
            self.handle.flush()
        except OSError as exc:
            self._cut_back(good)
            raise translate_oserror(exc, f"the details segment of {self.name!r}") from exc
        self.pending.clear()
        self.pending_rows = 0

    def _cut_back(self, good: int | None) -> None:
        """After a short write, drop the partial frames so the retry does not duplicate them."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):  # the buffered tail is what we cut off anyway
            handle.close()
        if good is not None:
            # if this fails too, the next write reports the disk; reading stops at the torn frame
            with contextlib.suppress(OSError), self.segment.open("r+b") as again:
                again.truncate(good)

    def sync(self) -> None:
        """Write pending frames and fsync the segment."""
        self.write_pending()
        if self.handle is not None:
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        """Close the segment file."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def compiled(self) -> dict[str, Any]:
        """``summary_tasks[task]``: hashes and counters."""
        return {
            "hashes": compile_hashes([c.values for c in self.hashes]),
            **self.counters.summary(),
        }


def read_rows(segment: Path) -> list[dict[str, Any]]:
    """Every row of a segment (for snapshots and tests; the parquet writer streams instead)."""
    if not segment.exists():
        return []
    return list(iter_rows(read_frames(segment)))


class DetailsActor(Actor):
    """Streams rows to disk per task and keeps hashes and counters."""

    name = "details"

    def __init__(self, workdir: Path, *, save_details: bool = True) -> None:
        super().__init__()
        self.workdir = workdir
        self.save_details = save_details
        self.failure: EvalStreamError | None = None
        self._categories: dict[str, frozenset[str]] = {}
        self._tasks: dict[str, TaskDetails] = {}

    def _task(self, name: str) -> TaskDetails:
        task = self._tasks.get(name)
        if task is None:
            segment = self.workdir / "segments" / f"{len(self._tasks):05d}.seg"
            task = TaskDetails(name, segment, self._categories.get(name, frozenset()))
            self._tasks[name] = task
        return task

    async def handle(self, message: RunMessage) -> None:
        """Declare tasks; hash, count and stream sample batches."""
        match message:
            case TasksDeclared(tasks=tasks):
                self._declare(tasks)
            case SampleBatch(samples=samples):
                await self._add(samples)
            case ArgsInfo() | ModelInfoLogged() | TaskVersion() | NumDocs() | EndOfRun():
                pass
            case _:
                assert_never(message)

    def _declare(self, tasks: tuple[TaskSpec, ...]) -> None:
        for spec in tasks:
            self._categories[spec.name] = frozenset(spec.categories)
            if spec.name in self._tasks:
                self._tasks[spec.name].categories = frozenset(spec.categories)

    async def _add(self, samples: tuple[ScoredSample, ...]) -> None:
        by_task: dict[str, list[ScoredSample]] = {}
        for sample in samples:
            if sample.scope != "metrics":
                by_task.setdefault(sample.task_name, []).append(sample)
        for name, group in by_task.items():
            task = self._task(name)
            for start in range(0, len(group), CHUNK):
                try:
                    task.ingest(group[start : start + CHUNK], self.save_details)
                except Exception as exc:  # noqa: BLE001 - odd input must not kill the run
                    self.failure = EvalStreamError(f"the details logger failed: {exc!r}")
                await anyio.lowlevel.checkpoint()
            await self._run(task.write_pending)

    async def _run(self, fn: Any, *args: Any) -> None:
        try:
            await anyio.to_thread.run_sync(fn, *args)
        except EvalStreamError as exc:
            self.failure = exc
        except Exception as exc:  # noqa: BLE001 - a bug or odd input must not kill the run
            self.failure = EvalStreamError(f"the details logger failed: {exc!r}")
        else:
            if all(not t.pending for t in self._tasks.values()):
                self.failure = None

    async def flush(self) -> None:
        """Write what is pending and fsync every segment."""
        for task in self._tasks.values():
            await self._run(task.sync)

    async def finish(self) -> None:
        """Flush and close the segments."""
        await self.flush()
        for task in self._tasks.values():
            task.close()

    def buffered_rows(self) -> int:
        """Rows waiting in memory for a write (one batch per task at most, unless writes fail)."""
        return sum(t.pending_rows for t in self._tasks.values())

    def tasks(self) -> dict[str, TaskDetails]:
        """The tasks seen, by name."""
        return dict(self._tasks)
