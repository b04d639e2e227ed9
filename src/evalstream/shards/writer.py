"""The shard side: a sharded tracker's journal, streamed to the shared folder as it is written.

The local journal stays the write-ahead log (the local disk is the staging buffer); an uploader
copies its new whole frames, as one object per upload (a *chunk*), to the attempt's folder in
the object store: in the background every ``upload_interval`` seconds, and at once when
``flush()`` (or a ``durable=True`` ``log_sample``) asks. A chunk holds whole, checksummed
frames only, so it reads like a journal segment of its own; the chunks of an attempt, in name
order, are its journal.

The contract on object storage: once ``flush()`` returns, every sample logged before it is in
an object the store acknowledged (a PUT that succeeded), so it survives the loss of the host,
not only of the process. Concurrent waiters share uploads (group commit), as they share fsyncs.
A shard's ``save()`` uploads the rest and marks the attempt complete; it writes no results:
the merge does, over the union of every shard's samples.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import time
from typing import TYPE_CHECKING

import anyio
import msgspec

from evalstream._errors import ConfigError, RunStateError, StorageError
from evalstream._summary import OutputOutcome, RunResult
from evalstream.durability.frames import FrameScan, iter_frames
from evalstream.durability.runstate import (
    read_status_or_damage,
    replacement_status,
    update_status,
)
from evalstream.durability.segments import segment_paths
from evalstream.shards.info import ShardInfo
from evalstream.shards.manifest import (
    ShardManifest,
    chunks_of,
    holder,
    run_attempts,
    write_manifest,
)
from evalstream.shards.objects import ObjectFolder, chunk_name

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskGroup

    from evalstream.durability.journal import Journal
    from evalstream.durability.runstate import RunSettings

__all__ = ["NoShard", "ShardInfo", "ShardWriter", "shard_writer"]

_MAX_CHUNK = 8 << 20  # bytes read (and uploaded) at most per chunk


def whole_frames(data: bytes) -> int:
    """The length of the longest prefix of ``data`` made of intact frames."""
    scan = FrameScan()
    for _ in iter_frames(io.BytesIO(data), scan):
        pass
    return scan.good_bytes


class JournalUploader:
    """Copies a local journal folder's new whole frames to numbered chunk objects (blocking)."""

    def __init__(self, journal: Path, folder: ObjectFolder, prefix: str) -> None:
        self.journal = journal
        self.folder = folder
        self.prefix = prefix
        self.chunks = 0
        self._segment = 0  # index of the local segment being read
        self._offset = 0  # bytes of it already uploaded

    def upload_new(self) -> None:
        """Upload every whole frame written since the last call."""
        while True:
            paths = segment_paths(self.journal)
            if self._segment >= len(paths):
                return
            finished = self._segment < len(paths) - 1  # a rotated segment is complete
            with paths[self._segment].open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read(_MAX_CHUNK)
            good = whole_frames(data)
            if good:
                self.folder.put(f"{self.prefix}/{chunk_name(self.chunks)}", data[:good])
                self.chunks += 1
                self._offset += good
            elif finished:
                self._segment, self._offset = self._segment + 1, 0
            else:
                return


class NoShard:
    """The tracker's shard hooks when it records a whole run: nothing to do."""

    async def start(self, resume_from: Path | None) -> Path | None:
        """Nothing to resume from the object store."""
        return resume_from

    async def resumed(self) -> None:
        """Nothing to mark."""

    async def sync(self, seq: int | None = None) -> None:
        """Nothing to upload."""

    async def close(self, exc: BaseException | None) -> None:
        """Nothing to close."""


def _hand_over(workdir: Path, attempt: str, successor: str) -> None:
    """After a resume: drop the replayed copy, and mark the dead attempt's own run folder, if
    it is on this host, ``resumed`` (else ``recover OUTPUT_DIR`` would find it dead)."""
    shutil.rmtree(workdir / "predecessor", ignore_errors=True)
    dead = workdir.parent / attempt
    if not dead.is_dir():
        return
    status, damage = read_status_or_damage(dead)
    if damage is not None:  # unreadable: marked anew, or recover would find it dead
        status = replacement_status(dead)
    if status is not None and status.state not in ("saved", "recovered", "resumed"):
        update_status(dead, status, state="resumed", successor=successor)


class ShardWriter:
    """One attempt at one shard: its manifest, the uploads, and the resume of a dead earlier
    attempt of the same shard (the newest one, which holds its own predecessors' samples)."""

    def __init__(
        self,
        info: ShardInfo,
        output_dir: str,
        *,
        attempt: str,
        journal: Journal,
        settings: RunSettings,
        start_time: float,
    ) -> None:
        self.info = info
        self.output_dir = output_dir
        self.journal = journal
        self.failure: StorageError | None = None
        self.predecessor: ShardManifest | None = None
        self.manifest = ShardManifest(
            run=info.run,
            index=info.index,
            count=info.count,
            attempt=attempt,
            state="running",
            host=socket.gethostname(),
            pid=os.getpid(),
            start_time=start_time,
            updated=start_time,
            settings=settings,
        )
        self._folder: ObjectFolder | None = None
        self._uploader: JournalUploader | None = None
        self._uploaded = 0  # the journal sequence number the uploaded chunks cover
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    @property
    def manifest_url(self) -> str:
        """Where this attempt's manifest is."""
        return f"{self.output_dir.rstrip('/')}/{self.manifest.prefix}/shard.json"

    async def start(self, resume_from: Path | None) -> Path | None:
        """Check the shard's earlier attempts and write the manifest (``running``).

        Returns the local folder holding the dead earlier attempt's journal, downloaded beside
        this run's working folder, when there is one to resume; else ``resume_from``.
        """
        # inside this attempt's own folder: killed while replaying, it is never a run of its own
        resume_dir = self.journal.folder.parent / "predecessor"
        found = await anyio.to_thread.run_sync(self._open, resume_dir)
        return found or resume_from

    def _open(self, resume_dir: Path) -> Path | None:
        folder = self._folder = ObjectFolder(self.output_dir)
        self._uploader = JournalUploader(self.journal.folder, folder, self.manifest.prefix)
        attempts, files = run_attempts(folder, self.info.run)
        counts = {m.count for m in attempts}
        if counts and counts != {self.info.count}:
            raise ConfigError(
                f"run {self.info.run!r} already has shards of {sorted(counts)} in all, this one "
                f"says {self.info.count}: use the same count on every shard, or a new run id"
            )
        mine = [m for m in attempts if m.index == self.info.index]
        if done := [m for m in mine if m.state == "complete"]:
            raise RunStateError(
                f"shard {self.info.index} of run {self.info.run!r} is already complete "
                f"(attempt {done[-1].attempt}); merge the run, or record again under a new run id"
            )
        runs = self.journal.folder.parent.parent  # this host's .evalstream: attempts' folders
        if live := [m for m in mine if m.alive_here(runs / m.attempt)]:
            raise RunStateError(
                f"shard {self.info.index} of run {self.info.run!r} is still being recorded by "
                f"pid {live[-1].pid} on this host; stop it first"
            )
        self.predecessor = holder(mine)
        if self.predecessor is not None:
            target = resume_dir / "journal"
            target.mkdir(parents=True, exist_ok=True)
            for n, rel in enumerate(chunks_of(files, self.predecessor)):
                (target / f"{n:08d}.wal").write_bytes(folder.get(rel))
            self.manifest = msgspec.structs.replace(
                self.manifest, resumed_from=self.predecessor.attempt
            )
        write_manifest(folder, self.manifest)
        return resume_dir if self.predecessor is not None else None

    async def resumed(self) -> None:
        """The run is set up: upload what the resume replayed, mark the predecessor ``resumed``
        (only now does this attempt hold its samples), and start the background upload."""
        if self.predecessor is not None:
            await self.sync()
            folder, successor = self._folder, self.manifest.attempt
            assert folder is not None
            marked = msgspec.structs.replace(
                self.predecessor, state="resumed", successor=successor, updated=time.time()
            )
            await anyio.to_thread.run_sync(write_manifest, folder, marked)
            here = self.journal.folder.parent
            await anyio.to_thread.run_sync(_hand_over, here, self.predecessor.attempt, successor)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._background)

    async def _background(self) -> None:
        while True:
            await anyio.sleep(self.info.upload_interval)
            with contextlib.suppress(StorageError):  # kept in self.failure for flush()
                await self.sync()

    async def sync(self, seq: int | None = None) -> None:
        """Return once every frame the journal wrote (up to ``seq``) is in an uploaded chunk.

        Raises the StorageError of a failed upload; the next call retries from the same frame.
        """
        target = self.journal.stats().written if seq is None else seq
        async with self._lock:
            if self._uploaded >= target:
                return
            written = self.journal.stats().written
            uploader = self._uploader
            assert uploader is not None
            try:
                await anyio.to_thread.run_sync(uploader.upload_new)
            except StorageError as exc:
                self.failure = exc
                raise
            self.failure = None
            self._uploaded = max(self._uploaded, written)

    async def write(
        self, model_name: str, samples: dict[str, int], workdir: str, date_id: str
    ) -> RunResult:
        """save()'s output for a shard: the rest uploaded, the attempt marked complete."""
        await self.sync()
        await self._set(state="complete", samples=sum(samples.values()))
        return RunResult(
            date_id=date_id,
            model_name=model_name,
            results={},
            results_path="",
            details_paths={},
            outputs=[
                OutputOutcome(
                    name="shard",
                    ok=True,
                    paths=[self.manifest_url],
                    detail=msgspec.structs.asdict(self.info) | {"chunks": self.manifest.chunks},
                )
            ],
            samples=samples,
            workdir=workdir,
        )

    async def close(self, exc: BaseException | None) -> None:
        """Stop the background upload; upload what is left and mark an unfinished attempt
        ``failed`` or ``cancelled`` (shielded, at most 30 s)."""
        if self._tg is not None:  # entered after the run host's task group: left before it
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            if self.manifest.state != "running" or self._uploader is None:
                return
            error = None
            try:
                await self.journal.wait_synced()
                await self.sync()
            except (StorageError, RunStateError) as err:
                error = str(err)
            cancelled = exc is None or isinstance(exc, anyio.get_cancelled_exc_class())
            reason = repr(exc) if exc is not None else "exited without save()"
            await self._set(state="cancelled" if cancelled else "failed", error=error or reason)

    async def _set(self, **changes: object) -> None:
        folder = self._folder
        assert folder is not None and self._uploader is not None
        self.manifest = msgspec.structs.replace(
            self.manifest, updated=time.time(), chunks=self._uploader.chunks, **changes
        )
        await anyio.to_thread.run_sync(write_manifest, folder, self.manifest)


def shard_writer(
    info: ShardInfo | None,
    *,
    output_dir: str,
    attempt: str,
    journal: Journal,
    settings: RunSettings,
    start_time: float,
) -> ShardWriter | NoShard:
    """A tracker's shard hooks: a writer for a shard, no-ops for a whole run."""
    if info is None:
        return NoShard()
    if not isinstance(info, ShardInfo):
        raise ConfigError(f"shard must be a ShardInfo, got {type(info).__name__}")
    return ShardWriter(
        info,
        output_dir,
        attempt=attempt,
        journal=journal,
        settings=settings,
        start_time=start_time,
    )
