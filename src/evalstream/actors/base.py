"""The one actor shape: drain a bounded inbox, handle each message, finish when it closes.

An actor owns its state; nothing else reads or writes it while the actor runs. The inbox is a
bounded memory object stream, so a slow actor makes its producers wait instead of growing memory.
The last sender clone closing is the end of the run: the actor then ``finish()``es (compiles) and
sets ``done``, which is what ``save()`` waits on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import msgspec
from anyio import TASK_STATUS_IGNORED

from evalstream._messages import EncodedBatch, Flush, Inbound, RunMessage

if TYPE_CHECKING:
    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream


class ActorStats(msgspec.Struct, frozen=True):
    """A read-only snapshot of one actor's progress."""

    name: str
    received: int
    inbox_depth: int
    inbox_capacity: float
    waiting_senders: int
    buffered_rows: int = 0


class Actor:
    """Base of the five loggers; subclasses implement ``handle`` with one exhaustive ``match``."""

    name = "actor"

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.received = 0
        self._inbox: MemoryObjectReceiveStream[Inbound] | None = None

    async def run(
        self,
        inbox: MemoryObjectReceiveStream[Inbound],
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Consume ``inbox`` until every sender has closed, then finish."""
        self._inbox = inbox
        task_status.started()
        try:
            async with inbox:
                async for message in inbox:
                    self.received += 1
                    if isinstance(message, Flush):
                        await self.flush()
                        message.done.set()
                    elif isinstance(message, EncodedBatch):
                        await self.handle_encoded(message.payloads)
                    else:
                        await self.handle(message)
            await self.finish()
        finally:
            self.done.set()

    async def handle(self, message: RunMessage) -> None:
        """Apply one data message to the actor's state."""
        raise NotImplementedError

    async def handle_encoded(self, payloads: tuple[bytes, ...]) -> None:
        """Apply an already-encoded sample batch (only the details actor is sent these)."""
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
