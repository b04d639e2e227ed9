"""The machinery under one tracker: working folder, status marker, journal and actors.

``RunHost`` owns the task group in which the journal writer and the five actors run, opened in
``start()`` and closed in ``stop()`` (shielded and bounded, so a cancelled caller still leaves
a closed journal and an honest status marker behind). The tracker above it is the API.
"""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from evalstream import __version__
from evalstream._coordinator import Coordinator
from evalstream._messages import ENCODER
from evalstream.actors.details import DetailsActor
from evalstream.actors.general_config import GeneralConfigActor
from evalstream.actors.metrics import MetricsActor
from evalstream.actors.task_config import TaskConfigActor
from evalstream.actors.versions import VersionsActor
from evalstream.durability.journal import Journal
from evalstream.durability.runstate import (
    RunSettings,
    RunStatus,
    make_dirs_durable,
    new_status,
    update_status,
    write_settings,
    write_status,
)

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup

    from evalstream._errors import EvalStreamError
    from evalstream._messages import RunMessage
    from evalstream.durability.storage import OutputStore
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
        workers: int = 1,
    ) -> None:
        self.workers = workers
        self.store = store
        self.settings = settings
        self.registry = registry
        self.start_time = start_time
        self.inbox_capacity = inbox_capacity
        stamp = datetime.fromtimestamp(start_time).astimezone().strftime("%Y%m%dT%H%M%S")
        self.run_id = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self.workdir = store.local(f".evalstream/{self.run_id}")
        self.journal = Journal(
            self.workdir / "journal",
            flush_interval=flush_interval,
            flush_every=flush_every_frames,
        )
        self.coordinator: Coordinator | None = None
        self._status: RunStatus | None = None
        self._tg: TaskGroup | None = None

    async def start(self) -> Coordinator:
        """Write the marker and settings, start the journal writer and the actors."""
        status = new_status(self.run_id, self.start_time)
        await anyio.to_thread.run_sync(self._prepare, status)
        self._status = status
        coordinator = Coordinator(
            general=GeneralConfigActor(
                tool_sha=f"evalstream-{__version__}", start_time=self.start_time
            ),
            details=DetailsActor(
                self.workdir,
                save_details=self.settings.save_details,
                workers=self.workers,
                layout=self.settings.details_layout,
            ),
            metrics=MetricsActor(self.registry),
            versions=VersionsActor(),
            task_config=TaskConfigActor(),
            capacity=self.inbox_capacity,
        )
        self.coordinator = coordinator
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._tg.start(self.journal.run)
            await coordinator.start(self._tg)
        except BaseException as exc:
            await self.abort(exc)
            raise
        return coordinator

    def _prepare(self, status: RunStatus) -> None:
        make_dirs_durable(self.workdir)
        write_settings(self.workdir, self.settings)
        write_status(self.workdir, status)

    async def abort(self, exc: BaseException) -> None:
        """Close everything after a failed start."""
        await self.journal.close()
        if self.coordinator is not None:
            with anyio.CancelScope(shield=True):
                await self.coordinator.close()
        if self._tg is not None:
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)

    async def end(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        """End a run that was not saved: drain the actors and mark it failed or cancelled."""
        assert self.coordinator is not None
        await self.coordinator.close()
        cancelled = exc_type is not None and issubclass(exc_type, anyio.get_cancelled_exc_class())
        state = "failed" if exc is not None and not cancelled else "cancelled"
        await self.set_status(state=state, error=repr(exc) if exc else "exited without save()")

    async def stop(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Close the journal and leave the task group (shielded, at most 30 s)."""
        assert self._tg is not None
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.journal.close()
        finally:
            suppressed = await self._tg.__aexit__(exc_type, exc, tb)
        return suppressed

    async def set_status(self, **changes: Any) -> None:
        """Replace the status marker with ``changes`` applied."""
        if self._status is not None:
            status = self._status
            self._status = await anyio.to_thread.run_sync(
                lambda: update_status(self.workdir, status, **changes)
            )

    def failure(self) -> EvalStreamError | None:
        """A storage failure producers must see, if any."""
        if self.journal.failure is not None:
            return self.journal.failure
        return self.coordinator.details.failure if self.coordinator else None

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

    def clean(self) -> None:
        """Drop the journal and segments of a saved run; keep its status marker (blocking)."""
        for name in ("journal", "segments"):
            shutil.rmtree(self.workdir / name, ignore_errors=True)
