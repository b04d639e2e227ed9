"""The coordinator: owns the five actors and their bounded inboxes, and routes each message.

Routing is a table from message type to actors, applied in the caller's task: a message costs
one bounded-stream send per interested actor and no extra hop. A full inbox makes ``route`` wait
(back-pressure), which is how a slow disk slows producers instead of growing memory.
End of run is the senders closing: each actor drains what is queued, compiles, and sets ``done``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import anyio

from evalstream._messages import (
    ArgsInfo,
    EncodedBatch,
    EndOfRun,
    Flush,
    Inbound,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    Score,
    ScoreBatch,
    TasksDeclared,
    TaskVersion,
)
from evalstream.actors.base import Faults

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream

    from evalstream.actors.base import Actor, ActorStats
    from evalstream.actors.details import DetailsActor
    from evalstream.actors.general_config import GeneralConfigActor
    from evalstream.actors.metrics import MetricsActor
    from evalstream.actors.task_config import TaskConfigActor
    from evalstream.actors.versions import VersionsActor


class Coordinator:
    """Starts the actors in a task group, routes messages to them, and closes them at the end."""

    def __init__(
        self,
        *,
        general: GeneralConfigActor,
        details: DetailsActor,
        metrics: MetricsActor,
        versions: VersionsActor,
        task_config: TaskConfigActor,
        capacity: int = 64,
    ) -> None:
        self.general = general
        self.details = details
        self.metrics = metrics
        self.versions = versions
        self.task_config = task_config
        self.actors: tuple[Actor, ...] = (general, details, metrics, versions, task_config)
        self.faults = Faults()
        for actor in self.actors:
            actor.faults = self.faults
        self.capacity = capacity
        self._sends: dict[str, MemoryObjectSendStream[Inbound]] = {}
        self._routes: dict[type, tuple[MemoryObjectSendStream[Inbound], ...]] = {}

    async def start(self, tg: TaskGroup) -> None:
        """Open one bounded inbox per actor and start the actors in ``tg``, all at once: one
        wait for the five of them, not one event-loop turn after another."""
        started = _AllStarted(len(self.actors))
        receives = []
        for actor in self.actors:
            send, receive = anyio.create_memory_object_stream[Inbound](self.capacity)
            self._sends[actor.name] = send
            receives.append(receive)
            tg.start_soon(partial(actor.run, receive, task_status=started))
        try:
            await started.all.wait()
        except BaseException:
            for actor, receive in zip(self.actors, receives, strict=True):
                if not actor.started:
                    receive.close()  # a start cancelled before the actor ran
            raise
        s = self._sends
        every = tuple(s[a.name] for a in self.actors)
        self._routes = {
            ArgsInfo: (s["general_config"],),
            ModelInfoLogged: (s["general_config"],),
            EndOfRun: (s["general_config"],),
            TasksDeclared: (s["details"], s["metrics"], s["versions"], s["task_config"]),
            TaskVersion: (s["versions"],),
            SampleBatch: (s["metrics"],),
            NumDocs: (s["task_config"],),
            Flush: every,
        }

    async def route(
        self,
        message: RunMessage,
        encoded: bytes | None = None,
        shards: tuple[bytes, ...] | None = None,
    ) -> None:
        """Send ``message`` to every actor that consumes it, waiting while an inbox is full.

        A sample batch goes to the metrics actor as objects and to the details actor as the
        bytes the journal holds, split per details worker (``shards``), or as objects when the
        caller has no bytes (replay), for the details actor to split.
        """
        for send in self._routes[type(message)]:
            await send.send(message)
        if isinstance(message, SampleBatch):
            if shards is None and encoded is not None and self.details.shards == 1:
                shards = (encoded,)
            await self._sends["details"].send(
                EncodedBatch(shards) if shards is not None else message
            )

    async def route_scores(self, scores: list[Score], shards: tuple[bytes, ...]) -> None:
        """Route a live sample batch: its scores to the metrics actor, its journal bytes, one
        payload per details worker, to the details actor."""
        await self._sends["metrics"].send(ScoreBatch(scores))
        await self._sends["details"].send(EncodedBatch(shards))

    async def flush(self) -> None:
        """Return once every actor has handled what was routed before and fsynced its files."""
        flushes = []
        for send in self._routes[Flush]:
            flush = Flush()
            flushes.append(flush)
            await send.send(flush)
        for flush in flushes:
            await flush.done.wait()

    async def close(self) -> None:
        """Close every inbox and wait until each actor has drained and compiled."""
        for send in self._sends.values():
            await send.aclose()
        for actor in self.actors:
            if actor.started:
                await actor.done.wait()

    def stats(self) -> tuple[ActorStats, ...]:
        """Snapshots of every actor's progress."""
        return tuple(actor.stats() for actor in self.actors)


class _AllStarted:
    """The ``task_status`` of tasks started together: ``all`` is set once every one has."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.all = anyio.Event()

    def started(self, value: object = None) -> None:
        self.left -= 1
        if self.left == 0:
            self.all.set()
