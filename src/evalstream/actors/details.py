"""The details logger: every sample's row, hashes and counters, kept by a worker process.

The actor opens one channel per shard on the runtime's shared details worker processes
(``details/pool.py``, ``details/worker.py``) and forwards them the journal-encoded sample batches (bytes: nothing is encoded
twice), so hashing and row encoding run on another core and never hold this process's GIL or
event loop. Writing to the pipe is asynchronous, bounded by the pipe buffer and taken in turn
with the other runs: a worker that falls behind makes the actor, and so the producers, wait. ``flush()`` and the end of the run ask the worker for its state (segment
paths, counts, compiled hashes) and any write error, which producers then see.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, assert_never

import anyio
import msgspec
from anyio import TASK_STATUS_IGNORED

from evalstream._errors import EvalStreamError, StorageError
from evalstream._messages import (
    ENCODER,
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
from evalstream.actors.base import Actor
from evalstream.details.protocol import DetailsWritten, Failed, FromWorker, Output, State
from evalstream.details.worker import rebuild_details, shard_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream

    from evalstream._messages import Inbound
    from evalstream.details.pool import Channel

T = TypeVar("T")


class TaskSummary(msgspec.Struct, frozen=True):
    """One task's details as the worker reports them."""

    segment: Path
    samples: int
    pending_rows: int
    summary: dict[str, Any]

    def compiled(self) -> dict[str, Any]:
        """``summary_tasks[task]``: hashes and counters."""
        return self.summary


class DetailsActor(Actor):
    """Forwards samples to the details worker processes and keeps their latest reports.

    Tasks are sharded over ``workers`` processes by a stable hash of their name, so a run of
    several tasks uses several cores; each task's segment is written by exactly one worker.
    """

    name = "details"

    def __init__(
        self,
        workdir: Path,
        channels: list[Channel],
        *,
        save_details: bool = True,
        layout: str = "flat",
    ) -> None:
        super().__init__()
        self.workdir = workdir
        self.save_details = save_details
        self.shards = len(channels)
        self._workers = channels
        self.layout = layout
        self.failure: EvalStreamError | None = None
        self.written = DetailsWritten({}, [])
        self._output: Output | None = None
        self._tasks: dict[str, TaskSummary] = {}
        self._opened = False

    @property
    def opened(self) -> bool:
        """Whether this run has opened its channels on the workers (its first task or sample)."""
        return self._opened

    @property
    def pids(self) -> list[int]:
        """The ids of the (shared) worker processes this run's tasks are sharded over."""
        return [w.pid for w in self._workers]

    async def run(
        self,
        inbox: MemoryObjectReceiveStream[Inbound],
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Consume the inbox; the workers forget the run after (``_open`` opens its channels
        when it first has something for them)."""
        try:
            await super().run(inbox, task_status=task_status)
        finally:
            for channel in self._workers:
                await channel.close()

    async def _open(self) -> None:
        """Open this run's channels, once, before the first message the workers need: a run
        that never declares a task nor logs a sample costs them nothing (no ``Open``, no
        ``End`` round trip at save)."""
        if self._opened:
            return
        self._opened = True
        for shard, channel in enumerate(self._workers):
            await self._call(channel.open(self.workdir, self.save_details, shard, self.layout))

    async def handle(self, message: RunMessage) -> None:
        """Forward tasks to every worker and samples to their owners; ignore the rest."""
        match message:
            case TasksDeclared():
                await self._open()
                encoded = ENCODER.encode(message)
                for worker in self._workers:
                    await self._call(worker.message(encoded))
            case SampleBatch(samples=samples):
                groups: list[list[ScoredSample]] = [[] for _ in self._workers]
                for sample in samples:
                    groups[shard_of(sample.task_name, self.shards)].append(sample)
                await self.handle_encoded(
                    tuple(
                        ENCODER.encode(SampleBatch(samples=tuple(g))) if g else b"" for g in groups
                    )
                )
            case ArgsInfo() | ModelInfoLogged() | TaskVersion() | NumDocs() | EndOfRun():
                pass
            case _:
                assert_never(message)

    async def handle_encoded(self, payloads: tuple[bytes, ...]) -> None:
        """Forward each worker its share of a batch, in the journal's encoding."""
        await self._open()
        for worker, payload in zip(self._workers, payloads, strict=True):
            if payload:
                await self._call(worker.message(payload))

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except EvalStreamError as exc:
            self.failure = exc
            raise

    def set_output(self, root: Path, model_name: str, date_id: str) -> None:
        """Where the workers write the details parquet when the run ends (before closing)."""
        self._output = Output(root=str(root), model_name=model_name, date_id=date_id)

    async def _ask(
        self, request: Callable[[Channel], Awaitable[FromWorker]], *, end: bool = False
    ) -> None:
        """Send every worker the same request, then take in their answers as the run's state
        (and, at the ``end``, as what was written). Channels never opened hold nothing: the
        run's state is empty, with nothing written, and the workers are not asked."""
        if not self._opened:
            return
        states: dict[int, FromWorker] = {}

        async def ask(n: int, channel: Channel) -> None:
            states[n] = await self._call(request(channel))

        if len(self._workers) == 1:  # one worker: no task group to spawn
            await ask(0, self._workers[0])
        else:
            async with anyio.create_task_group() as tg:  # at once: the workers work in parallel
                for n, channel in enumerate(self._workers):
                    tg.start_soon(ask, n, channel)
        tasks: dict[str, TaskSummary] = {}
        errors = []
        paths: dict[str, str] = {}
        warnings: list[str] = []
        write_errors = []
        for _, state in sorted(states.items()):  # in shard order, not in order of answer
            match state:
                case State(tasks=reported, error=error, written=written):
                    if written is not None:
                        paths.update(written.paths)
                        warnings.extend(written.warnings)
                        if written.error:
                            write_errors.append(written.error)
                    tasks.update(
                        (name, TaskSummary(Path(t.segment), t.samples, t.pending_rows, t.summary))
                        for name, t in reported.items()
                    )
                case Failed(error=error):
                    pass
                case _:
                    assert_never(state)
            if error:
                errors.append(error)
        self._tasks = tasks
        self.failure = StorageError("; ".join(errors)) if errors else None
        if end:
            self.written = DetailsWritten(
                dict(sorted(paths.items())), warnings, "; ".join(write_errors) or None
            )

    async def rebuild(self, journal: Path) -> None:
        """Write the details parquet again from ``journal`` after the workers failed to."""
        output = self._output
        if output is None or not self.save_details:
            return
        written = await anyio.to_thread.run_sync(
            rebuild_details, journal, self.workdir / "rebuild", output, self.layout
        )
        self.written = DetailsWritten(
            dict(sorted(written.paths.items())), written.warnings, written.error
        )

    async def flush(self) -> None:
        """Have the workers write and fsync every segment, and report."""
        await self._ask(lambda channel: channel.flush())

    async def finish(self) -> None:
        """Have the workers flush and close the run's segments, write parquet if asked, and
        forget the run."""
        output = self._output if self.save_details else None
        await self._ask(lambda channel: channel.end(output), end=True)

    def buffered_rows(self) -> int:
        """Rows the workers held in memory at their last report (unwritten after a failure)."""
        return sum(t.pending_rows for t in self._tasks.values())

    def tasks(self) -> dict[str, TaskSummary]:
        """The tasks at the workers' last report (complete after ``flush`` or the end)."""
        return dict(self._tasks)
