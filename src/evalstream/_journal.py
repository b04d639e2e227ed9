"""The write-ahead journal: every message of a run, framed and checksummed, before any actor.

Appending never touches the disk on the event loop: frames go to a bounded in-memory queue
and one writer task moves them to the current segment from a worker thread (one ``write`` per
group of frames). Durability is group commit: whoever needs it waits for a sequence number;
the writer fsyncs once for every waiter queued meanwhile. A background policy fsyncs every
``flush_every`` frames' worth of samples or ``flush_interval`` seconds.

A failed write (disk full, read-only folder) truncates the segment back to its last good frame,
keeps the frames queued, and reports a StorageError to producers until a write succeeds: the
journal on disk is always readable up to its last good frame.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, BinaryIO

import anyio
import msgspec

from evalstream._errors import EvalStreamError, StorageError
from evalstream._frames import FrameScan, frame, iter_frames
from evalstream._messages import DECODER, RunMessage
from evalstream._storage import translate_oserror

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from anyio.abc import TaskStatus


class JournalStats(msgspec.Struct, frozen=True):
    """A snapshot of the journal's progress."""

    appended: int
    written: int
    synced: int
    segments: int
    queued_bytes: int


def segment_paths(folder: Path) -> list[Path]:
    """The journal segments of ``folder``, oldest first."""
    return sorted(folder.glob("*.wal"))


class Journal:
    """Append-only segments of framed messages; ``wait_synced(seq)`` is the durability point."""

    def __init__(
        self,
        folder: Path,
        *,
        segment_bytes: int = 64 << 20,
        max_queued_bytes: int = 32 << 20,
        flush_interval: float = 1.0,
        flush_every: int = 16,  # frames (sample batches) between background fsyncs
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.max_queued_bytes = max_queued_bytes
        self.flush_interval = flush_interval
        self.flush_every = flush_every
        self.failure: StorageError | None = None
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._appended = 0
        self._written = 0
        self._synced = 0
        self._sync_wanted = 0
        self._wake = anyio.Event()
        self._progress = anyio.Event()
        self._closed = False
        self._handle: BinaryIO | None = None
        self._segment_index = len(segment_paths(folder)) if folder.exists() else 0
        self._segment_size = 0
        self._good_size = 0

    # -- producer side ---------------------------------------------------------------------

    async def append(self, payload: bytes) -> int:
        """Queue one message's bytes; returns its sequence number (waits while the queue is full)."""
        if self.failure is not None:
            raise self.failure
        while self._queued_bytes >= self.max_queued_bytes and not self._closed:
            await self._wait_progress()
            if self.failure is not None:
                raise self.failure
        self._queue.append(frame(payload))
        self._queued_bytes += len(self._queue[-1])
        self._appended += 1
        self._wake.set()
        return self._appended

    async def wait_synced(self, seq: int | None = None) -> None:
        """Return once message ``seq`` (default: everything appended) is fsynced."""
        target = self._appended if seq is None else seq
        self._sync_wanted = max(self._sync_wanted, target)
        self._wake.set()
        while self._synced < target:
            if self.failure is not None:
                self._wake.set()
            await self._wait_progress()
            if self.failure is not None and self._synced < target:
                raise self.failure

    async def _wait_progress(self) -> None:
        await self._progress.wait()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    # -- writer side -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer loop: write frames as they come, fsync by policy or demand, until closed."""
        await anyio.to_thread.run_sync(lambda: self.folder.mkdir(parents=True, exist_ok=True))
        task_status.started()
        last_sync = anyio.current_time()
        try:
            while True:
                with anyio.move_on_after(self.flush_interval):
                    await self._wake.wait()
                self._wake = anyio.Event()
                now = anyio.current_time()
                unsynced = self._written + len(self._queue) - self._synced
                sync = unsynced > 0 and (
                    self._closed
                    or self._sync_wanted > self._synced
                    or unsynced >= self.flush_every
                    or now - last_sync >= self.flush_interval
                )
                await self._drain(sync=sync)
                if sync and self.failure is None:
                    last_sync = now
                if self._closed and not self._queue:
                    break
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_handle)
            self._notify()

    async def _drain(self, *, sync: bool) -> None:
        batch = list(self._queue)
        if not batch and not sync:
            return
        try:
            await anyio.to_thread.run_sync(self._write_sync, batch, sync)
        except OSError as exc:
            self.failure = translate_oserror(exc, f"the journal in {self.folder}")
        else:
            self.failure = None
            del self._queue[: len(batch)]
            self._queued_bytes -= sum(len(f) for f in batch)
            self._written += len(batch)
            if sync:
                self._synced = self._written
        self._notify()
        if self.failure is not None:  # back off before retrying a failing disk
            await anyio.sleep(min(self.flush_interval, 0.05))
            self._wake.set()

    def _write_sync(self, frames: list[bytes], sync: bool) -> None:
        if frames:
            if self._handle is None or self._segment_size >= self.segment_bytes:
                self._rotate()
            assert self._handle is not None
            data = b"".join(frames)
            try:
                self._handle.write(data)
                self._handle.flush()
            except OSError:
                self._truncate_to_good()
                raise
            self._segment_size += len(data)
            self._good_size = self._segment_size
        if sync and self._handle is not None:
            os.fsync(self._handle.fileno())

    def _truncate_to_good(self) -> None:
        """After a failed write, cut the segment back to its last whole frame."""
        assert self._handle is not None
        with contextlib.suppress(OSError):
            self._handle.close()
        path = self._path(self._segment_index)
        with path.open("r+b") as handle:
            handle.truncate(self._good_size)
        self._handle = path.open("ab")
        self._segment_size = self._good_size

    def _path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.wal"

    def _rotate(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._segment_index += 1
        self._handle = self._path(self._segment_index).open("ab")
        self._segment_size = self._good_size = self._handle.tell()

    def _close_handle(self) -> None:
        if self._handle is not None:
            try:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            finally:
                self._handle.close()
                self._handle = None

    async def close(self) -> None:
        """Write and fsync everything queued, then stop the writer loop."""
        self._closed = True
        self._wake.set()

    def stats(self) -> JournalStats:
        """A snapshot of sequence numbers and queue size."""
        return JournalStats(
            self._appended, self._written, self._synced, self._segment_index + 1, self._queued_bytes
        )


class JournalRead(msgspec.Struct):
    """What reading a journal found: messages, and any torn tail or corruption."""

    messages: list[RunMessage]
    torn_tail: bool = False
    corrupt: str | None = None


def read_journal(folder: Path, *, strict: bool = False) -> JournalRead:
    """Decode every message of ``folder``'s segments, stopping at corruption.

    A torn tail (the last frame cut by a crash) is dropped silently; a corrupt frame elsewhere
    stops reading there and is reported (or raised when ``strict``): everything before it is kept.
    """
    out = JournalRead(messages=[])
    for path in segment_paths(folder):
        scan = FrameScan()
        with path.open("rb") as handle:
            for payload in iter_frames(handle, scan):
                try:
                    out.messages.append(DECODER.decode(payload))
                except msgspec.DecodeError as exc:
                    raise EvalStreamError(f"{path}: undecodable frame ({exc})") from exc
        if scan.torn_tail:
            out.torn_tail = True
        if scan.corrupt_at is not None:
            out.corrupt = f"{path} at byte offset {scan.corrupt_at}"
            if strict:
                from evalstream._errors import JournalCorruptError

                raise JournalCorruptError(
                    f"corrupt journal frame in {out.corrupt}; {len(out.messages)} messages "
                    "before it are intact"
                )
            break
    return out


def iter_messages(folder: Path) -> Iterator[RunMessage]:
    """Every intact message of a journal (non-strict)."""
    yield from read_journal(folder).messages
