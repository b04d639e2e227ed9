"""The write-ahead journal: every message of a run, framed and checksummed, before any actor.

Appending never touches the disk on the event loop: ``append`` puts the frame in an in-memory
queue and gives it a sequence number at once, then waits while the queue is over its bound
(back-pressure). One writer task moves queued frames to the current segment from a worker thread
(one ``write`` per group of frames). Durability is group commit: whoever needs it waits for a
sequence number; the writer fsyncs once for every waiter queued meanwhile. A background policy
fsyncs every ``flush_every`` frames or ``flush_interval`` seconds. A new segment's folder entry
is fsynced with it, so an fsynced frame survives a power cut, not only a process crash.

A failed write (disk full, read-only folder) truncates the segment back to its last good frame,
keeps the frames queued, retries in the background and reports a StorageError in ``failure``
(and to ``wait_synced``) until a write succeeds: the journal on disk is always readable up to
its last good frame, and a frame once appended is never dropped while the journal runs. Closing
makes one last attempt; frames that still cannot be written are then given up (they were never
reported durable). A failed fsync does not rewrite the frames it covered: it is retried.

Segments are numbered from 0 and never removed while the run lives; reading them back (and
noticing a missing one) is ``segments.py``.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, BinaryIO

import anyio
import msgspec

from evalstream._errors import RunStateError, StorageError
from evalstream.durability.frames import HEADER_SIZE, frames
from evalstream.durability.segments import segment_name, segment_number, segment_paths
from evalstream.durability.storage import fsync_dir, translate_oserror

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskStatus

_RETRY_DELAY = 0.05  # seconds between background retries of a failing disk


class JournalStats(msgspec.Struct, frozen=True):
    """A snapshot of the journal's progress."""

    appended: int
    written: int
    synced: int
    segments: int
    queued_bytes: int


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
        self._stopped = False
        self._started = False
        self._ended = anyio.Event()
        self._handle: BinaryIO | None = None
        self._segment_index = 0
        self._segments = 0
        self._segment_size = 0
        self._good_size = 0
        self._dirty = False  # the segment may hold bytes past _good_size (a failed write)
        self._dir_dirty = False  # a segment was created since the folder was last fsynced
        self._fresh = False  # the caller made the folder just now: nothing in it to look at

    # -- producer side ---------------------------------------------------------------------

    async def append(self, payload: bytes) -> int:
        """Queue one message's bytes and return its sequence number.

        The frame is queued before the first await, so a ``wait_synced()`` that starts after
        this call covers it; the call then waits while the queue is over its bound and the
        writer is healthy (a failing writer keeps frames queued; ``failure`` says why).
        """
        if self._closed:
            raise RunStateError("the journal is closed; nothing can be appended")
        if not payload:
            raise ValueError("a frame's payload cannot be empty")
        self._queue.append(payload)  # framed by the writer thread (its checksum off the loop)
        self._queued_bytes += len(payload) + HEADER_SIZE
        self._appended += 1
        seq = self._appended
        self._wake.set()
        while (
            self._queued_bytes > self.max_queued_bytes
            and self.failure is None
            and not self._stopped
        ):
            await self._wait_progress()
        return seq

    async def wait_synced(self, seq: int | None = None) -> None:
        """Return once message ``seq`` (default: everything appended) is fsynced.

        Raises the StorageError of a failing disk once a retry has failed too, and RunStateError
        when the writer has stopped before reaching ``seq``.
        """
        target = self._appended if seq is None else seq
        self._sync_wanted = max(self._sync_wanted, target)
        self._wake.set()
        while self._synced < target:
            if self._stopped:
                raise self.failure or RunStateError(
                    f"the journal stopped before message {target} was fsynced"
                )
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
        try:
            if not self._fresh:  # a new run's folder is empty: no thread hop to list it
                await anyio.to_thread.run_sync(self._open_folder)
        except OSError as exc:
            raise translate_oserror(exc, f"the journal folder {self.folder}") from exc
        self._started = True
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
                    or self.failure is not None
                )
                await self._drain(sync=sync)
                if sync and self.failure is None:
                    last_sync = now
                if self._closed and (not self._queue or self.failure is not None):
                    break
        finally:
            self._stopped = True
            with anyio.CancelScope(shield=True):
                try:
                    if self._unsynced():
                        await anyio.to_thread.run_sync(self._close_handle)
                    else:  # the last fsync covered it all: a close, no thread hop
                        self._drop_handle()
                except OSError as exc:
                    self.failure = translate_oserror(exc, f"the journal in {self.folder}")
                else:
                    if not self._queue:
                        self._synced = self._written
            self._notify()
            self._ended.set()

    def created(self) -> None:
        """The caller has just made the (empty) folder and its entry durable: ``run()`` starts
        at segment 0 without looking."""
        self._fresh = True

    def _open_folder(self) -> None:
        """Create the journal folder (its entry made durable) and continue after any segment."""
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.folder.parent)
        numbers = [n for p in segment_paths(self.folder) if (n := segment_number(p)) is not None]
        self._segment_index = max(numbers) + 1 if numbers else 0

    async def _drain(self, *, sync: bool) -> None:
        batch = list(self._queue)
        if not batch and not sync:
            return
        try:
            sync_error = await anyio.to_thread.run_sync(self._write_sync, batch, sync)
        except OSError as exc:  # nothing of the batch counts as written
            self.failure = translate_oserror(exc, f"the journal in {self.folder}")
        else:
            del self._queue[: len(batch)]
            self._queued_bytes -= sum(len(p) for p in batch) + HEADER_SIZE * len(batch)
            self._written += len(batch)
            if sync_error is not None:
                self.failure = translate_oserror(sync_error, f"the journal in {self.folder}")
            else:
                self.failure = None
                if sync:
                    self._synced = self._written
        self._notify()
        if self.failure is not None and not self._closed:  # back off, then retry
            await anyio.sleep(min(self.flush_interval, _RETRY_DELAY))
            self._wake.set()

    def _write_sync(self, payloads: list[bytes], sync: bool) -> OSError | None:
        """Frame and write ``payloads`` (raises, with the segment cut back, if that fails), then
        fsync. The checksums are computed here, in the writer's thread: zlib releases the GIL
        over large buffers, so a batch's 150 KB no longer cost the event loop its CRC and a copy.

        Returns the fsync's error instead of raising it: the frames are written either way.
        """
        if payloads:
            self._ensure_segment()
            assert self._handle is not None
            data = frames(payloads)
            try:
                self._handle.write(data)
                self._handle.flush()
            except OSError:
                self._dirty = True
                self._drop_handle()
                with contextlib.suppress(OSError):  # else cut back before the next write
                    self._ensure_segment()
                raise
            self._segment_size += len(data)
            self._good_size = self._segment_size
        if sync and self._handle is not None:
            try:
                self._fsync()
            except OSError as exc:
                return exc
        return None

    def _fsync(self) -> None:
        assert self._handle is not None
        os.fsync(self._handle.fileno())
        if self._dir_dirty:
            fsync_dir(self.folder)
            self._dir_dirty = False

    def _ensure_segment(self) -> None:
        """Open the current segment (cut back to its last good frame), or rotate to a new one."""
        if self._handle is not None and not self._dirty:
            if self._segment_size < self.segment_bytes:
                return
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._drop_handle()
            self._segment_index += 1
            self._good_size = 0
        path = self.folder / segment_name(self._segment_index)
        created = not path.exists()
        if self._dirty:
            with path.open("r+b") as damaged:
                damaged.truncate(self._good_size)
            self._dirty = False
        handle = path.open("ab")
        if created:
            self._dir_dirty = True
            self._segments += 1
        self._handle = handle
        self._segment_size = self._good_size = handle.tell()

    def _drop_handle(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    def _unsynced(self) -> bool:
        """Whether the open segment holds what no fsync has covered yet (or a write failed)."""
        return self._handle is not None and (
            self._synced < self._written or self._dir_dirty or self.failure is not None
        )

    def _close_handle(self) -> None:
        """Close the segment, fsynced unless the last fsync already covered all of it."""
        if self._handle is not None:
            try:
                if self._unsynced():
                    self._fsync()
            finally:
                self._drop_handle()

    async def close(self) -> None:
        """Write and fsync everything queued, then stop the writer loop."""
        self._closed = True
        self._wake.set()

    async def stopped(self) -> None:
        """Return once the writer loop has ended (at once if it never started)."""
        if self._started:
            await self._ended.wait()

    def stats(self) -> JournalStats:
        """A snapshot of sequence numbers, segments created and queue size."""
        return JournalStats(
            self._appended, self._written, self._synced, self._segments, self._queued_bytes
        )
