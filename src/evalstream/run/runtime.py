"""evalstream.Runtime: the details worker processes every tracker shares, and its live runs.

A server or daemon enters one ``Runtime`` at startup and passes it to its trackers; trackers
given none share a default one per thread, started on first use and closed when the thread ends
or the interpreter exits. Starting and ending a run then costs a few milliseconds (channels on
running workers) instead of a process spawn. The runtime also knows its live runs, so on SIGTERM
``shutdown()`` can make each one's journal durable and mark it ``cancelled``, for ``recover`` or
``resume_from`` to continue exactly where it stopped.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Protocol, Self

import anyio

from evalstream._errors import RunStateError
from evalstream.details.pool import WORKER_NICE, WorkerPool
from evalstream.run import forks

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType

    from evalstream.run.progress import Progress


class LiveRun(forks.HeldRun, Protocol):
    """A started run, as the runtime sees it: something ``shutdown()`` can make durable, whose
    lock and journal a forked child lets go of, and whose progress a live view shows."""

    run_id: str
    workdir: Path
    progress: Callable[[], Progress] | None

    @property
    def ended(self) -> anyio.Event | None:
        """Set once the run is marked over (or has let its folder go)."""

    async def shutdown(self, reason: str) -> None:
        """Make the run's journal durable and mark it cancelled."""


def default_workers() -> int:
    """Worker processes by default: one core stays with the event loop.

    On 2 cores a second worker doubled loop lag (p99 3.5 -> 7 ms) for no throughput; more cores
    shard tasks over more workers (at most 4).
    """
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class Runtime:
    """Shared details workers for every tracker of a process; ``async with Runtime() as rt``.

    Runs stay isolated: each has its own channel on each worker, its own folder, journal and
    results, and one run's failure or cancellation drops only that run's worker state. Leaving
    the ``async with`` block closes the workers once the last run using them has ended.
    """

    def __init__(
        self, *, details_workers: int | None = None, details_nice: int = WORKER_NICE
    ) -> None:
        """``details_nice``: how much lower the workers' CPU priority is than this process's
        (0 keeps it equal: for batch jobs on a machine busy with other work)."""
        self.pool = WorkerPool(details_workers or default_workers(), details_nice)
        self._runs: set[LiveRun] = set()
        self._closing = False
        self._shutdown: str | None = None
        self._pid: int | None = None  # the process it started in (built is not started)
        forks.watch(self)

    @property
    def details_workers(self) -> int:
        """Worker processes each run's tasks are sharded over (by default)."""
        return self.pool.size

    async def __aenter__(self) -> Self:
        self._own()
        self.pool.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if forks.foreign(self._pid):  # a forked child: the workers are the parent's to close
            return
        self._closing = True
        if not self._runs:
            await self.pool.aclose()

    def _own(self) -> None:
        """Start in this process, or raise if a parent process started this runtime: a runtime
        built before a fork and started after it (a pre-forking server) is the child's own."""
        forks.check(self._pid, "runtime")
        self._pid = os.getpid()

    def forsake(self) -> None:
        """In a forked child (``run/forks.py``): let go of the parent's workers and of its live
        runs' lock and journal, touching none of them."""
        if self._pid is None:  # never started: nothing of the parent's to let go of
            return
        fds = self.pool.forsake()
        for run in self._runs:
            fds += forks.run_fds(run)
        forks.let_go(fds)

    def attach(self, host: LiveRun) -> None:
        """Register a starting run (its tracker's ``__aenter__``)."""
        self._own()
        if self._closing or self.pool.closed:
            raise RunStateError(
                "the runtime is closed"
                + (f" ({self._shutdown})" if self._shutdown else "")
                + "; start runs inside its 'async with' block"
            )
        self._runs.add(host)

    def detach(self, host: LiveRun) -> None:
        """Forget an ended run; the last one out of a closing runtime stops the workers."""
        self._runs.discard(host)
        if self._closing and not self._runs:
            self.pool.close()

    @property
    def runs(self) -> int:
        """Runs currently started and not yet ended."""
        return len(self._runs)

    def live_runs(self) -> list[LiveRun]:
        """The runs started and not yet ended, oldest first: what ``evalstream.view_app``
        lists, each with its ``run_id``, ``workdir`` and ``progress()``."""
        return sorted(self._runs, key=lambda run: run.run_id)

    async def shutdown(self, reason: str = "the process is shutting down") -> None:
        """Make every live run's journal durable and mark the run ``cancelled``; refuse new runs.

        For SIGTERM: call it from the signal loop, then cancel the serving task group. Samples
        logged before the call are in the journal when it returns; logging afterwards raises
        RunStateError. ``evalstream recover`` (or ``resume_from``) continues each run.
        """
        forks.check(self._pid, "runtime")
        self._shutdown = reason
        self._closing = True
        async with anyio.create_task_group() as tg:
            for host in list(self._runs):
                tg.start_soon(host.shutdown, reason)


class _Defaults:
    """What a tracker without a runtime gets, before the default runtime exists."""

    @property
    def details_workers(self) -> int:
        return default_workers()


DEFAULT = _Defaults()
_local = threading.local()


def default_runtime() -> Runtime:
    """This thread's shared runtime, made on first use; its workers close with the thread."""
    runtime: Runtime | None = getattr(_local, "runtime", None)
    if runtime is None or runtime.pool.closed or getattr(_local, "pid", None) != os.getpid():
        runtime = Runtime()
        _local.runtime, _local.pid = runtime, os.getpid()
    return runtime
