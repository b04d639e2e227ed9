"""The pending batch between ``log_sample`` and the actors, and the path of a logged sample.

Samples wait here, already validated and encoded, until ``batch_size`` of them ship as one
journal frame and one routed message. Only each sample's bytes and metric values wait (the
journal and the details workers read the bytes; the metrics actor needs only the values), so
the caller's doc and responses are freed once ``log_sample`` returns. One ship at a time:
producers that fill the batch while a ship waits on a full inbox queue on the lock holding
nothing, instead of each holding a batch of its own, so the samples in flight stay bounded by
the inboxes plus one batch.

A sample has one path once added: whoever ships its batch journals and routes it to the actors
whatever happens to that caller, because the batch holds other producers' acknowledged samples.
``log`` adds before its first await, so a call that raises after it (the cancellation, or a
``StorageError`` from the fsync a ``durable=True`` call waits for) has recorded its samples;
their keys are kept (``CancelledSamples``) so that a retry of the call counts once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from evalstream.details.worker import shard_of
from evalstream.run.cancelled import CancelledSamples
from evalstream.run.intake import encode_batch
from evalstream.run.progress import Meter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from evalstream._messages import Score, ScoredSample
    from evalstream.durability.resume import ResumeState
    from evalstream.run.host import RunHost
    from evalstream.run.intake import Prepared

    Shipped = Callable[[list[Score]], Awaitable[None]]
    Synced = Callable[[int], Awaitable[None]]

YIELD_EVERY = 16


async def _no_sync(seq: int) -> None:
    """Nothing beyond the journal to wait for (no shard upload)."""


class Batcher:
    """Pending samples' bytes and scores; ``log()`` adds them, ``ship()`` journals and routes."""

    def __init__(
        self,
        host: RunHost,
        *,
        batch_size: int = 256,
        durable: bool = False,
        synced: Synced = _no_sync,
        on_shipped: Shipped | None = None,
    ) -> None:
        self.host = host
        self.workers = host.workers
        self.batch_size = batch_size
        self.durable = durable
        self.synced = synced
        self.on_shipped = on_shipped
        self.logged = 0
        self.cancelled = CancelledSamples()
        self._scores: list[Score] = []
        self._raws: list[bytes] = []
        self._lock = anyio.Lock()
        self._shards: dict[str, int] = {}
        self.meter = Meter()
        self.resume: ResumeState | None = None
        """Set once a resumed run has replayed its predecessor: its samples are skipped."""

    def add(self, sample: ScoredSample, encoded: bytes) -> None:
        """Queue one validated sample's encoding and scores (the sample itself is not kept)."""
        self._scores.append((sample.task_name, sample.metrics, sample.scope, sample.doc.query))
        self._raws.append(encoded)
        self.meter.count(sample.task_name)
        self.logged += 1

    def __len__(self) -> int:
        return len(self._scores)

    async def log(self, prepared: Sequence[Prepared]) -> None:
        """Add ``prepared`` (all of it, before any await), then ship as the options say.

        Skipped: what a resumed run's dead run holds, and the retry of a cancelled call's sample.
        If this call raises (the cancellation, a failed fsync), its samples stay recorded and their
        keys are kept (a retried one's again: the retry raised too, so the next one is skipped).
        """
        resume, cancelled = self.resume, self.cancelled
        if resume is None and not cancelled:  # the common case: every sample is taken
            for sample, encoded in prepared:
                self.add(sample, encoded)
        else:
            prepared = [p for p in prepared if resume is None or not resume.seen(p[0])]
            for sample, encoded in prepared:
                if not cancelled.retried(sample):
                    self.add(sample, encoded)
        try:
            if self.logged % YIELD_EVERY < len(prepared):
                # a producer that never waits would hold the loop for a whole batch
                await anyio.lowlevel.checkpoint()
            if self.durable:
                seq = await self.ship()
                await self.host.journal.wait_synced(seq)
                await self.synced(seq)
            elif len(self._scores) >= self.batch_size:
                await self.ship()
        except BaseException:
            # recorded all the same (the cancellation, or with ``durable=True`` a failed fsync
            # whose frames the journal keeps and writes at the next flush): a retry counts once
            cancelled.remember(sample for sample, _ in prepared)
            raise

    async def ship(self) -> int:
        """Journal and route the pending samples, ``batch_size`` at most a frame; returns the
        journal sequence covering them.

        Once a batch is taken from the pending list, its journal append and its routing run
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
            self.meter.taken(batch)
            size = max(self.batch_size, 1)
            with anyio.CancelScope(shield=True):
                for k in range(0, len(batch), size):  # a big log_samples: frames of batch_size
                    part, part_raws = (
                        (batch, raws)
                        if len(batch) <= size
                        else (
                            batch[k : k + size],
                            raws[k : k + size],
                        )
                    )
                    encoded = encode_batch(part_raws)
                    await self.host.send_scores(
                        part, encoded, self._split(part, part_raws, encoded)
                    )
                    seq = self.host.journal.stats().appended
                    self.meter.shipped_batch(seq, len(part))
            if self.on_shipped is not None:
                await self.on_shipped(batch)
            return seq

    def _split(self, batch: list[Score], raws: list[bytes], whole: bytes) -> tuple[bytes, ...]:
        """The batch's bytes per details worker: each task belongs to one worker."""
        if self.workers == 1:
            return (whole,)
        groups: list[list[bytes]] = [[] for _ in range(self.workers)]
        shards = self._shards
        for (task, *_), raw in zip(batch, raws, strict=True):
            shard = shards.get(task)
            if shard is None:
                shard = shards[task] = shard_of(task, self.workers)
            groups[shard].append(raw)
        return tuple(encode_batch(g) if g else b"" for g in groups)
