"""The files a details worker appends to: a run's spool and its tasks' segments.

A task whose live parquet file is healthy (``details/live_parquet``) needs its segment only if
the file is given up, and encoding and writing its frames cost the worker 2-4.5 us of ~20 a
sample (docs/design/performance.md). So the worker appends each sample batch, as forwarded
(the journal's bytes, nothing re-encoded), to one spool per run and worker, with one record per
ingest naming each task's segment, task and categories. A segment file, once it exists, holds
every frame of its task: when a task's live file is given up during the run the frames so far
are replayed from the spool (``rows.replay``: the same decoder, ``row_columns`` and encoders
over the same samples, grouped as they were ingested) and written first. A segment that does
not exist is read from the spool (``rows.segment_frames``), which is what the two passes, the
lighteval facade's mid-run ``details`` and ``read_rows`` see: the same frames either way.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, BinaryIO

import msgspec

from evalstream.details.rows import SPOOL_BATCH, SPOOL_INGEST
from evalstream.durability.frames import frame
from evalstream.durability.storage import translate_oserror

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

_ENCODER = msgspec.msgpack.Encoder()


class AppendFile:
    """A file written by appending frames; a failed write keeps them pending for the next try."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.pending: list[bytes] = []
        self.handle: BinaryIO | None = None

    def write_pending(self) -> None:
        """Append the pending frames; on failure keep them for the next try."""
        if not self.pending:
            return
        good: int | None = None
        try:
            if self.handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.handle = self.path.open("ab")
            good = self.handle.tell()
            self.handle.write(b"".join(self.pending))
            self.handle.flush()
        except OSError as exc:
            self._cut_back(good)
            raise translate_oserror(exc, self.what) from exc
        self.pending.clear()
        self.written()

    def written(self) -> None:
        """Called once the pending frames are on disk."""

    def _cut_back(self, good: int | None) -> None:
        """After a short write, drop the partial frames so the retry does not duplicate them."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):  # the buffered tail is what we cut off anyway
            handle.close()
        if good is not None:
            # if this fails too, the next write reports the disk; reading stops at the torn frame
            with contextlib.suppress(OSError), self.path.open("r+b") as again:
                again.truncate(good)

    def sync(self) -> None:
        """Write pending frames and fsync the file."""
        self.write_pending()
        if self.handle is not None:
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        """Close the file."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class Spool(AppendFile):
    """A run's sample batches as forwarded, and what each ingest took from them."""

    def __init__(self, path: Path, layout: str) -> None:
        super().__init__(path, "the details spool")
        self.layout = layout
        self.pending_rows: dict[str, int] = {}
        """Rows per task ingested while their record is not yet on disk."""

    def batch(self, body: bytes) -> None:
        """Spool one journal-encoded ``SampleBatch`` message."""
        self.pending.append(frame(SPOOL_BATCH + body))

    def ingest(self, groups: Sequence[tuple[str, str, frozenset[str], int]]) -> None:
        """Record one ingest of the held samples (one record each, even with no group: replaying
        forgets what was held at every record, as the worker did): (segment name, task,
        categories, rows) of each task whose frame went to the spool only, in ingest order."""
        entries = [[seg, task, sorted(cats)] for seg, task, cats, _ in groups]
        record = [self.layout, entries]
        self.pending.append(frame(SPOOL_INGEST + _ENCODER.encode(record)))
        for _, task, _, rows in groups:
            self.pending_rows[task] = self.pending_rows.get(task, 0) + rows

    def written(self) -> None:
        self.pending_rows.clear()
