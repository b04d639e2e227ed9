"""A forked child and its parent's runs: refused at the child's first call, let go at the fork.

``os.fork()`` (and multiprocessing's ``fork`` start method) copies a process whose tracker is
running. The copy has the tracker's objects but none of its threads (the sync tracker's event
loop, anyio's worker threads), and shares the parent's open files: a child using the tracker
hung on a loop nobody runs, or would write into the parent's journal and worker pipes. So:

- every entry point of a tracker or a runtime compares this process's pid (kept by the fork
  hook) with the pid it started in (``check``), and a child gets a RunStateError at its first
  call, before it takes a lock or touches a file: it must make its own tracker. Leaving the
  tracker's ``with`` block in the child does nothing (``foreign``): the run is the parent's.
- at the fork, in the child, ``os.register_at_fork`` lets go of what the parent's live runs
  hold open (``let_go``): each run's lock, its journal segment, the details workers' pipes.
  Each descriptor is pointed at ``/dev/null`` with ``dup2`` rather than closed, and never
  unlocked. Not closed: a file the child opens later could take the number and receive the
  parent's bytes from a stale handle. Not unlocked: an ``flock`` belongs to the open file,
  which parent and child share, so unlocking would free the parent's live run. Once the
  child's copy is gone the parent's lock dies with the parent (a child that outlives a killed
  parent no longer keeps its run "alive" against ``recover``), a worker sees its end of input
  when the parent closes it (not 5 s later, killed), and whatever the child's copies still
  flush (a buffered journal write, exit-time finalizers) lands in ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import TYPE_CHECKING, Protocol

from evalstream._errors import RunStateError

if TYPE_CHECKING:
    from evalstream.durability.journal import Journal
    from evalstream.durability.owner import RunLock


class Forkable(Protocol):
    """Something holding the parent's resources, told when a child is forked."""

    def forsake(self) -> None:
        """In the child, right after the fork: let go of the parent's resources, touching none."""


class HeldRun(Protocol):
    """What a live run holds open: its lock (once claimed) and its journal."""

    @property
    def lock(self) -> RunLock | None: ...

    journal: Journal


_watched: weakref.WeakSet[Forkable] = weakref.WeakSet()


def watch(owner: Forkable) -> None:
    """Call ``owner.forsake()`` in every child forked while ``owner`` lives."""
    _watched.add(owner)


_pid = os.getpid()
"""This process's pid, kept by the fork hook: ``check`` runs at every ``log_sample``, and a
module attribute costs a third of an ``os.getpid()`` call."""


def _in_child() -> None:
    global _pid
    _pid = os.getpid()
    for owner in list(_watched):
        with contextlib.suppress(Exception):  # a fork hook must not fail the fork's caller
            owner.forsake()
    _watched.clear()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork() to guard against
    os.register_at_fork(after_in_child=_in_child)


def foreign(pid: int | None) -> bool:
    """Whether this process is not ``pid``, the one a tracker or runtime started in."""
    return pid is not None and pid != _pid


def check(pid: int | None, what: str = "tracker") -> None:
    """Raise in a forked child: the ``what`` started in ``pid`` is its parent's, not its own."""
    if foreign(pid):
        raise RunStateError(
            f"this {what} belongs to pid {pid}; a forked child (pid {os.getpid()}) cannot use "
            "it: create a tracker in the child, or use the `spawn` start method"
        )


def let_go(fds: list[int]) -> None:
    """Point each of ``fds`` at ``/dev/null`` (see the module docstring: never close, never
    unlock); a number already closed is skipped."""
    if not fds:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def run_fds(run: HeldRun) -> list[int]:
    """The descriptors a live run holds: its lock's and its journal segment's.

    durability/ exposes neither number, so both are read from the objects' private fields
    here, the one place that needs them.
    """
    fds: list[int] = []
    lock_fd = getattr(run.lock, "_fd", None)
    if isinstance(lock_fd, int):
        fds.append(lock_fd)
    handle = getattr(run.journal, "_handle", None)
    if handle is not None:
        with contextlib.suppress(OSError, ValueError):
            fds.append(handle.fileno())
    return fds
