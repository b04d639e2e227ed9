"""The details logger: every sample's row, hashes and counters, kept by a worker process.

The actor starts ``_details_worker`` as a child process in ``run()`` and forwards it the
journal-encoded sample batches (bytes: nothing is encoded twice), so hashing and row encoding
run on another core and never hold this process's GIL or event loop. Writing to the pipe is
asynchronous and bounded by the pipe buffer: a worker that falls behind makes the actor, and so
the producers, wait. ``flush()`` and the end of the run ask the worker for its state (segment
paths, counts, compiled hashes) and any write error, which producers then see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

import anyio
import msgspec
from anyio import TASK_STATUS_IGNORED
from anyio.streams.buffered import BufferedByteReceiveStream

from evalstream._actor import Actor
from evalstream._details_worker import command, encode_request
from evalstream._errors import EvalStreamError, StorageError
from evalstream._frames import read_frames
from evalstream._messages import (
    ENCODER,
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    TasksDeclared,
    TaskVersion,
)
from evalstream._rows import iter_rows

if TYPE_CHECKING:
    from anyio.abc import Process, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream

    from evalstream._messages import Inbound

_MAX_LINE = 1 << 30


class TaskSummary(msgspec.Struct, frozen=True):
    """One task's details as the worker reports them."""

    segment: Path
    samples: int
    pending_rows: int
    summary: dict[str, Any]

    def compiled(self) -> dict[str, Any]:
        """``summary_tasks[task]``: hashes and counters."""
        return self.summary


def read_rows(segment: Path) -> list[dict[str, Any]]:
    """Every row of a segment (for snapshots and tests; the parquet writer streams instead)."""
    if not segment.exists():
        return []
    return list(iter_rows(read_frames(segment)))


class DetailsActor(Actor):
    """Forwards samples to the details worker process and keeps its latest report."""

    name = "details"

    def __init__(self, workdir: Path, *, save_details: bool = True) -> None:
        super().__init__()
        self.workdir = workdir
        self.save_details = save_details
        self.failure: EvalStreamError | None = None
        self._tasks: dict[str, TaskSummary] = {}
        self._process: Process | None = None
        self._replies: BufferedByteReceiveStream | None = None

    async def run(
        self,
        inbox: MemoryObjectReceiveStream[Inbound],
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Start the worker, then consume the inbox; the worker never outlives the actor."""
        process = await anyio.open_process(command(self.workdir, self.save_details), stderr=None)
        self._process = process
        assert process.stdout is not None
        self._replies = BufferedByteReceiveStream(process.stdout)
        try:
            await super().run(inbox, task_status=task_status)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    with anyio.move_on_after(5):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                await process.aclose()

    async def handle(self, message: RunMessage) -> None:
        """Forward tasks and samples; ignore the rest."""
        match message:
            case TasksDeclared() | SampleBatch():
                await self.forward(ENCODER.encode(message))
            case ArgsInfo() | ModelInfoLogged() | TaskVersion() | NumDocs() | EndOfRun():
                pass
            case _:
                assert_never(message)

    async def handle_encoded(self, payload: bytes) -> None:
        """Forward a sample batch in the journal's encoding, as it is."""
        await self.forward(payload)

    async def forward(self, encoded: bytes) -> None:
        """Send one journal-encoded message to the worker (waits while the pipe is full)."""
        await self._send(encode_request(b"M", encoded))

    async def _send(self, data: bytes) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            await self._process.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.failure = EvalStreamError(
                f"the details worker process stopped ({exc!r}); the journal keeps every sample: "
                "run `evalstream recover` on the run folder"
            )
            raise self.failure from exc

    async def _ask(self, kind: bytes) -> None:
        await self._send(encode_request(kind))
        assert self._replies is not None
        line = await self._replies.receive_until(b"\n", _MAX_LINE)
        state = json.loads(line)
        self._tasks = {
            name: TaskSummary(Path(t["segment"]), t["samples"], t["pending_rows"], t["summary"])
            for name, t in state["tasks"].items()
        }
        error = state["error"]
        self.failure = StorageError(error) if error else None

    async def flush(self) -> None:
        """Have the worker write and fsync every segment, and report."""
        await self._ask(b"F")

    async def finish(self) -> None:
        """Have the worker flush and close every segment, report, and exit."""
        await self._ask(b"E")
        assert self._process is not None
        if self._process.stdin is not None:
            await self._process.stdin.aclose()
        await self._process.wait()

    def buffered_rows(self) -> int:
        """Rows the worker held in memory at its last report (unwritten after a failure)."""
        return sum(t.pending_rows for t in self._tasks.values())

    def tasks(self) -> dict[str, TaskSummary]:
        """The tasks at the worker's last report (complete after ``flush`` or the end)."""
        return dict(self._tasks)
