"""The pending batch between ``log_sample`` and the actors.

Samples wait here, already validated and encoded, until ``batch_size`` of them ship as one
journal frame and one routed message. Only each sample's bytes and metric values wait (the
journal and the details workers read the bytes; the metrics actor needs only the values), so
the caller's doc and responses are freed once ``log_sample`` returns. One ship at a time:
producers that fill the batch while a ship waits on a full inbox queue on the lock holding
nothing, instead of each holding a batch of its own, so the samples in flight stay bounded by
the inboxes plus one batch.

A sample has one path once its batch is taken: whoever ships the batch journals it and routes
it to the actors whatever happens to that caller, because it holds other producers'
acknowledged samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from evalstream.details.worker import shard_of
from evalstream.run.intake import encode_batch
from evalstream.run.progress import Meter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from evalstream._messages import Score, ScoredSample
    from evalstream.run.host import RunHost

    Shipped = Callable[[list[Score]], Awaitable[None]]


class Batcher:
    """Pending samples' bytes and scores; ``ship()`` journals and routes them."""

    def __init__(self, host: RunHost, *, on_shipped: Shipped | None = None) -> None:
        self.host = host
        self.workers = host.workers
        self.on_shipped = on_shipped
        self._scores: list[Score] = []
        self._raws: list[bytes] = []
        self._lock = anyio.Lock()
        self._shards: dict[str, int] = {}
        self.meter = Meter()

    def add(self, sample: ScoredSample, encoded: bytes) -> None:
        """Queue one validated sample's encoding and scores (the sample itself is not kept)."""
        self._scores.append((sample.task_name, sample.metrics, sample.scope))
        self._raws.append(encoded)
        self.meter.count(sample.task_name)

    def __len__(self) -> int:
        return len(self._scores)

    async def ship(self) -> int:
        """Journal and route the pending samples; returns the journal sequence covering them.

        Once the batch is taken from the pending list, its journal append and its routing run
        shielded: it holds other callers' acknowledged samples, and a cancellation between the
        two would leave them in the journal but not in the actors, which save() reads and then
        deletes the journal. The wait on a full inbox there is bounded by the actors draining
        (they run in the host's own shielded group); the lock keeps it one batch at a time.
        """
        async with self._lock:
            if not self._scores or self.host.coordinator is None:
                return self.host.journal.stats().appended
            batch, self._scores = self._scores, []
            raws, self._raws = self._raws, []
            with anyio.CancelScope(shield=True):
                encoded = encode_batch(raws)
                await self.host.send_scores(batch, encoded, self._split(batch, raws, encoded))
                seq = self.host.journal.stats().appended
                self.meter.shipped_batch(seq, len(batch))
            if self.on_shipped is not None:
                await self.on_shipped(batch)
            return seq

    def _split(self, batch: list[Score], raws: list[bytes], whole: bytes) -> tuple[bytes, ...]:
        """The batch's bytes per details worker: each task belongs to one worker."""
        if self.workers == 1:
            return (whole,)
        groups: list[list[bytes]] = [[] for _ in range(self.workers)]
        shards = self._shards
        for (task, _, _), raw in zip(batch, raws, strict=True):
            shard = shards.get(task)
            if shard is None:
                shard = shards[task] = shard_of(task, self.workers)
            groups[shard].append(raw)
        return tuple(encode_batch(g) if g else b"" for g in groups)
