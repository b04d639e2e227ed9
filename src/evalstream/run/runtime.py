"""evalstream.Runtime: the details worker processes every tracker shares, and its live runs.

A server or daemon enters one ``Runtime`` at startup and passes it to its trackers; trackers
given none share a default one per thread, started on first use and closed when the thread ends
or the interpreter exits. Starting and ending a run then costs a few milliseconds (channels on
running workers) instead of a process spawn. The runtime also knows its live runs, so on SIGTERM
``shutdown()`` can make each one's journal durable and mark it ``cancelled``, for ``recover`` or
``resume_from`` to continue exactly where it stopped. ``ProgressCalls`` gives each tracker the
snapshots (``_progress.Progress``) a server streams to its clients.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Self

import anyio

from evalstream._errors import ConfigError, RunStateError
from evalstream.details.pool import WORKER_NICE, WorkerPool
from evalstream.run.progress import ENDED, Progress

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from evalstream.run.batcher import Batcher
    from evalstream.run.host import RunHost


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
        self._runs: set[RunHost] = set()
        self._closing = False
        self._shutdown: str | None = None

    @property
    def details_workers(self) -> int:
        """Worker processes each run's tasks are sharded over (by default)."""
        return self.pool.size

    async def __aenter__(self) -> Self:
        self.pool.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        if not self._runs:
            await self.pool.aclose()

    def attach(self, host: RunHost) -> None:
        """Register a starting run (its tracker's ``__aenter__``)."""
        if self._closing or self.pool.closed:
            raise RunStateError(
                "the runtime is closed"
                + (f" ({self._shutdown})" if self._shutdown else "")
                + "; start runs inside its 'async with' block"
            )
        self._runs.add(host)

    def detach(self, host: RunHost) -> None:
        """Forget an ended run; the last one out of a closing runtime stops the workers."""
        self._runs.discard(host)
        if self._closing and not self._runs:
            self.pool.close()

    @property
    def runs(self) -> int:
        """Runs currently started and not yet ended."""
        return len(self._runs)

    async def shutdown(self, reason: str = "the process is shutting down") -> None:
        """Make every live run's journal durable and mark the run ``cancelled``; refuse new runs.

        For SIGTERM: call it from the signal loop, then cancel the serving task group. Samples
        logged before the call are in the journal when it returns; logging afterwards raises
        RunStateError. ``evalstream recover`` (or ``resume_from``) continues each run.
        """
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


class ProgressCalls:
    """``progress()`` and ``progress_updates()`` of the tracker (a mixin over its state)."""

    run_id: str
    _host: RunHost
    _batch: Batcher
    _state: str
    _logged: int

    def progress(self) -> Progress:
        """A snapshot of the run: samples per task, rate, durable count, inbox depths."""
        meter = self._batch.meter
        coordinator = self._host.coordinator
        actors = coordinator.stats() if coordinator is not None else ()
        marked = self._host.status_state
        return Progress(
            run_id=self.run_id,
            state=marked if marked in ENDED else self._state,
            elapsed=time.time() - self._host.start_time,
            samples=self._logged,
            tasks=dict(meter.tasks),
            rate=meter.rate(self._logged),
            durable=meter.durable(self._host.journal.stats().synced),
            inboxes={a.name: a.inbox_depth for a in actors},
            waiting=sum(a.waiting_senders for a in actors),
        )

    async def progress_updates(self, interval: float = 0.5) -> AsyncIterator[Progress]:
        """A snapshot now, then every ``interval`` seconds while the run lives, then the last.

        For servers that stream progress (server-sent events, websockets); the iterator ends
        once the run is saved, failed, cancelled or closed.
        """
        if interval <= 0:
            raise ConfigError("interval must be positive (seconds)")
        while True:
            snapshot = self.progress()
            yield snapshot
            if snapshot.state in ENDED:
                return
            ended = self._host.ended
            if ended is None or ended.is_set():  # not started, or ending: the state settles soon
                await anyio.sleep(interval if ended is None else min(interval, 0.1))
            else:
                with anyio.move_on_after(interval):
                    await ended.wait()
