"""The one actor shape: drain a bounded inbox, handle each message, finish when it closes.

An actor owns its state; nothing else reads or writes it while the actor runs. The inbox is a
bounded memory object stream, so a slow actor makes its producers wait instead of growing memory.
The last sender clone closing is the end of the run: the actor then ``finish()``es (compiles) and
sets ``done``, which is what ``save()`` waits on.

An exception while handling a message (a bug: inputs are checked in the caller) is contained:
the message is skipped and counted in the run's ``Faults``, the actor goes on draining its inbox
(so producers never block on a dead actor) and the run reports the failure instead of dying.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio import TASK_STATUS_IGNORED

from evalstream._messages import EncodedBatch, Flush, Inbound, RunMessage, ScoreBatch

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream

    from evalstream._messages import Score


class ActorStats(msgspec.Struct, frozen=True):
    """A read-only snapshot of one actor's progress."""

    name: str
    received: int
    inbox_depth: int
    inbox_capacity: float
    waiting_senders: int
    buffered_rows: int = 0


class Faults:
    """What the run's actors could not handle: the first exception, and what was skipped.

    Shared by the actors of one run. ``on_first`` (set by the run host) is awaited once, at the
    first fault, to mark the run ``failed`` with the cause while the journal keeps everything.
    """

    _KEPT = 10

    def __init__(self) -> None:
        self.first: Exception | None = None
        self.actor = ""
        self.messages = 0
        self.samples = 0
        self.errors: list[str] = []
        self.forgiven: dict[str, Any] | None = None
        self.on_first: Callable[[str], Awaitable[None]] | None = None

    async def record(self, actor: str, exc: Exception, *, samples: int = 0) -> None:
        """Count one skipped message (or ``samples`` samples of one) and keep its error."""
        if samples:
            self.samples += samples
        else:
            self.messages += 1
        if len(self.errors) < self._KEPT:
            self.errors.append(f"{actor}: {type(exc).__name__}: {exc}")
        if self.first is None:
            self.first, self.actor = exc, actor
            if self.on_first is not None:
                await self.on_first(f"the {actor} actor failed: {exc!r}")

    def forgive(self) -> dict[str, Any] | None:
        """Clear the faults (a resumed run's replay of a dead run), keeping their summary."""
        if self.first is None:
            return None
        self.forgiven = self.summary()
        self.first, self.actor, self.messages, self.samples, self.errors = None, "", 0, 0, []
        return self.forgiven

    def summary(self) -> dict[str, Any]:
        """The skipped counts and the first errors, for a recovered run's partial section."""
        return {"messages": self.messages, "samples": self.samples, "errors": list(self.errors)}


class Actor:
    """Base of the five loggers; subclasses implement ``handle`` with one exhaustive ``match``."""

    name = "actor"

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.received = 0
        self.started = False
        self.faults = Faults()  # replaced by the coordinator's, shared by the run's actors
        self._inbox: MemoryObjectReceiveStream[Inbound] | None = None

    async def run(
        self,
        inbox: MemoryObjectReceiveStream[Inbound],
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Consume ``inbox`` until every sender has closed, then finish."""
        self._inbox = inbox
        self.started = True
        task_status.started()
        try:
            async with inbox:
                async for message in inbox:
                    self.received += 1
                    try:
                        await self._dispatch(message)
                    except Exception as exc:  # noqa: BLE001 - contained: skipped and counted
                        await self.faults.record(self.name, exc)
            try:
                await self.finish()
            except Exception as exc:  # noqa: BLE001 - contained: the run reports it
                await self.faults.record(self.name, exc)
        finally:
            self.done.set()

    async def _dispatch(self, message: Inbound) -> None:
        if isinstance(message, Flush):
            try:
                await self.flush()
            finally:
                message.done.set()
        elif isinstance(message, EncodedBatch):
            await self.handle_encoded(message.payloads)
        elif isinstance(message, ScoreBatch):
            await self.handle_scores(message.scores)
        else:
            await self.handle(message)

    async def handle(self, message: RunMessage) -> None:
        """Apply one data message to the actor's state."""
        raise NotImplementedError

    async def handle_encoded(self, payloads: tuple[bytes, ...]) -> None:
        """Apply an already-encoded sample batch (only the details actor is sent these)."""
        raise NotImplementedError

    async def handle_scores(self, scores: list[Score]) -> None:
        """Apply a live batch's metric values (only the metrics actor is sent these)."""
        raise NotImplementedError

    async def flush(self) -> None:
        """Make everything received so far durable (no-op for in-memory actors)."""

    async def finish(self) -> None:
        """Compile the actor's results once the inbox is closed and drained."""

    def buffered_rows(self) -> int:
        """Rows held in memory and not yet on disk."""
        return 0

    def stats(self) -> ActorStats:
        """A snapshot of inbox depth, back-pressure and buffered rows."""
        if self._inbox is None:
            return ActorStats(self.name, self.received, 0, 0, 0, self.buffered_rows())
        s = self._inbox.statistics()
        return ActorStats(
            self.name,
            self.received,
            s.current_buffer_used,
            s.max_buffer_size,
            s.tasks_waiting_send,
            self.buffered_rows(),
        )
