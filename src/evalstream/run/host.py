"""The machinery under one tracker: working folder, status marker, journal and actors.

``RunHost`` is the run's lifecycle: ``start()`` opens its folder (``folder.py``: lock, settings,
marker, journal) and the task group of the journal writer and the five actors (``serving.py``),
``stop()`` closes them (shielded and bounded, so a cancelled caller still leaves a closed
journal and an honest status marker behind). It joins the run's ``Runtime`` (shared details
workers; the thread's default one if none was given) for its lifetime, and on the runtime's
``shutdown()`` makes the journal durable and marks the run cancelled. The tracker above it is
the API.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import RunFailedError, RunStateError, StorageError
from evalstream._messages import ENCODER
from evalstream.durability.resume import replay_journal
from evalstream.durability.runstate import new_status
from evalstream.run.folder import RunFolder
from evalstream.run.runtime import DEFAULT, default_runtime
from evalstream.run.serving import ActorTasks, build_coordinator, is_cancellation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from evalstream._errors import EvalStreamError
    from evalstream._messages import RunMessage, Score
    from evalstream.durability.owner import RunLock
    from evalstream.durability.resume import ResumeState
    from evalstream.durability.runstate import RunSettings
    from evalstream.durability.storage import OutputStore
    from evalstream.run.coordinator import Coordinator
    from evalstream.run.progress import Progress
    from evalstream.run.runtime import Runtime
    from evalstream.stats.compute import AggregationRegistry


class RunHost:
    """Working folder, status marker, journal and actors of one run."""

    def __init__(
        self,
        store: OutputStore,
        settings: RunSettings,
        registry: AggregationRegistry,
        *,
        start_time: float,
        inbox_capacity: int,
        flush_every_frames: int,
        flush_interval: float,
        workers: int | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.workers, self.runtime = workers or (runtime or DEFAULT).details_workers, runtime
        self.drain: Callable[[], Awaitable[object]] | None = None  # ships the pending batch
        self.progress: Callable[[], Progress] | None = None  # the tracker's, for live views
        self.shut_down: RunStateError | None = None
        self.store = store
        self.registry = registry
        self.start_time = start_time
        self.inbox_capacity = inbox_capacity
        stamp = datetime.fromtimestamp(start_time).astimezone().strftime("%Y%m%dT%H%M%S")
        self.run_id = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self.folder = RunFolder(
            settings, flush_interval=flush_interval, flush_every=flush_every_frames
        )
        self.serve(store.local(f".evalstream/{self.run_id}"))
        self.predecessor: str | None = None  # resume_from: the dead run this one takes over
        self.shard: str | None = None  # a shard attempt: ``RUN index/count``
        self.coordinator: Coordinator | None = None
        self._tasks = ActorTasks()
        self._replaying = False

    def serve(self, workdir: Path) -> None:
        """Work in ``workdir`` (before ``start``): the run's own folder, or for recover and merge
        one inside the run they serve (so their state never shows as a run of its own)."""
        self.folder.serve(workdir)
        self.workdir, self.journal = workdir, self.folder.journal

    @property
    def lock(self) -> RunLock | None:
        """The folder's lock, once claimed (what a forked child lets go of)."""
        return self.folder.lock

    @property
    def ended(self) -> anyio.Event | None:
        """Set once the marker says the run is over, or the run has let its folder go."""
        return self.folder.ended

    @property
    def settings(self) -> RunSettings:
        """The settings recorded in ``run.json``."""
        return self.folder.settings

    async def start(self) -> Coordinator:
        """Join the runtime, write the marker and settings, start the journal and the actors."""
        runtime = self.runtime = self.runtime or default_runtime()
        runtime.attach(self)
        self.folder.ended = anyio.Event()
        status = new_status(self.run_id, self.start_time, self.predecessor, self.shard)
        try:
            channels = runtime.pool.channels(self.workers)
            with anyio.CancelScope(shield=True):  # short; a cancellation lands once the run is up
                await anyio.to_thread.run_sync(self.folder.prepare, status)
        except BaseException:
            self._detach()
            raise
        self.folder.started(status)
        coordinator = build_coordinator(
            self.workdir,
            channels,
            self.settings,
            self.registry,
            start_time=self.start_time,
            capacity=self.inbox_capacity,
        )
        self.coordinator = coordinator
        coordinator.faults.on_first = self._mark_fault
        try:
            await self._tasks.open(self.journal, coordinator)
        except BaseException as exc:
            await self.abort(exc)
            raise
        return coordinator

    async def abort(self, exc: BaseException) -> None:
        """Close everything after a failed start, marked (the caller re-raises ``exc``)."""
        if self.coordinator is not None and self.folder.marked:
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.end(exc)
        await self.journal.close()
        await self._leave(exc)

    async def exit(
        self,
        ship: Callable[[], Awaitable[object]] | None,
        close_live: Callable[[], Awaitable[None]],
        exc: BaseException | None,
        *,
        mark: bool = True,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Leave the run (the tracker's ``__aexit__``): ship the pending batch if ``ship``, end
        and mark the run, ``close_live`` (all shielded, bounded), ``then`` (it leaves its own
        task group, so outside the shield), stop. Errors of our own never replace the caller's
        exception: they become a note on it."""
        try:
            with anyio.CancelScope(shield=True):
                if ship is not None:
                    with anyio.move_on_after(30):
                        with contextlib.suppress(Exception):  # the journal holds what it queued
                            await ship()
                        await self.end(exc, mark=mark)
                await close_live()
            if then is not None:
                await then()
        except Exception as error:
            if exc is None:
                raise
            exc.add_note(f"evalstream: closing the run also failed: {error!r}")
        finally:
            await self.stop(exc)

    async def end(self, exc: BaseException | None, *, mark: bool = True) -> None:
        """End a run that was not saved: drain the actors and mark it failed or cancelled."""
        assert self.coordinator is not None
        await self.coordinator.close()
        if not mark:
            return
        fault = self.fault_error()
        if self.shut_down is not None:  # the producers' errors came from the shutdown
            await self.set_status(state="cancelled", error=str(self.shut_down))
        elif fault is not None:
            await self.set_status(state="failed", error=str(fault))
        elif exc is not None and not is_cancellation(exc):
            await self.set_status(state="failed", error=repr(exc))
        else:
            await self.set_status(
                state="cancelled", error="cancelled" if exc is not None else "exited without save()"
            )

    async def stop(self, exc: BaseException | None) -> None:
        """Close the journal, let the writer and actors end (shielded, bounded), leave the group.

        The caller's own exception is never wrapped or replaced: ``__aexit__`` returns and it
        propagates as raised.
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            if self.status_state == "running" and self.coordinator is not None:
                # an exit that could not mark the run (cancelled between writing the results
                # and the marker): a live process must never hold a run nobody can recover
                with contextlib.suppress(StorageError):
                    await self.end(exc)
            await self.journal.close()
        await self._leave(exc)

    async def _leave(self, exc: BaseException | None) -> None:
        """Wait (bounded) for the writer and the actors, leave their task group, then the
        runtime."""
        try:
            if self._tasks.opened:
                await self._tasks.leave(self.journal, self.coordinator, exc)
        finally:
            self._detach()  # after the actors: the details channels are closed by now

    def _detach(self) -> None:
        """Leave the runtime (its channels are closed by then, or never opened), and let the
        run's lock go: nothing of this process touches the folder after this."""
        self.folder.release()
        if self.runtime is not None:
            self.runtime.detach(self)

    async def set_status(self, **changes: Any) -> None:
        """Replace the status marker with ``changes`` applied (one writer at a time); a save's
        last steps share its thread hop through ``folder.set_status``."""
        await self.folder.set_status(**changes)

    @property
    def status_state(self) -> str | None:
        """What the status marker says now (``running``, ``saved``, ...), once written."""
        return self.folder.status_state

    async def shutdown(self, reason: str) -> None:
        """Make everything logged durable in the journal and mark the run ``cancelled``.

        Producers see a RunStateError from then on; recover or resume_from continues the run.
        """
        if self.shut_down is not None or self.status_state != "running":
            return
        self.shut_down = RunStateError(
            f"the runtime shut down ({reason}): this run is marked cancelled and its journal "
            "is complete; `evalstream recover` or resume_from continues it"
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            with contextlib.suppress(Exception):  # a failing disk: the status still says so
                if self.drain is not None:
                    await self.drain()
                await self.journal.wait_synced()
            await self.set_status(state="cancelled", error=f"shutdown: {reason}")

    async def _mark_fault(self, cause: str) -> None:
        with contextlib.suppress(StorageError):  # the fault still reaches the caller; see failure()
            await self.set_status(state="failed", error=cause)

    def fault_error(self) -> RunFailedError | None:
        """The error an actor's fault means for the caller, with the cause chained, if any."""
        faults = self.coordinator.faults if self.coordinator is not None else None
        if faults is None or faults.first is None:
            return None
        error = RunFailedError(
            f"the {faults.actor} actor failed ({faults.first!r}; {faults.messages} message(s) "
            f"and {faults.samples} sample(s) skipped); every accepted sample is in the journal: "
            f"run `evalstream recover {self.workdir}` for the partial results"
        )
        error.__cause__ = faults.first
        return error

    async def replay(self, feed: Callable[[], Awaitable[None]]) -> None:
        """Run ``feed`` (a dead run's journal into this run: resume) with faults contained: what
        an actor cannot apply is skipped and counted in a warning, and the new run goes on."""
        assert self.coordinator is not None
        self._replaying = True
        try:
            await feed()
            await self.coordinator.flush()
        finally:
            self._replaying = False
        if self.coordinator.faults.forgive() is not None:
            await self.set_status(state="running", error=None)

    async def take_over(
        self, resume: ResumeState, feed: Callable[[RunMessage], Awaitable[None]]
    ) -> None:
        """``resume_from``: replay the dead run's journal into this run through ``feed``, then
        take the dead run over (``replay_journal``'s hand-over)."""
        await self.replay(
            partial(replay_journal, resume, feed, self.run_id, self.journal.wait_synced)
        )

    def failure(self, *, faults: bool = True) -> EvalStreamError | None:
        """A storage failure, an actor fault or the runtime's shutdown producers must see."""
        if self.shut_down is not None:
            return self.shut_down
        if self.journal.failure is not None:
            return self.journal.failure
        if self.coordinator is None:
            return None
        if faults and not self._replaying and self.coordinator.faults.first is not None:
            return self.fault_error()
        return self.coordinator.details.failure

    async def send(
        self,
        message: RunMessage,
        encoded: bytes | None = None,
        shards: tuple[bytes, ...] | None = None,
    ) -> None:
        """Journal ``message`` (``encoded`` if the caller has its bytes), then route it."""
        assert self.coordinator is not None
        payload = encoded if encoded is not None else ENCODER.encode(message)
        await self.journal.append(payload)
        await self.coordinator.route(message, payload, shards)

    async def send_scores(
        self, scores: list[Score], encoded: bytes, shards: tuple[bytes, ...]
    ) -> None:
        """Journal a live sample batch (``encoded``), then route its scores and, per details
        worker, its bytes."""
        assert self.coordinator is not None
        await self.journal.append(encoded)
        await self.coordinator.route_scores(scores, shards)
