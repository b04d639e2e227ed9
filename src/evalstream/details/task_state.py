"""One task's state in a details worker: hashes, counters, segment file and live parquet.

Touched only by the worker process that owns the task (``actors/details_worker``).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, BinaryIO

from evalstream.details.lighteval_layout import encode_columns as encode_lighteval_columns
from evalstream.details.lighteval_layout import lighteval_rows
from evalstream.details.rows import encode_columns, packed_fixed, row_columns
from evalstream.durability.frames import frame
from evalstream.durability.storage import translate_oserror
from evalstream.stats.hashing import GrowableU64, TaskCounters, batch_hashes, compile_hashes

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from evalstream._messages import ScoredSample
    from evalstream.details.live_parquet import LiveParquet


class TaskDetails:
    """One task's hashes, counters and segment file; touched only by the details actor."""

    def __init__(
        self, name: str, segment: Path, categories: frozenset[str], layout: str = "flat"
    ) -> None:
        self.name = name
        self.layout = layout
        self.segment = segment
        self.categories = categories
        self.hashes = tuple(GrowableU64(spill=segment.with_suffix(f".h{i}")) for i in range(4))
        """The four per-sample digest columns, their full chunks spilled next to the segment."""
        self.counters = TaskCounters()
        self._compiled: tuple[int, dict[str, Any]] | None = None
        self.pending: list[bytes] = []
        self.pending_rows = 0
        self.handle: BinaryIO | None = None
        self.live: LiveParquet | None = None
        """The task's parquet file written as it goes (flat layout, rows kept; see ``Worker``)."""

    def ingest(self, samples: Sequence[ScoredSample], keep_rows: bool) -> None:
        """Hash, count and encode ``samples`` into a pending frame (CPU only, no I/O)."""
        if not samples:
            return
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
        if keep_rows:
            if self.layout == "lighteval":
                columns = lighteval_rows(samples)
                payload = encode_lighteval_columns(columns)
                if self.live is not None:
                    self.live.add(columns)
            else:
                fixed = packed_fixed(cols)
                payload = encode_columns(cols.variable, fixed)
                if self.live is not None:
                    self.live.add(cols.variable, fixed)
            self.pending.append(frame(payload))
            self.pending_rows += len(samples)

    def write_pending(self) -> None:
        """Append the pending frames to the segment; on failure keep them for the next try."""
        if not self.pending:
            return
        good: int | None = None
        try:
            if self.handle is None:
                self.segment.parent.mkdir(parents=True, exist_ok=True)
                self.handle = self.segment.open("ab")
            good = self.handle.tell()
            self.handle.write(b"".join(self.pending))
            self.handle.flush()
        except OSError as exc:
            self._cut_back(good)
            raise translate_oserror(exc, f"the details segment of {self.name!r}") from exc
        self.pending.clear()
        self.pending_rows = 0

    def _cut_back(self, good: int | None) -> None:
        """After a short write, drop the partial frames so the retry does not duplicate them."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):  # the buffered tail is what we cut off anyway
            handle.close()
        if good is not None:
            # if this fails too, the next write reports the disk; reading stops at the torn frame
            with contextlib.suppress(OSError), self.segment.open("r+b") as again:
                again.truncate(good)

    def sync(self) -> None:
        """Write pending frames and fsync the segment."""
        self.write_pending()
        if self.handle is not None:
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        """Close the segment file."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def compiled(self) -> dict[str, Any]:
        """``summary_tasks[task]``: hashes and counters, compiled again only once the task has
        new samples. Every answer to the tracker (each ``flush()``, not only the end) carries
        them, and compiling sorts every digest and reads back the spilled ones: a finished task
        is not redone at each flush of a long run."""
        samples = self.counters.samples
        if self._compiled is None or self._compiled[0] != samples:
            summary = {
                "hashes": compile_hashes([c.values for c in self.hashes]),
                **self.counters.summary(),
            }
            self._compiled = (samples, summary)
        return self._compiled[1]
