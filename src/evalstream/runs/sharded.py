"""Sharded runs as ``evalstream ls`` shows them: one line per run, its shards and its merge.

Each attempt at a shard uploads its manifest to
``.evalstream/shards/RUN/NNNNN-of-NNNNN/ATTEMPT/shard.json`` and a merge records what it wrote in
``.evalstream/shards/RUN/merged.json`` (docs/design/shards.md). They are read here as JSON, with
only the fields a listing needs: ``runs/`` does not import ``shards/`` (the import ladder), and
a listing must not fail on a manifest a newer version wrote. An attempt's local working folder
(``.evalstream/ATTEMPT``, whose status names its shard) tells whether a ``running`` attempt of
this host is alive, and stands in for a manifest its attempt died before uploading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from evalstream.durability.peek import peek_journal

if TYPE_CHECKING:
    from evalstream.durability.runstate import RunStatus

SHARDS = ".evalstream/shards"
_SHARD_FOLDER = re.compile(r"(\d{5,})-of-(\d{5,})")
_STATUS_SHARD = re.compile(r"(\S+) (\d+)/(\d+)")


class ShardAttempt(msgspec.Struct, kw_only=True):
    """The fields of a shard manifest (``shards.manifest.ShardManifest``) a listing reads."""

    run: str
    index: int
    count: int
    attempt: str
    state: str
    start_time: float = 0.0
    samples: int = 0


class _MergedResult(msgspec.Struct):
    results_path: str = ""
    results: dict[str, Any] = {}


class _Merged(msgspec.Struct):
    """The part of ``merged.json`` a listing reads: where the last merge wrote its results."""

    result: _MergedResult


class Shard(msgspec.Struct, frozen=True):
    """One shard: the state of the attempt that holds its samples (``missing``: no attempt)."""

    index: int
    state: str
    samples: int


class ShardedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A sharded run: its shards, what its last merge wrote, and what to do next."""

    run: str
    shards: list[Shard]
    started: float | None
    model: str | None
    tasks: int
    merged_results: str | None  # the results file of the last merge
    merged_pending: list[int] | None  # the shards that last merge found unfinished

    @property
    def pending(self) -> list[int]:
        """The shards that are not complete."""
        return [s.index for s in self.shards if s.state != "complete"]

    @property
    def up_to_date(self) -> bool:
        """True when the last merge read the shards as they are now."""
        return self.merged_pending is not None and set(self.pending) == set(self.merged_pending)

    def describe(self, output_dir: str) -> str:
        """The shards' states, whether merged, and the command that goes on."""
        merge = f"evalstream merge {output_dir} --run {self.run}"
        pending = self.pending
        by_state: dict[str, list[int]] = {}
        for s in self.shards:
            by_state.setdefault(s.state, []).append(s.index)
        parts = [
            f"{len(ix)} {state}" + ("" if state == "complete" else f" ({_indexes(ix)})")
            for state, ix in sorted(by_state.items(), key=lambda kv: kv[0] != "complete")
        ]
        shards = f"{len(self.shards)} shards: {', '.join(parts)}"
        if self.merged_pending is not None and not self.up_to_date:
            return f"{shards}; merged when shards {_indexes(self.merged_pending)} were " \
                f"unfinished: merge again: `{merge}`"  # fmt: skip
        if not pending:
            return f"{shards}; merged" if self.up_to_date else f"{shards}; not merged: `{merge}`"
        merged = "merged without them" if self.up_to_date else "not merged"
        if "running" in by_state:
            return f"{shards}; {merged}: wait for them, then `{merge}` (or --wait SECONDS)"
        partial = "" if self.up_to_date else " (or --partial now)"
        return (
            f"{shards}; {merged}: run shard(s) {_indexes(pending)} again (a dead shard attempt "
            f"resumes), then `{merge}`{partial}"
        )


def attempt_of(status: RunStatus, folder: str) -> str:
    """What to do with the working folder ``folder`` of a shard attempt, which is no run of its
    own: a shard is finished by its re-run and the merge, never shown or recovered alone."""
    match = _STATUS_SHARD.fullmatch(status.shard or "")
    run, index, count = match.groups() if match else (status.shard, "?", "?")
    output_dir = str(Path(folder).parent.parent)
    return (
        f"{folder} is an attempt at shard {index} of {count} of the sharded run {run}, not a run "
        f"of its own: run the shard again if it died (it resumes), merge the shards "
        f"(`evalstream merge {output_dir} --run {run}`), then show that run (`evalstream show "
        f"{run} --output-dir {output_dir}`)"
    )


def _indexes(indexes: list[int], shown: int = 5) -> str:
    named = ", ".join(f"#{i}" for i in indexes[:shown])
    return named + (f", +{len(indexes) - shown} more" if len(indexes) > shown else "")


def _holder(attempts: list[ShardAttempt]) -> ShardAttempt:
    """The attempt that holds a shard's samples: its newest complete one, else its newest one
    not superseded by a resume."""
    done = [a for a in attempts if a.state == "complete"]
    live = [a for a in attempts if a.state != "resumed"]
    return (done or live or attempts)[-1]


def folder_attempt(status: RunStatus, state: str) -> ShardAttempt | None:
    """The attempt a local working folder holds (its status' ``shard``: ``RUN i/n``), in the
    ``state`` its lock tells; None for a folder of no shard."""
    match = _STATUS_SHARD.fullmatch(status.shard or "")
    if match is None:
        return None
    return ShardAttempt(
        run=match[1], index=int(match[2]), count=int(match[3]), attempt=status.run_id,
        state={"saved": "complete"}.get(state, state), start_time=status.start_time,
    )  # fmt: skip


def _read_attempts(fs: Any, folder: str) -> list[ShardAttempt]:
    attempts = []
    for path in sorted(fs.glob(f"{folder}/*/*/shard.json")):
        if _SHARD_FOLDER.fullmatch(Path(path).parent.parent.name) is None:
            continue
        try:
            attempts.append(msgspec.json.decode(fs.cat_file(path), type=ShardAttempt))
        except (msgspec.DecodeError, OSError):
            continue  # a manifest being replaced, or foreign: the folder entry stands in
    return attempts


def sharded_runs(
    fs: Any, root: str, local: dict[str, ShardAttempt], local_state: dict[str, str]
) -> list[ShardedRun]:
    """Every sharded run under ``root`` (blocking).

    ``local`` maps attempt ids to what their local working folders say (for runs whose
    manifests are missing); ``local_state`` maps attempt ids to ``running`` or ``dead`` as the
    folder's lock tells (a manifest says ``running`` until its process ends).
    """
    runs: dict[str, list[ShardAttempt]] = {}
    if fs.isdir(f"{root}/{SHARDS}"):
        for folder in sorted(fs.ls(f"{root}/{SHARDS}", detail=False)):
            for attempt in _read_attempts(fs, str(folder).rstrip("/")):
                runs.setdefault(attempt.run, []).append(attempt)
    known = {a.attempt for attempts in runs.values() for a in attempts}
    for attempt in local.values():
        if attempt.attempt not in known:
            runs.setdefault(attempt.run, []).append(attempt)
    return [_sharded(fs, root, run, attempts, local_state) for run, attempts in runs.items()]


def _sharded(
    fs: Any, root: str, run: str, attempts: list[ShardAttempt], local_state: dict[str, str]
) -> ShardedRun:
    attempts.sort(key=lambda a: (a.index, a.start_time, a.attempt))
    count = max(a.count for a in attempts)
    shards, holders = [], []
    for index in range(count):
        mine = [a for a in attempts if a.index == index]
        if not mine:
            shards.append(Shard(index, "missing", 0))
            continue
        holder = _holder(mine)
        holders.append(holder)
        state = holder.state
        if state == "running":
            state = local_state.get(holder.attempt, "running")
        shards.append(Shard(index, state, holder.samples))
    model, tasks = _peek(fs, root, run, holders)
    merged_results, merged_pending = _last_merge(fs, f"{root}/{SHARDS}/{run}/merged.json")
    return ShardedRun(
        run=run,
        shards=shards,
        started=min((a.start_time for a in attempts), default=None),
        model=model,
        tasks=tasks,
        merged_results=merged_results,
        merged_pending=merged_pending,
    )


def _peek(fs: Any, root: str, run: str, holders: list[ShardAttempt]) -> tuple[str | None, int]:
    """Model and task count from the uploaded journal chunks (local folders only: a remote
    listing must not download journals)."""
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        return None, 0
    model, tasks = None, set()
    for h in holders:
        chunks = Path(root, SHARDS, run, f"{h.index:05d}-of-{h.count:05d}", h.attempt, "journal")
        if chunks.is_dir():
            summary = peek_journal(chunks)
            model = model or summary.model_name
            tasks |= set(summary.samples)
    return model, len(tasks)


def _last_merge(fs: Any, path: str) -> tuple[str | None, list[int] | None]:
    """The results file the last merge wrote, and the shards it found unfinished."""
    if not fs.exists(path):
        return None, None
    try:
        merged = msgspec.json.decode(fs.cat_file(path), type=_Merged).result
    except (msgspec.DecodeError, OSError):
        return None, None
    section = (merged.results.get("evalstream") or {}).get("merged") or {}
    pending = [*section.get("incomplete_shards", []), *section.get("missing_shards", [])]
    return merged.results_path or None, sorted(pending)
