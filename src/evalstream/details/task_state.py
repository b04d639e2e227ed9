"""One task's state in a details worker: hashes, counters, segment file and live parquet.

Touched only by the worker process that owns the task (``actors/details_worker``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstream._errors import EvalStreamError
from evalstream.details.lighteval_layout import encode_columns as encode_lighteval_columns
from evalstream.details.lighteval_layout import lighteval_rows
from evalstream.details.rows import encode_columns, packed_fixed, replay, row_columns
from evalstream.details.spool import AppendFile
from evalstream.durability.frames import frame
from evalstream.stats.hashing import GrowableU64, TaskCounters, batch_hashes, compile_hashes

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from evalstream._messages import ScoredSample
    from evalstream.details.live_parquet import LiveParquet
    from evalstream.details.spool import Spool


class TaskDetails(AppendFile):
    """One task's hashes, counters and segment file; touched only by the details actor."""

    def __init__(
        self, name: str, segment: Path, categories: frozenset[str], layout: str = "flat"
    ) -> None:
        super().__init__(segment, f"the details segment of {name!r}")
        self.name = name
        self.layout = layout
        self.segment = segment
        self.categories = categories
        self.hashes = tuple(GrowableU64() for _ in range(4))
        self.counters = TaskCounters()
        self.frame_rows = 0
        self.live: LiveParquet | None = None
        """The task's parquet file written as it goes (flat layout, rows kept; see ``Worker``)."""
        self.spool: Spool | None = None
        """The run's spool, which holds this task's frames while its live file is kept."""
        self.spooled = 0
        """Ingests whose frame is only in the spool (the segment file, once it exists, holds
        them all: they are replayed into it first)."""
        self.spooled_rows = 0

    @property
    def pending_rows(self) -> int:
        """Rows ingested and not yet on disk (frames, or the spool's records of them)."""
        spooled = self.spool.pending_rows.get(self.name, 0) if self.spool is not None else 0
        return self.frame_rows + spooled

    def ingest(self, samples: Sequence[ScoredSample], keep_rows: bool) -> int:
        """Hash, count and encode ``samples`` into a pending frame (CPU only, no I/O); the rows
        left to the spool only (a kept live file: no frame encoded)."""
        if not samples:
            return 0
        cols = row_columns(samples, self.categories)
        for column, digests in zip(
            self.hashes,
            batch_hashes(
                cols.column("example"),
                cols.column("full_prompt"),
                cols.column("input_tokens"),
                cols.column("cont_tokens"),
                cols.single,
            ),
            strict=True,
        ):
            column.extend(digests)
        self.counters.add_rows(
            cols.column("padded"),
            cols.column("truncated"),
            cols.column("num_asked_few_shots"),
            cols.column("num_effective_few_shots"),
        )
        if not keep_rows:
            return 0
        live = self.live
        if self.layout == "lighteval":
            columns = lighteval_rows(samples)
            if live is not None:
                live.add(columns)
            if self.spool is not None and live is not None and not live.abandoned:
                return self._spooled(len(samples))
            payload = encode_lighteval_columns(columns)
        else:
            fixed = packed_fixed(cols)
            if live is not None:
                live.add(cols.variable, fixed)
            if self.spool is not None and live is not None and not live.abandoned:
                return self._spooled(len(samples))
            payload = encode_columns(cols.variable, fixed)
        self.pending.append(frame(payload))
        self.frame_rows += len(samples)
        return 0

    def _spooled(self, rows: int) -> int:
        self.spooled += 1
        self.spooled_rows += rows
        return rows

    def write_pending(self) -> None:
        """Append the pending frames to the segment, the spooled ones replayed first."""
        if self.pending and self.spooled and self.spool is not None:
            self.spool.write_pending()  # the replay reads the spool's file
            frames = [frame(p) for p in replay(self.spool.path, self.segment.name)]
            if len(frames) != self.spooled:
                raise EvalStreamError(f"the details spool misses frames of {self.name!r}")
            self.pending[:0] = frames
            self.frame_rows += self.spooled_rows
            self.spooled = self.spooled_rows = 0
        super().write_pending()

    def written(self) -> None:
        self.frame_rows = 0

    def compiled(self) -> dict[str, Any]:
        """``summary_tasks[task]``: hashes and counters."""
        return {
            "hashes": compile_hashes([c.values for c in self.hashes]),
            **self.counters.summary(),
        }
