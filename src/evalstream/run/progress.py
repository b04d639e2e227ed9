"""Live progress of a run, for servers that stream it to their clients.

The batcher counts samples per task as they are logged and remembers, per shipped batch, the
journal sequence number that covers it, so the durable count is the samples whose batch the
journal has fsynced. ``Progress`` is a frozen snapshot; nothing here waits or does I/O.

``estimates`` and ``baseline`` are the metrics actor's live statistics (``stats.live``): each
bounded metric's running mean with its 95 % confidence sequence, valid at every look, and the
paired comparison against a baseline run (docs/design/live-statistics.md).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Literal

import anyio
import msgspec

from evalstream._errors import ConfigError
from evalstream.stats.sequences import Estimate, Versus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

    from evalstream._messages import Scope, Score, ScoredSample
    from evalstream.actors.base import ActorStats
    from evalstream.stats.live import LiveStats

ENDED = frozenset({"saved", "failed", "cancelled", "closed"})
_RATE_WINDOW = 5.0  # seconds of history behind ``rate``
_RATE_STEP = 0.25  # at most one history point per this many seconds


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one run (``tracker.progress()``); msgspec encodes it to JSON as is."""

    run_id: str
    state: str
    """``new``, ``running``, ``saving``, then how it ended: ``saved``, ``failed``, ``cancelled``
    (or ``closed`` for a tracker left before its end was marked)."""
    elapsed: float
    """Seconds since the tracker was created."""
    samples: int
    """Samples logged in this process (the pending batch included)."""
    tasks: dict[str, int]
    """Samples logged per task."""
    rate: float
    """Samples per second over the last few seconds."""
    durable: int
    """Samples fsynced in the journal: a crash now keeps at least these."""
    inboxes: dict[str, int]
    """Messages queued in each actor's inbox."""
    waiting: int
    """Producers waiting on a full inbox (back-pressure)."""
    estimates: dict[str, dict[str, Estimate]] = {}
    """task -> metric -> running mean and 95 % confidence sequence, for metrics whose values
    are all in [0, 1] (shipped batches only: up to ``batch_size`` samples behind)."""
    baseline: dict[str, dict[str, Versus]] = {}
    """task -> metric -> new - baseline on the shared docs, and its verdict (with a baseline)."""


class Routed:
    """Samples of one task sent to the metrics actor and to the details actor."""

    __slots__ = ("details", "metrics")

    def __init__(self) -> None:
        self.metrics = 0
        self.details = 0


class Meter:
    """Counts behind ``Progress``: per-task samples, shipped batches' journal sequence numbers.

    ``routed`` is also the run's own account of its samples: per task, how many were handed to
    the journal for the metrics and the details actors (counted as a batch is taken to ship,
    so a batch the actors never got shows), to check against what they hold (``unrouted``).
    """

    def __init__(self) -> None:
        self.tasks: dict[str, int] = {}
        self.shipped = 0
        self.routed: dict[str, Routed] = {}
        self._durable = 0
        self._unsynced: deque[tuple[int, int]] = deque()  # (journal seq, samples shipped)
        self._history: deque[tuple[float, int]] = deque()

    def count(self, task_name: str) -> None:
        """One sample logged."""
        tasks = self.tasks
        tasks[task_name] = tasks.get(task_name, 0) + 1

    def taken(self, batch: Sequence[Score]) -> None:
        """``batch`` left the pending list: the journal and the actors are to get all of it."""
        self._route((task, scope) for task, _, scope, _ in batch)

    def shipped_batch(self, seq: int, samples: int) -> None:
        """A batch of ``samples`` went to the journal as message ``seq``."""
        self.shipped += samples
        self._unsynced.append((seq, self.shipped))

    def replayed(self, samples: Sequence[ScoredSample]) -> None:
        """A journal's samples (resume, recovery, merge) were sent to the actors."""
        self._route((s.task_name, s.scope) for s in samples)

    def _route(self, samples: Iterable[tuple[str, Scope]]) -> None:
        routed = self.routed
        for task, scope in samples:
            counts = routed.get(task)
            if counts is None:
                counts = routed[task] = Routed()
            if scope != "details":
                counts.metrics += 1
            if scope != "metrics":
                counts.details += 1

    def unrouted(
        self, held: Mapping[str, int], actor: Literal["metrics", "details"] = "metrics"
    ) -> dict[str, tuple[int, int]]:
        """Tasks whose ``actor`` holds another count than it was sent: ``{task: (sent, held)}``.

        ``held``: samples per task the metrics actor counted (or rows the details actor wrote).
        Empty when the results count exactly what was routed, which is what the journal
        accepted. A contained actor fault skips samples (``Faults.samples``) and shows here too.
        """
        out: dict[str, tuple[int, int]] = {}
        for task in self.routed.keys() | held.keys():
            counts = self.routed.get(task)
            sent = 0 if counts is None else getattr(counts, actor)
            if held.get(task, 0) != sent:
                out[task] = (sent, held.get(task, 0))
        return out

    def durable(self, synced: int) -> int:
        """Samples whose batch is fsynced, given the journal's fsynced sequence number."""
        pending = self._unsynced
        while pending and pending[0][0] <= synced:
            self._durable = pending.popleft()[1]
        return self._durable

    def rate(self, logged: int) -> float:
        """Samples per second over the last ``_RATE_WINDOW`` seconds (0 before two points)."""
        now = time.monotonic()
        history = self._history
        if not history or now - history[-1][0] >= _RATE_STEP:
            history.append((now, logged))
        while len(history) > 2 and now - history[1][0] >= _RATE_WINDOW:
            history.popleft()
        then, before = history[0]
        return (logged - before) / (now - then) if now > then and logged > before else 0.0


def snapshot(
    *,
    run_id: str,
    state: str,
    elapsed: float,
    logged: int,
    meter: Meter,
    synced: int,
    actors: Sequence[ActorStats],
    live: LiveStats | None = None,
) -> Progress:
    """A run's ``Progress`` from its counters (``state``: the status marker's once it ended)."""
    return Progress(
        run_id=run_id,
        state=state,
        elapsed=elapsed,
        samples=logged,
        tasks=dict(meter.tasks),
        rate=meter.rate(logged),
        durable=meter.durable(synced),
        inboxes={a.name: a.inbox_depth for a in actors},
        waiting=sum(a.waiting_senders for a in actors),
        estimates=live.estimates() if live is not None else {},
        baseline=live.versus() if live is not None else {},
    )


async def updates(
    take: Callable[[], Progress], ended: Callable[[], anyio.Event | None], interval: float
) -> AsyncIterator[Progress]:
    """``take()`` now, then every ``interval`` seconds while the run lives, then the last.

    ``ended()`` is the run's end event (None before it started): waiting on it, not sleeping,
    makes the last snapshot arrive as soon as the run ends.
    """
    if interval <= 0:
        raise ConfigError("interval must be positive (seconds)")
    while True:
        current = take()
        yield current
        if current.state in ENDED:
            return
        event = ended()
        if event is None or event.is_set():  # not started, or ending: the state settles soon
            await anyio.sleep(interval if event is None else min(interval, 0.1))
        else:
            with anyio.move_on_after(interval):
                await event.wait()
