"""``evalstream merge``: the shards of a run, merged into one run as one process would record it.

The chosen attempt of every shard (``plan.py``) is read chunk by chunk, in shard order, and
replayed into one fresh tracker writing to the output folder: its actors compute everything a
single-process run computes, from the union of the samples. Statistics are over every sample
(means, stderr, the bootstrap), never an average of shard results; the hashes are those of the
union; the details parquet holds every row; the outputs (local files, TensorBoard, the Hub) are
the tracker's own. Within a task the samples keep shard order, so shards that split each task
into contiguous blocks (accelerate's ``split_between_processes``) give exactly the run a single
process logging the tasks in order would have written, stderr included.

Idempotent: ``merged.json`` beside the shards records the fingerprint of the input (attempts,
chunks and sizes) and where the results went; merging the same input again returns that run
without writing anything. A mismatch (``union.py``) is found while reading, before ``save()``:
nothing is written to the outputs, and the merge's own working folder is removed.
"""

from __future__ import annotations

import io
import shutil
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from evalstream._errors import (
    EvalStreamError,
    JournalCorruptError,
    MergeError,
    ShardMismatchError,
)
from evalstream._messages import DECODER, EndOfRun, SampleBatch, ScoredSample
from evalstream._naming import make_date_id
from evalstream._summary import RunResult
from evalstream._types import ModelInfo
from evalstream.durability.frames import FrameScan, iter_frames
from evalstream.durability.killpoints import reached
from evalstream.durability.owner import claim
from evalstream.durability.runstate import SaveIntent, make_dirs_durable
from evalstream.durability.storage import OutputStore, atomic_write
from evalstream.shards.objects import MERGED, ObjectFolder, run_prefix
from evalstream.shards.plan import MergePlan, plan_merge
from evalstream.shards.union import Duplicates, ShardIdentity
from evalstream.sinks.local import finished_save

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream._messages import RunMessage
    from evalstream.run.tracker import EvaluationTracker

_MERGE = 1024  # samples per replayed batch
_POLL = 2.0  # seconds between looks at unfinished shards when waiting


class MergeResult(msgspec.Struct, frozen=True, kw_only=True):
    """The merged run, and what the merge found on the way."""

    run: str
    shards: int
    result: RunResult
    duplicates: dict[str, int]
    incomplete_shards: list[int] = []
    missing_shards: list[int] = []
    already_merged: bool = False

    @property
    def partial(self) -> bool:
        """True when some shard was missing or unfinished (a ``partial=True`` merge)."""
        return bool(self.incomplete_shards or self.missing_shards)


class _Marker(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    result: RunResult
    duplicates: dict[str, int]
    results_rel: str


def read_chunk(folder: ObjectFolder, rel: str) -> list[RunMessage]:
    """The messages of one uploaded chunk (blocking); chunks hold whole frames only."""
    data = folder.get(rel)
    scan = FrameScan()
    payloads = list(iter_frames(io.BytesIO(data), scan))
    if scan.corrupt_at is not None or scan.torn_tail:
        at = scan.corrupt_at if scan.corrupt_at is not None else scan.good_bytes
        raise JournalCorruptError(
            f"{folder.where(rel)}: damaged frame at byte offset {at} of an uploaded journal "
            "chunk (chunks are uploaded whole: the object store changed it)"
        )
    try:
        return [DECODER.decode(p) for p in payloads]
    except msgspec.DecodeError as exc:
        raise JournalCorruptError(f"{folder.where(rel)}: undecodable frame ({exc})") from exc


def _read_marker(folder: ObjectFolder, rel: str) -> _Marker | None:
    """The last merge's record, if it is readable and its results file still exists."""
    raw = folder.get_or_none(rel)
    try:
        marker = msgspec.json.decode(raw, type=_Marker) if raw is not None else None
    except msgspec.DecodeError:
        return None
    if marker is None or folder.get_or_none(marker.results_rel) is None:
        return None
    return marker


class _Replay:
    """Feeds the shards' messages to the merging tracker, deduplicated and checked."""

    def __init__(self, tracker: EvaluationTracker, plan: MergePlan) -> None:
        self.tracker = tracker
        self.plan = plan
        self.identity = ShardIdentity()
        self.duplicates = Duplicates()
        self.samples: dict[str, int] = {}
        self._pending: list[ScoredSample] = []

    async def run(self, folder: ObjectFolder) -> None:
        for shard in self.plan.shards:
            index = shard.manifest.index
            for rel in shard.chunks:
                for message in await anyio.to_thread.run_sync(read_chunk, folder, rel):
                    await self._feed(index, message)
            self.duplicates.end_shard()
        await self._ship()
        self.identity.check_declared(
            [s.manifest.index for s in self.plan.shards if s.manifest.state == "complete"]
        )
        for counts in self.identity.merged_num_docs():
            await self.tracker.replay(counts)

    async def _feed(self, index: int, message: RunMessage) -> None:
        if isinstance(message, SampleBatch):
            kept = self.duplicates.keep(message.samples)
            for sample in kept:
                if sample.scope != "details":
                    self.samples[sample.task_name] = self.samples.get(sample.task_name, 0) + 1
            self._pending.extend(kept)
            if len(self._pending) >= _MERGE:
                await self._ship()
            return
        if isinstance(message, EndOfRun):
            return
        first = self.identity.first(index, message)
        if first is not None:
            await self._ship()  # keep every message's place among the samples
            await self.tracker.replay(first)

    async def _ship(self) -> None:
        if self._pending:
            batch = SampleBatch(samples=tuple(self._pending))
            self._pending = []
            await self.tracker.replay(batch)

    def section(self) -> dict[str, Any]:
        """The results' ``evalstream`` section: the shards merged and what the merge found."""
        # a task's expected count is known once every shard logged its part of it
        expected = {
            n.task_name: n.effective_num_docs
            for n in self.identity.merged_num_docs()
            if self.identity.counted_by(n.task_name) == self.plan.count
        }
        tasks = {
            name: {
                "samples": self.samples.get(name, 0),
                "expected": expected.get(name),
                "complete": name in expected and self.samples.get(name, 0) >= expected[name],
            }
            for name in sorted(set(self.identity.tasks) | set(self.samples))
        }
        plan = self.plan
        return {
            "partial": plan.partial,
            "merged": {
                "run": plan.run,
                "shards": plan.count,
                "attempts": {str(s.manifest.index): s.manifest.attempt for s in plan.shards},
                "incomplete_shards": plan.incomplete,
                "missing_shards": plan.missing,
                "duplicates": dict(sorted(self.duplicates.dropped.items())),
            },
            "incomplete_tasks": [t for t, v in tasks.items() if not v["complete"]],
            "tasks": tasks,
        }


async def _plan(folder: ObjectFolder, run: str, partial: bool, wait: float) -> MergePlan:
    with anyio.move_on_after(wait) if wait > 0 else anyio.CancelScope():
        while wait > 0:
            try:
                return await anyio.to_thread.run_sync(
                    lambda: plan_merge(folder, run, partial=False)
                )
            except ShardMismatchError:
                raise  # waiting does not mend a mismatch
            except MergeError:
                await anyio.sleep(_POLL)
    return await anyio.to_thread.run_sync(lambda: plan_merge(folder, run, partial=partial))


async def merge(
    output_dir: str,
    run: str,
    *,
    partial: bool = False,
    wait: float = 0,
    model_name: str | None = None,
    **tracker_options: Any,
) -> MergeResult:
    """Merge the shards of run ``run`` under ``output_dir`` into one run, and save it there.

    ``wait`` (seconds) waits for unfinished shards first; ``partial=True`` merges what the
    unfinished and dead shards uploaded (the results say so). ``tracker_options`` go to the
    merging EvaluationTracker (``push_to_hub``, ``hub_results_org``, ``push_to_tensorboard``,
    ...). Raises MergeError (ShardMismatchError for shards of different evaluations). Merging
    input already merged returns that run and does nothing else (publish it with ``push``).
    """
    folder = await anyio.to_thread.run_sync(ObjectFolder, output_dir)
    plan = await _plan(folder, run, partial, wait)
    marker_rel = f"{run_prefix(run)}/{MERGED}"
    marker = await anyio.to_thread.run_sync(_read_marker, folder, marker_rel)
    if marker is not None and marker.fingerprint == plan.fingerprint:
        return _result(plan, marker.result, marker.duplicates, already=True)
    store = OutputStore(output_dir)
    tx = store.local(f".evalstream/merges/{run}")
    await anyio.to_thread.run_sync(make_dirs_durable, tx)
    lock = await anyio.to_thread.run_sync(claim, tx, "merge")
    try:
        return await _merge_held(folder, plan, store, tx, marker_rel, model_name, tracker_options)
    finally:
        lock.release()


class _Intent(msgspec.Struct, frozen=True, kw_only=True):
    """The merge's save intent, recorded before its first file: a merge killed at any point
    and run again completes that save, or redoes it under the same date, never a second."""

    fingerprint: str
    save: SaveIntent


async def _merge_held(
    folder: ObjectFolder,
    plan: MergePlan,
    store: OutputStore,
    tx: Path,
    marker_rel: str,
    model_name: str | None,
    tracker_options: dict[str, Any],
) -> MergeResult:
    """The merge, holding its lock: the working state lives in ``tx`` (``.evalstream/merges/
    RUN``, never a run folder of its own), and is removed once the marker is written."""
    from evalstream.run.tracker import EvaluationTracker  # the merge drives a tracker

    intent = await anyio.to_thread.run_sync(_read_intent, tx, plan.fingerprint)
    if intent is not None:
        template = plan.shards[0].manifest.settings.results_path_template
        done = await anyio.to_thread.run_sync(finished_save, store, intent.save, str(tx), template)
        if done is not None:
            return await _finish(folder, plan, tx, marker_rel, done, {})
    work = tx / "work"
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
    settings = plan.shards[0].manifest.settings
    tracker = EvaluationTracker(store.target, **(settings.tracker_options() | tracker_options))
    tracker.control.serve(work)
    replay = _Replay(tracker, plan)
    try:
        async with tracker:
            await replay.run(folder)  # a mismatch is refused here, before anything is written
            result = await _save(tracker, replay, plan, intent, tx, model_name)
    except EvalStreamError:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
        raise
    reached("merge.saved")
    duplicates = dict(sorted(replay.duplicates.dropped.items()))
    # once the local files exist a re-run returns this run; a failed Hub push is retried with
    # `evalstream push`, as for any run
    local = result.output("local")
    if local is None or not local.ok:
        return _result(plan, result, duplicates, already=False)
    return await _finish(folder, plan, tx, marker_rel, result, duplicates)


async def _save(
    tracker: EvaluationTracker,
    replay: _Replay,
    plan: MergePlan,
    intent: _Intent | None,
    tx: Path,
    model_name: str | None,
) -> RunResult:
    """Record the save intent (the date of an interrupted merge's, if any), then save."""
    tracker.control.partial = replay.section()
    if model_name is not None:
        await tracker.log_model_info(ModelInfo(model_name=model_name))
    model = tracker.control.model
    if model is None:
        raise MergeError("the shards never logged the model; pass model_name= to merge")
    reached("merge.replayed")
    date_id = intent.save.date_id if intent is not None else make_date_id()
    intent = _Intent(
        fingerprint=plan.fingerprint,
        save=SaveIntent(date_id=date_id, model_name=model.model_name, by="merge"),
    )
    await anyio.to_thread.run_sync(atomic_write, tx / "intent.json", msgspec.json.encode(intent))
    reached("merge.intent")
    tracker.control.date_id = date_id
    return await tracker.save()


def _drop_state(tx: Path) -> None:
    """The merge's working state, once its marker is written (the lock file stays, so a
    prober always finds one)."""
    shutil.rmtree(tx / "work", ignore_errors=True)
    (tx / "intent.json").unlink(missing_ok=True)


def _read_intent(tx: Path, fingerprint: str) -> _Intent | None:
    """The intent of an interrupted merge of this same input, if any."""
    try:
        intent = msgspec.json.decode((tx / "intent.json").read_bytes(), type=_Intent)
    except (OSError, msgspec.DecodeError):
        return None
    return intent if intent.fingerprint == fingerprint else None


async def _finish(
    folder: ObjectFolder,
    plan: MergePlan,
    tx: Path,
    marker_rel: str,
    result: RunResult,
    duplicates: dict[str, int],
) -> MergeResult:
    """Write ``merged.json`` (a re-run returns this run), then drop the working state."""
    rel = result.results_path.removeprefix(folder.url).lstrip("/")
    marker = _Marker(
        fingerprint=plan.fingerprint, result=result, duplicates=duplicates, results_rel=rel
    )
    await anyio.to_thread.run_sync(folder.put, marker_rel, msgspec.json.encode(marker))
    await anyio.to_thread.run_sync(_drop_state, tx)
    return _result(plan, result, duplicates, already=False)


def _result(
    plan: MergePlan, result: RunResult, duplicates: dict[str, int], *, already: bool
) -> MergeResult:
    return MergeResult(
        run=plan.run,
        shards=plan.count,
        result=result,
        duplicates=duplicates,
        incomplete_shards=plan.incomplete,
        missing_shards=plan.missing,
        already_merged=already,
    )
