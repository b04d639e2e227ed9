"""The manifest of one shard attempt, and the choice of attempts a merge reads.

An attempt writes ``shard.json`` when it starts (``running``) and again when it ends:
``complete`` once ``save()`` uploaded its last chunk, ``cancelled`` or ``failed`` when it exited
without that, and ``resumed`` once a later attempt of the same shard holds its samples. A
process killed outright leaves ``running`` behind: a dead attempt, whose uploaded chunks hold
every sample it acknowledged.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Literal

import msgspec

from evalstream._errors import RunStateError
from evalstream.durability.owner import alive
from evalstream.durability.runstate import RunSettings, RunStatus
from evalstream.shards.info import parse_shard_folder
from evalstream.shards.objects import MANIFEST, run_prefix

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream.shards.objects import ObjectFolder

AttemptState = Literal["running", "complete", "cancelled", "failed", "resumed"]


class ShardManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt at one shard says about itself."""

    run: str
    index: int
    count: int
    attempt: str
    state: AttemptState
    host: str
    pid: int
    start_time: float
    updated: float
    settings: RunSettings
    chunks: int = 0
    samples: int = 0
    resumed_from: str | None = None
    successor: str | None = None
    error: str | None = None

    @property
    def prefix(self) -> str:
        """The attempt's folder relative to the output folder."""
        return f"{run_prefix(self.run)}/{self.index:05d}-of-{self.count:05d}/{self.attempt}"

    def alive_here(self, workdir: Path) -> bool:
        """True when the attempt is ``running`` in a live process of this host: its run
        folder's lock (``workdir``, the attempt's local working folder) is held; an attempt
        from before locks falls back to its pid."""
        if self.state != "running" or self.host != socket.gethostname():
            return False
        status = RunStatus(
            state="running",
            run_id=self.attempt,
            pid=self.pid,
            host=self.host,
            start_time=self.start_time,
            updated=self.updated,
        )
        return alive(workdir, status)


def write_manifest(folder: ObjectFolder, manifest: ShardManifest) -> None:
    """Replace the attempt's manifest (blocking)."""
    folder.put(f"{manifest.prefix}/{MANIFEST}", msgspec.json.encode(manifest))


def run_attempts(folder: ObjectFolder, run: str) -> tuple[list[ShardManifest], dict[str, int]]:
    """Every attempt of run ``run`` (by shard index, then start time), and every object's size.

    A manifest that cannot be decoded names its object in a RunStateError.
    """
    files = folder.files(run_prefix(run))
    attempts = []
    for rel in sorted(files):
        parts = rel.split("/")
        if len(parts) != 3 or parts[2] != MANIFEST or parse_shard_folder(parts[0]) is None:
            continue
        raw = folder.get(f"{run_prefix(run)}/{rel}")
        try:
            attempts.append(msgspec.json.decode(raw, type=ShardManifest))
        except msgspec.DecodeError as exc:
            raise RunStateError(
                f"{folder.where(run_prefix(run) + '/' + rel)} is not a shard manifest: {exc}"
            ) from exc
    attempts.sort(key=lambda m: (m.index, m.start_time, m.attempt))
    return attempts, files


def holder(attempts: list[ShardManifest]) -> ShardManifest | None:
    """The attempt of one shard that holds its samples: the newest complete one, else the newest
    unfinished one that is not superseded (``resumed``) and whose own resume finished.

    An attempt that died while replaying its predecessor holds only part of the predecessor (it
    marks the predecessor ``resumed`` only once the replay is uploaded): the predecessor counts.
    """
    done = [m for m in attempts if m.state == "complete"]
    if done:
        return done[-1]
    states = {m.attempt: m.state for m in attempts}
    for m in reversed(attempts):
        if m.state != "resumed" and (
            m.resumed_from is None or states.get(m.resumed_from) in ("resumed", None)
        ):
            return m
    return None


def chunks_of(files: dict[str, int], manifest: ShardManifest) -> list[str]:
    """The journal chunks of ``manifest``'s attempt, in order, relative to the output folder."""
    head = f"{manifest.index:05d}-of-{manifest.count:05d}/{manifest.attempt}/journal/"
    names = sorted(rel for rel in files if rel.startswith(head) and rel.endswith(".wal"))
    return [f"{run_prefix(manifest.run)}/{rel}" for rel in names]
