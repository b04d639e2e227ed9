"""Which attempt of each shard a merge reads, checked before anything is read or written.

Per shard index, the newest ``complete`` attempt; without one the shard is *incomplete* (its
newest attempt is running, died, or was cancelled), and a merge refuses it unless asked for a
partial merge, which then reads that newest attempt: every sample it acknowledged is in its
uploaded chunks. A ``resumed`` attempt is never read: its successor replayed it.
"""

from __future__ import annotations

import hashlib

import msgspec

from evalstream._errors import MergeError, ShardMismatchError
from evalstream.shards.manifest import ShardManifest, chunks_of, holder, run_attempts
from evalstream.shards.objects import ObjectFolder, run_prefix


class ShardRead(msgspec.Struct, frozen=True):
    """One shard as the merge reads it: its attempt and that attempt's chunks, in order."""

    manifest: ShardManifest
    chunks: list[str]


class MergePlan(msgspec.Struct, frozen=True, kw_only=True):
    """The shards a merge reads, the ones it cannot, and a fingerprint of its exact input."""

    run: str
    count: int
    shards: list[ShardRead]
    incomplete: list[int]
    missing: list[int]
    fingerprint: str

    @property
    def partial(self) -> bool:
        """True when some shard is missing or unfinished."""
        return bool(self.incomplete or self.missing)


def _describe(manifest: ShardManifest | None, index: int) -> str:
    if manifest is None:
        return f"shard {index} has no attempt yet"
    return (
        f"shard {index} is {manifest.state} (attempt {manifest.attempt}, pid {manifest.pid} "
        f"on {manifest.host})"
    )


def plan_merge(folder: ObjectFolder, run: str, *, partial: bool) -> MergePlan:
    """The merge plan of run ``run`` (blocking); raises MergeError when it cannot be merged."""
    attempts, files = run_attempts(folder, run)
    if not attempts:
        raise MergeError(f"no shards of run {run!r} under {folder.where(run_prefix(run))}")
    counts = sorted({m.count for m in attempts})
    if len(counts) > 1:
        raise ShardMismatchError(f"the shards of run {run!r} disagree on their count: {counts}")
    count = counts[0]
    shards: list[ShardRead] = []
    incomplete: list[int] = []
    missing: list[int] = []
    waiting: list[str] = []
    for index in range(count):
        chosen = holder([m for m in attempts if m.index == index])
        done = chosen is not None and chosen.state == "complete"
        if not done:
            (incomplete if chosen else missing).append(index)
            waiting.append(_describe(chosen, index))
        if chosen is None or not (done or partial):
            continue
        chunks = chunks_of(files, chosen)
        if done and len(chunks) != chosen.chunks:
            raise MergeError(
                f"shard {index} (attempt {chosen.attempt}) uploaded {chosen.chunks} journal "
                f"chunks but {len(chunks)} are in {folder.where(chosen.prefix)}: the folder "
                "lost objects"
            )
        shards.append(ShardRead(chosen, chunks))
    if waiting and not partial:
        raise MergeError(
            f"run {run!r} is not complete: {'; '.join(waiting)}. Wait for those shards, re-run "
            "a dead one (it resumes), or merge with partial=True (--partial)"
        )
    if not shards:
        raise MergeError(f"no shard of run {run!r} has uploaded anything yet")
    settings = {msgspec.structs.replace(s.manifest.settings, output_dir="") for s in shards}
    if len(settings) > 1:
        raise ShardMismatchError(
            f"the shards of run {run!r} were recorded with different settings: "
            f"{sorted(map(repr, settings))}"
        )
    source = [
        (
            s.manifest.attempt,
            s.manifest.state,
            [(c, files[c[len(run_prefix(run)) + 1 :]]) for c in s.chunks],
        )
        for s in shards
    ]
    fingerprint = hashlib.sha256(msgspec.json.encode([source, partial])).hexdigest()
    return MergePlan(
        run=run,
        count=count,
        shards=shards,
        incomplete=incomplete,
        missing=missing,
        fingerprint=fingerprint,
    )
