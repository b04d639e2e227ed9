"""The details worker: a child process that hashes, counts and stores every sample's row.

Hashing, row encoding and Arrow conversion are Python work of some 20 us per sample that
holds the GIL wherever it runs; in the tracker's process it would compete with the event loop
(and an inference server on it). The details actor starts this process and streams it the encoded
sample batches the journal already holds, so the work runs on another core.

One process serves many runs at once (the runtime's pool, ``details/pool.py``). Protocol, over
the pipes (``details/protocol.py``): the parent sends frames (``durability/frames``), each one
msgpack-encoded message naming the run's channel: ``Open`` (workdir, keep_rows, shard, layout of
the details columns, umask), ``Forward`` (a journal-encoded message: tasks, sample batch, as the
journal's bytes), ``Flush`` and ``End`` (requests, numbered), ``Drop`` (a run that ended without
``End``). Each request is answered with one JSON line: a ``State`` (the run's error, and per
task its segment, samples, pending rows and summary), or ``Failed`` for a run the worker does
not know. ``End`` closes the run's segments and, when it names an ``Output``, writes each of
its tasks as a parquet file there (``State.written``: paths, warnings, error), then forgets the
run: a task whose parquet was written live (``sinks.live_parquet``, fed from each batch's
columns as it is ingested) is only closed and moved into place. A write that fails (disk full)
keeps its rows pending, reports the error on the next answer, and is retried with the next
batch or flush; anything else a run's data breaks is that run's error. Runs share nothing but
the process. When stdin closes (the pool closing) the worker closes every segment and exits:
the journal, not the segments, is what recovery reads. When the parent process dies the worker
leaves at once, mid-conversion or not, writing nothing more (``details/parent_watch.py``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import zlib
from pathlib import Path
from typing import Any, BinaryIO, assert_never

import msgspec

from evalstream._errors import EvalStreamError
from evalstream._messages import DECODER, SampleBatch, ScoredSample, TasksDeclared
from evalstream.details.parent_watch import spawn_env, watch_parent
from evalstream.details.protocol import (
    FROM_PARENT,
    TO_PARENT,
    DetailsWritten,
    Drop,
    End,
    Failed,
    Flush,
    Forward,
    FromWorker,
    Open,
    Output,
    State,
    TaskState,
)
from evalstream.details.task_state import TaskDetails
from evalstream.durability.frames import iter_frames
from evalstream.durability.storage import translate_oserror

LIVE_OPEN_FILES = 64
"""Live parquet parts a run keeps open (with 8, sixty interleaved tasks reopened parts all run
long and joined them at its end); one not fed for ``LIVE_IDLE`` ingests is closed all the same
(a finished task's open writer held ~0.4 MB: W3's sixty, 24 MB)."""
LIVE_IDLE = 16
LIVE_PENDING_ROWS = 8192
"""Rows a run's live files may hold before the stalest group is written early."""
HOLD_ROWS = 2048
"""Samples a run holds, decoded, before they are ingested task by task: one call per task for
many batches (a 256-sample batch over 60 tasks made 60 calls of 4 rows, a row group each)."""
GROUP_ROWS = 256
"""A task holding this many ingests everything held (a batch of one task is never held, nor a
finished task's tail behind the next task's batches)."""


class Worker:
    """The worker's state: one TaskDetails per task, and the last write error."""

    def __init__(
        self, workdir: Path, keep_rows: bool, shard: int = 0, layout: str = "flat"
    ) -> None:
        self.workdir = workdir
        self.layout = layout
        self.shard = shard
        self.keep_rows = keep_rows
        self.categories: dict[str, frozenset[str]] = {}
        self.tasks: dict[str, TaskDetails] = {}
        self.error: str | None = None
        self.broken = False
        self.umask = 0o022
        self.batches = 0
        self.held: dict[str, list[ScoredSample]] = {}
        self.held_rows = 0
        self.hold_rows = HOLD_ROWS

    def task(self, name: str) -> TaskDetails:
        """The task's state, created on its first sample (with its live parquet file)."""
        task = self.tasks.get(name)
        if task is None:
            segment = self.workdir / "segments" / f"{self.shard}-{len(self.tasks):05d}.seg"
            task = TaskDetails(name, segment, self.categories.get(name, frozenset()), self.layout)
            if self.keep_rows:
                from evalstream.details.live_parquet import LiveParquet  # pyarrow: workers only

                task.live = LiveParquet(segment.with_suffix(".parquet"), self.layout)
            self.tasks[name] = task
        return task

    def bound_live(self) -> None:
        """Bound the live files' pending rows (the least recently fed group is written first,
        not the one a task is still filling) and open parts (the least recently fed, and any
        idle for ``LIVE_IDLE`` ingests, are written and closed)."""
        live = [t.live for t in self.tasks.values() if t.live is not None]
        pending = [f for f in live if f.group_rows]
        while pending and sum(f.group_rows for f in pending) > LIVE_PENDING_ROWS:
            stalest = min(pending, key=lambda f: f.last_used)
            stalest.write_group()
            pending.remove(stalest)
        opened = sorted((f for f in live if f.is_open), key=lambda f: f.last_used)
        over = opened[: max(0, len(opened) - LIVE_OPEN_FILES)]
        for file in live:
            if file.last_used < self.batches - LIVE_IDLE or file in over:
                file.suspend()  # nothing to do for one already written and closed

    def drop_live(self) -> None:
        """Abandon every live file and held sample (no conversion, or the worker exits)."""
        self.held.clear()
        self.held_rows = 0
        for live in [t.live for t in self.tasks.values() if t.live is not None]:
            live.abandon()

    def message(self, body: bytes) -> None:
        """Apply one journal-encoded message."""
        message = DECODER.decode(body)
        if isinstance(message, TasksDeclared):
            for spec in message.tasks:
                self.categories[spec.name] = frozenset(spec.categories)
                if spec.name in self.tasks:
                    self.tasks[spec.name].categories = frozenset(spec.categories)
        elif isinstance(message, SampleBatch):
            held = self.held
            for sample in message.samples:
                if sample.scope != "metrics":
                    held.setdefault(sample.task_name, []).append(sample)
                    self.held_rows += 1
            largest = max(map(len, held.values()), default=0)
            if self.held_rows >= self.hold_rows or largest >= GROUP_ROWS:
                self.ingest_held()

    def ingest_held(self) -> None:
        """Hash, encode and write the held samples, one call per task."""
        held, self.held, self.held_rows = self.held, {}, 0
        if not held:
            return
        self.batches += 1
        for name, group in held.items():
            task = self.task(name)
            if task.live is not None:
                task.live.last_used = self.batches
            task.ingest(group, self.keep_rows)
            self.attempt(task.write_pending)
        self.bound_live()

    def attempt(self, write: Any) -> None:
        """Run a write; remember a failure instead of dying (the rows stay pending)."""
        try:
            write()
        except EvalStreamError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = str(translate_oserror(exc, "a details segment"))
        else:
            if not self.broken and not any(t.pending for t in self.tasks.values()):
                self.error = None

    def guarded(self, body: bytes) -> None:
        """Apply a message (``b""``: ingest the held samples); anything it breaks is this run's
        lasting error, not the process's. The collector is off meanwhile: a decoded batch is a
        tree that dies by reference count, so young collections would find nothing (they were
        a third of the decoding time, measured on the W1 shape)."""
        if self.broken:
            return
        gc.disable()
        try:
            if body:
                self.message(body)
            else:
                self.ingest_held()
        except Exception as exc:  # noqa: BLE001 - the process serves other runs: report, go on
            self.broken = True
            self.error = f"the details worker failed on this run: {type(exc).__name__}: {exc}"
        finally:
            gc.enable()

    def convert(self, output: Output) -> DetailsWritten:
        """Write this worker's tasks as parquet under the run's output folder; the live files
        are finished or given up either way."""
        try:
            return self._convert(output)
        finally:
            self.drop_live()

    def _convert(self, output: Output) -> DetailsWritten:
        if self.error is not None or not self.keep_rows:
            return DetailsWritten({}, [], self.error)
        from evalstream.details.parquet import write_details_sync  # pyarrow only when converting
        from evalstream.durability.storage import OutputStore

        live = {
            name: path
            for name, t in self.tasks.items()
            if t.live is not None and (path := t.live.finish()) is not None
        }
        try:
            paths, warnings = write_details_sync(
                OutputStore(output.root),
                output.model_name,
                output.date_id,
                {name: t.segment for name, t in self.tasks.items()},
                self.layout,
                live,
            )
        except Exception as exc:  # noqa: BLE001 - reported to the parent as the local outcome
            return DetailsWritten({}, [], f"{type(exc).__name__}: {exc}")
        return DetailsWritten(paths, warnings)

    def sync(self) -> None:
        """Ingest the held samples, write pending rows and fsync every segment (errors are
        remembered; what the held samples break is the run's error, as in ``guarded``)."""
        self.guarded(b"")
        for task in self.tasks.values():
            self.attempt(task.sync)

    def close(self) -> None:
        """Close every segment file."""
        for task in self.tasks.values():
            with contextlib.suppress(OSError):
                task.close()

    def state(self, request: int, written: DetailsWritten | None = None) -> State:
        """The answer to request ``request``: every task's state, the error, what was written
        (digests that cannot be read back are the run's lasting error: its hashes are lost)."""
        tasks = {}
        for name, t in self.tasks.items():
            try:
                summary = t.compiled()
            except OSError as exc:
                self.broken, summary = True, {}
                self.error = str(translate_oserror(exc, f"the digests of {name!r}"))
            pending, samples = t.pending_rows, t.counters.samples
            tasks[name] = TaskState(
                segment=str(t.segment), samples=samples, pending_rows=pending, summary=summary
            )
        return State(request=request, written=written, error=self.error, tasks=tasks)

    def end(self, request: int, output: Output | None) -> State:
        """Flush and close the run's segments, write its parquet under ``output`` if given."""
        self.sync()
        self.close()
        if output is None:
            self.drop_live()
            return self.state(request)
        return self.state(request, self.convert(output))


def opened(message: Open) -> Worker:
    """A run's fresh state, as its ``Open`` message describes it."""
    worker = Worker(Path(message.workdir), message.keep_rows, message.shard, message.layout)
    worker.umask = message.umask
    return worker


def unknown(request: int) -> Failed:
    """The answer to a request on a channel the worker does not know (never opened, or ended)."""
    return Failed(request=request, error="the details worker holds no state for this run")


def reply(stdout: BinaryIO, message: FromWorker) -> None:
    """Write one answer line, at once: the parent is waiting for it."""
    stdout.write(TO_PARENT.encode(message) + b"\n")
    stdout.flush()


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Handle messages from ``stdin`` until end of input; each run's state is its channel's.

    A run's error (its disk, or a bug its data hits) stays in that run's state and is reported
    to it; it never stops the process, which other runs share. One ``match`` over the decoded
    message, closed by ``assert_never``: a message added to ``ToWorker`` fails type checking
    here until it is handled.
    """
    runs: dict[int, Worker] = {}
    umask: int | None = None
    for payload in iter_frames(stdin):
        message = FROM_PARENT.decode(payload)
        if (owner := runs.get(message.channel)) is not None and owner.umask != umask:
            umask = owner.umask  # files are created with the modes their run's process would use
            os.umask(umask)
        match message:
            case Open():
                runs[message.channel] = opened(message)
            case Forward(payload=body):
                if owner is not None:
                    owner.guarded(body)
            case Flush(request=request):
                if owner is not None:
                    owner.sync()
                reply(stdout, unknown(request) if owner is None else owner.state(request))
            case End(channel=channel, request=request, output=output):
                runs.pop(channel, None)
                reply(stdout, unknown(request) if owner is None else owner.end(request, output))
                settle_gc()
            case Drop(channel=channel):
                if owner is not None:
                    del runs[channel]
                    owner.close()
                    owner.drop_live()
            case _:
                assert_never(message)
    for worker in runs.values():
        worker.close()
        worker.drop_live()
    return 0


def preload() -> None:
    """Import what the end-of-run conversion needs now, while the worker idles at its start.

    The interpreter compiles imports from source (``PYTHONDONTWRITEBYTECODE``): importing
    ``pyarrow.parquet`` inside ``save()`` was ~14 % of W1's save, and the first ``cast`` imports
    ``pyarrow.compute`` (0.1 s more). Imported before ``settle_gc`` freezes the modules. Not at
    module level: the tracker's process imports this module and writes no parquet.
    """
    import pyarrow.compute  # the first cast imports it (with pydoc and inspect)
    import pyarrow.parquet  # noqa: F401


def settle_gc() -> None:
    """Collect once, then move every survivor (modules, caches) out of the collector's scans.

    The worker allocates a few dozen tracked objects per sample and keeps almost none, but each
    young collection that promotes them makes later full passes scan every imported module
    (numpy, pyarrow, msgspec): measured on the W1 shape, the worker's decode + hash + row work
    fell from 23 to 16 us per sample with the survivors frozen. Called at start and after each
    run ends (which may have imported pyarrow), so nothing of a live run is ever frozen.
    """
    gc.collect()
    gc.freeze()


def rebuild_details(
    journal: Path, workdir: Path, output: Output, layout: str = "flat"
) -> DetailsWritten:
    """Replay ``journal``'s samples into fresh segments under ``workdir``, write the parquet.

    For a retried save whose workers could not write their files (disk full): the workers have
    exited, the journal holds every sample. Runs in the tracker's process (a worker thread);
    a frame that does not decode is skipped.
    """
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    worker = Worker(workdir, keep_rows=True, layout=layout)
    for path in sorted(journal.glob("*.wal")):
        with path.open("rb") as handle:
            for payload in iter_frames(handle):
                with contextlib.suppress(msgspec.DecodeError):
                    worker.message(payload)
    worker.sync()
    worker.close()
    return worker.convert(output)


def command() -> list[str]:
    """The command line that starts a worker process."""
    return [sys.executable, "-m", "evalstream.details.worker"]


def worker_env() -> dict[str, str]:
    """The worker's environment: Arrow on the system allocator unless the user chose one (on
    W1 the worker's peak growth was 106-120 MB with mimalloc, 64 MB on the system allocator;
    only this variable reaches the parquet writer's C++ pool), and what the worker needs to die
    with this process (``parent_watch.spawn_env``)."""
    return {"ARROW_DEFAULT_MEMORY_POOL": "system", **os.environ, **spawn_env()}


def shard_of(task_name: str, shards: int) -> int:
    """The worker that owns ``task_name`` (stable across processes, unlike ``hash``)."""
    return zlib.crc32(task_name.encode()) % shards


if __name__ == "__main__":
    watch_parent()  # first: a parent killed from here on leaves nothing written
    # the parent's signals are its own: a worker ends when its stdin closes, after the last run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    preload()
    settle_gc()
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
