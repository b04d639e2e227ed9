"""The run's background tasks: the journal writer and the five actors, in one task group.

``ActorTasks`` opens the group in the host's ``start()`` and leaves it in ``stop()``: the tasks
run shielded from the caller's cancellation (a caller cancelled while logging must still find a
live journal and live actors in ``__aexit__``) and are cancelled only when they outlive the
bound of their shutdown. ``build_coordinator`` wires the actors of one run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from anyio import TASK_STATUS_IGNORED

from evalstream._summary import __version__
from evalstream.actors.details import DetailsActor
from evalstream.actors.general_config import GeneralConfigActor
from evalstream.actors.metrics import MetricsActor
from evalstream.actors.task_config import TaskConfigActor
from evalstream.actors.versions import VersionsActor
from evalstream.run.coordinator import Coordinator

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskGroup, TaskStatus

    from evalstream.details.pool import Channel
    from evalstream.durability.journal import Journal
    from evalstream.durability.runstate import RunSettings
    from evalstream.stats.compute import AggregationRegistry


def is_cancellation(exc: BaseException) -> bool:
    """True for the event loop's cancellation, also inside an exception group of only those."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)[1] is None
    return isinstance(exc, cancelled)


def build_coordinator(
    workdir: Path,
    channels: list[Channel],
    settings: RunSettings,
    registry: AggregationRegistry,
    *,
    start_time: float,
    capacity: int,
) -> Coordinator:
    """The five actors of one run and their coordinator (no I/O, nothing started)."""
    return Coordinator(
        general=GeneralConfigActor(tool_sha=f"evalstream-{__version__}", start_time=start_time),
        details=DetailsActor(
            workdir,
            channels,
            save_details=settings.save_details,
            layout=settings.details_layout,
        ),
        metrics=MetricsActor(registry),
        versions=VersionsActor(),
        task_config=TaskConfigActor(),
        capacity=capacity,
    )


class ActorTasks:
    """The task group of one run's journal writer and actors."""

    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None

    @property
    def opened(self) -> bool:
        """Whether ``open`` entered the group (so ``leave`` must leave it)."""
        return self._tg is not None

    async def open(self, journal: Journal, coordinator: Coordinator) -> None:
        """Enter the group and start the journal writer and the actors in it."""
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        with anyio.CancelScope(shield=True):
            await tg.start(self._serve, journal, coordinator)

    async def _serve(
        self,
        journal: Journal,
        coordinator: Coordinator,
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Run the journal writer and the actors, shielded from the caller's cancellation.

        They end when the host's ``stop()`` closes them, and are cancelled only if that takes
        longer than its bound.
        """
        with anyio.CancelScope(shield=True) as scope:
            self._scope = scope
            async with anyio.create_task_group() as tg:
                await tg.start(journal.run)
                await coordinator.start(tg)
                task_status.started()

    async def leave(
        self, journal: Journal, coordinator: Coordinator | None, exc: BaseException | None
    ) -> None:
        """Wait (bounded) for the writer and the actors, then leave the task group.

        Only a cancellation is passed on to the group: anything else would come back wrapped
        in an ExceptionGroup, and the caller must get their own exception as raised.
        """
        assert self._tg is not None
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await journal.stopped()
            if coordinator is not None:
                for actor in coordinator.actors:
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
