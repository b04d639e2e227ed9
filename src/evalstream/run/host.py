"""The machinery under one tracker: working folder, status marker, journal and actors.

``RunHost`` owns the task group in which the journal writer and the five actors run, opened in
``start()`` and closed in ``stop()`` (shielded and bounded, so a cancelled caller still leaves
a closed journal and an honest status marker behind). It joins the run's ``Runtime`` (shared
details workers; the thread's default one if none was given) for its lifetime, and on the
runtime's ``shutdown()`` makes the journal durable and marks the run cancelled. The tracker
above it is the API.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from anyio import TASK_STATUS_IGNORED

from evalstream._errors import RunFailedError, RunStateError, StorageError
from evalstream._messages import ENCODER
from evalstream._summary import __version__
from evalstream.actors.details import DetailsActor
from evalstream.actors.general_config import GeneralConfigActor
from evalstream.actors.metrics import MetricsActor
from evalstream.actors.task_config import TaskConfigActor
from evalstream.actors.versions import VersionsActor
from evalstream.durability.journal import Journal
from evalstream.durability.owner import RunLock, claim
from evalstream.durability.resume import replay_journal
from evalstream.durability.runstate import (
    RunSettings,
    RunStatus,
    make_dirs_durable,
    new_status,
    update_status,
    write_start,
)
from evalstream.run.coordinator import Coordinator
from evalstream.run.runtime import DEFAULT, default_runtime


def is_cancellation(exc: BaseException) -> bool:
    """True for the event loop's cancellation, also inside an exception group of only those."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)[1] is None
    return isinstance(exc, cancelled)


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from anyio.abc import TaskGroup, TaskStatus

    from evalstream._errors import EvalStreamError
    from evalstream._messages import RunMessage, Score
    from evalstream.durability.resume import ResumeState
    from evalstream.durability.storage import OutputStore
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
        self.ended: anyio.Event | None = None
        self.store = store
        self.settings = settings
        self.registry = registry
        self.start_time = start_time
        self.inbox_capacity = inbox_capacity
        stamp = datetime.fromtimestamp(start_time).astimezone().strftime("%Y%m%dT%H%M%S")
        self.run_id = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self._flush = (flush_interval, flush_every_frames)
        self.serve(store.local(f".evalstream/{self.run_id}"))
        self.predecessor: str | None = None  # resume_from: the dead run this one takes over
        self.shard: str | None = None  # a shard attempt: ``RUN index/count``
        self.lock: RunLock | None = None
        self.coordinator: Coordinator | None = None
        self._status: RunStatus | None = None
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._status_lock = anyio.Lock()
        self._replaying = False

    def serve(self, workdir: Path) -> None:
        """Work in ``workdir`` (before ``start``): the run's own folder, or for recover and merge
        one inside the run they serve (so their state never shows as a run of its own)."""
        self.workdir = workdir
        interval, every = self._flush
        self.journal = Journal(workdir / "journal", flush_interval=interval, flush_every=every)

    async def start(self) -> Coordinator:
        """Join the runtime, write the marker and settings, start the journal and the actors."""
        runtime = self.runtime = self.runtime or default_runtime()
        runtime.attach(self)
        self.ended = anyio.Event()
        status = new_status(self.run_id, self.start_time, self.predecessor, self.shard)
        try:
            channels = runtime.pool.channels(self.workers)
            with anyio.CancelScope(shield=True):  # short; a cancellation lands once the run is up
                await anyio.to_thread.run_sync(self._prepare, status)
        except BaseException:
            self._detach()
            raise
        self._status = status
        coordinator = Coordinator(
            general=GeneralConfigActor(
                tool_sha=f"evalstream-{__version__}", start_time=self.start_time
            ),
            details=DetailsActor(
                self.workdir,
                channels,
                save_details=self.settings.save_details,
                layout=self.settings.details_layout,
            ),
            metrics=MetricsActor(self.registry),
            versions=VersionsActor(),
            task_config=TaskConfigActor(),
            capacity=self.inbox_capacity,
        )
        self.coordinator = coordinator
        coordinator.faults.on_first = self._mark_fault
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            with anyio.CancelScope(shield=True):
                await self._tg.start(self._serve, coordinator)
        except BaseException as exc:
            await self.abort(exc)
            raise
        return coordinator

    async def _serve(
        self, coordinator: Coordinator, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED
    ) -> None:
        """Run the journal writer and the actors, shielded from the caller's cancellation.

        A caller cancelled while logging (``move_on_after`` around the ``async with``, a client
        disconnect) must still find a live journal and live actors in ``__aexit__``, to ship
        what ``log_sample`` acknowledged and mark the run; they end when ``stop()`` closes
        them, and are cancelled only if that takes longer than its bound.
        """
        with anyio.CancelScope(shield=True) as scope:
            self._scope = scope
            async with anyio.create_task_group() as tg:
                await tg.start(self.journal.run)
                await coordinator.start(tg)
                task_status.started()

    def _prepare(self, status: RunStatus) -> None:
        # the lock before anything else: from its first file on, the folder has its owner
        make_dirs_durable(self.workdir)
        self.lock = claim(self.workdir, "the live run")
        # the journal folder's entry, the lock's, settings' and marker's: one folder fsync
        fresh = not self.journal.folder.exists()  # recover and merge may find one to go on
        make_dirs_durable(self.journal.folder, durable=False)
        write_start(self.workdir, self.settings, status)
        if fresh:
            self.journal.created()

    async def abort(self, exc: BaseException) -> None:
        """Close everything after a failed start, marked (the caller re-raises ``exc``)."""
        if self.coordinator is not None and self._status is not None:
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
        """Wait (bounded) for the writer and the actors, then leave the task group.

        Only a cancellation is passed on to the group: anything else would come back wrapped
        in an ExceptionGroup, and the caller must get their own exception as raised.
        """
        assert self._tg is not None
        try:
            await self._wait_and_exit(exc)
        finally:
            self._detach()  # after the actors: the details channels are closed by now

    async def _wait_and_exit(self, exc: BaseException | None) -> None:
        assert self._tg is not None
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await self.journal.stopped()
            if self.coordinator is not None:
                for actor in self.coordinator.actors:
                    if actor.started:
                        await actor.done.wait()
        if self._scope is not None:
            self._scope.cancel()  # only what outlived the bound above is still running
        passed = exc if exc is not None and is_cancellation(exc) else None
        try:
            await self._tg.__aexit__(type(passed) if passed else None, passed, None)
        except BaseException as error:
            if exc is None or error is exc:
                raise
            exc.add_note(f"evalstream: the run's background tasks also failed: {error!r}")

    def _detach(self) -> None:
        """Leave the runtime (its channels are closed by then, or never opened), and let the
        run's lock go: nothing of this process touches the folder after this."""
        if self.lock is not None:
            self.lock.release()
        if self.ended is not None:
            self.ended.set()
        if self.runtime is not None:
            self.runtime.detach(self)

    async def set_status(self, **changes: Any) -> None:
        """Replace the status marker with ``changes`` applied (one writer at a time)."""
        async with self._status_lock:
            if self._status is not None:
                status = self._status
                self._status = await anyio.to_thread.run_sync(
                    lambda: update_status(self.workdir, status, **changes)
                )
                if self._status.state != "running" and self.ended is not None:
                    self.ended.set()

    @property
    def status_state(self) -> str | None:
        """What the status marker says now (``running``, ``saved``, ...), once written."""
        return self._status.state if self._status is not None else None

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
