"""The run's working folder: its lock, settings, status marker and journal, opened and marked.

``RunFolder`` is the durable half of a ``RunHost``: ``prepare`` is the start's one blocking step
(the folder made durable, the lock claimed before any other file, the settings and the
``running`` marker written with one folder fsync, the journal's folder made), and
``set_status`` replaces the marker, one writer at a time. ``ended`` is set once the marker says
the run is over (or the run has let its folder go), for the live views that wait on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from evalstream.durability.journal import Journal
from evalstream.durability.owner import claim
from evalstream.durability.runstate import (
    fsync_parents,
    make_dirs_durable,
    update_status,
    write_start,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from evalstream.durability.owner import RunLock
    from evalstream.durability.runstate import RunSettings, RunStatus


class RunFolder:
    """One run's working folder: lock, settings, status marker, journal."""

    def __init__(self, settings: RunSettings, *, flush_interval: float, flush_every: int) -> None:
        self.settings = settings
        self._flush = (flush_interval, flush_every)
        self.lock: RunLock | None = None
        self.ended: anyio.Event | None = None
        self._status: RunStatus | None = None
        self._status_lock = anyio.Lock()

    def serve(self, workdir: Path) -> None:
        """Work in ``workdir`` (before ``prepare``): the run's own folder, or for recover and
        merge one inside the run they serve (so their state never shows as a run of its own)."""
        self.workdir = workdir
        interval, every = self._flush
        self.journal = Journal(workdir / "journal", flush_interval=interval, flush_every=every)

    def prepare(self, status: RunStatus) -> None:
        """Make the folder, claim its lock, write the settings and the marker (blocking).

        The run folder's own entry (and those of any parent made for it) is fsynced last,
        after the folder's fsync in ``write_start``: on a journaling file system that commit
        already carried it, so this fsync finds nothing left to write. Nothing is promised
        before the start returns, so a power cut before it may lose the run's folder whole,
        as it could before.
        """
        # the lock before anything else: from its first file on, the folder has its owner
        made = make_dirs_durable(self.workdir, durable=False)
        self.lock = claim(self.workdir, "the live run")
        # the journal folder's entry, the lock's, settings' and marker's: one folder fsync
        fresh = not self.journal.folder.exists()  # recover and merge may find one to go on
        make_dirs_durable(self.journal.folder, durable=False)
        write_start(self.workdir, self.settings, status)
        fsync_parents(made)
        if fresh:
            self.journal.created()

    def started(self, status: RunStatus) -> None:
        """``prepare`` has written ``status``: the marker ``set_status`` changes from now on."""
        self._status = status

    @property
    def marked(self) -> bool:
        """Whether the run's marker is written (``prepare`` succeeded)."""
        return self._status is not None

    @property
    def status_state(self) -> str | None:
        """What the status marker says now (``running``, ``saved``, ...), once written."""
        return self._status.state if self._status is not None else None

    async def set_status(
        self,
        then: Callable[[RunStatus], None] | None = None,
        *,
        first: Callable[[], Mapping[str, Any]] | None = None,
        **changes: Any,
    ) -> None:
        """Replace the status marker with ``changes`` applied (one writer at a time), in one
        thread hop with what must come just before or after it: ``first`` runs before and its
        changes are applied too (a save's results file, then the marker that points at it),
        ``then`` runs once the marker is replaced, given it (a saved run's cleanup)."""

        def write(status: RunStatus) -> RunStatus:
            more = first() if first is not None else {}
            new = update_status(self.workdir, status, **changes, **more)
            if then is not None:
                then(new)
            return new

        async with self._status_lock:
            if self._status is not None:
                self._status = await anyio.to_thread.run_sync(write, self._status)
                if self._status.state != "running" and self.ended is not None:
                    self.ended.set()

    def release(self) -> None:
        """Let the run's lock go, and say the run has ended: nothing of this process touches
        the folder after this."""
        if self.lock is not None:
            self.lock.release()
        if self.ended is not None:
            self.ended.set()
