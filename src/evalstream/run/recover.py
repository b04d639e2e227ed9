"""``evalstream recover``: the results and details of a dead run, rebuilt from its journal.

The journal's messages are streamed (a few frames per worker-thread hop, never the whole run in
memory) into a fresh tracker writing to the dead run's output_dir with its recorded settings,
and saved. Consecutive sample batches are merged up to ``_MERGE`` samples on the way, so a run
logged in tiny batches (``durable=True``, ``batch_size=1``) is rebuilt in large ones. The results file says it is partial: a top-level ``evalstream`` section lists, per
declared task, the samples recovered and the documents expected (when the harness logged them),
which tasks are incomplete, and whether the run had reached ``save()``. Nothing in the journal is
fatal to recovery: a frame that does not decode (``skipped_frames``), and a message or sample an
actor cannot apply (``skipped``), are skipped and counted there; a corrupt frame
(``journal_corruption``) ends the replay, and journal segments missing from the numbering
(``journal_gaps``) are stepped over. Each loss is also a line of ``RunResult.warnings``.
"""

from __future__ import annotations

import shutil
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from evalstream._errors import ConfigError, ResumeAbandonedError, RunStateError
from evalstream._messages import EndOfRun, NumDocs, SampleBatch, ScoredSample, TasksDeclared
from evalstream._naming import make_date_id
from evalstream._types import ModelInfo
from evalstream.durability.killpoints import reached
from evalstream.durability.resume import claim_dead
from evalstream.durability.runstate import (
    RunSettings,
    RunStatus,
    SaveIntent,
    read_settings_or_damage,
    read_status_or_damage,
    replacement_status,
    update_status,
)
from evalstream.durability.segments import JournalScan, scan_journal, segment_paths
from evalstream.durability.storage import OutputStore, is_remote
from evalstream.sinks.local import finished_save

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from evalstream._messages import RunMessage
    from evalstream._summary import RunResult

_CHUNK = 16  # frames decoded per worker-thread hop
_MERGE = 1024  # samples per replayed batch


class _Tally:
    """Per-task counts of the replayed messages, for the partial-results section."""

    def __init__(self) -> None:
        self.samples: dict[str, int] = {}
        self.expected: dict[str, int] = {}
        self.ended = False

    def add(self, message: RunMessage) -> None:
        if isinstance(message, SampleBatch):
            for s in message.samples:
                if s.scope != "details":
                    self.samples[s.task_name] = self.samples.get(s.task_name, 0) + 1
        elif isinstance(message, TasksDeclared):
            for spec in message.tasks:
                self.samples.setdefault(spec.name, 0)
        elif isinstance(message, NumDocs):
            self.expected[message.task_name] = message.effective_num_docs
            self.samples.setdefault(message.task_name, 0)
        elif isinstance(message, EndOfRun):
            self.ended = True

    def section(self, run_dir: Path, scan: JournalScan) -> dict[str, Any]:
        tasks = {}
        for task, n in sorted(self.samples.items()):
            expected = self.expected.get(task)
            tasks[task] = {
                "samples": n,
                "expected": expected,
                "complete": expected is not None and n >= expected,
            }
        return {
            "partial": True,
            "recovered_from": str(run_dir),
            "reached_save": self.ended,
            "incomplete_tasks": [t for t, v in tasks.items() if not v["complete"]],
            "tasks": tasks,
            "journal_corruption": scan.corrupt,
            "journal_gaps": [msgspec.to_builtins(gap) for gap in scan.gaps],
            "skipped_frames": scan.skipped,
        }


def _take(messages: Iterator[RunMessage]) -> list[RunMessage]:
    return list(islice(messages, _CHUNK))


def _merged(chunk: list[RunMessage], pending: list[ScoredSample]) -> Iterator[RunMessage]:
    """``chunk`` with its sample batches gathered into ``pending`` and let out ``_MERGE`` at a
    time, or before any other message (so the order of everything is kept)."""
    for message in chunk:
        if isinstance(message, SampleBatch):
            pending.extend(message.samples)
            if len(pending) < _MERGE:
                continue
        if pending:
            yield SampleBatch(samples=tuple(pending))
            pending.clear()
        if not isinstance(message, SampleBatch):
            yield message


def _lost(name: str) -> Any:
    def fn(values: Any) -> Any:
        raise ConfigError(
            f"{name!r} was registered by the dead process (a lighteval corpus function, or your "
            "own) and is unknown here; aggregate that metric from the recovered details"
        )

    return fn


def _stand_in_for_lost(registry: Any, message: TasksDeclared) -> None:
    """An aggregation the dead process registered (not in the journal) gives NaN and a warning."""
    for spec in message.tasks:
        for name in spec.aggregations.values():
            if name not in registry:
                registry.register(name, _lost(name))


async def recover(
    run_dir: str | Path,
    *,
    output_dir: str | None = None,
    model_name: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Rebuild and save the results and details of the dead run in ``run_dir``.

    A transaction on that run: recovery holds the run's lock (a second recover, or the live
    run, is refused), works in ``run_dir/recovery`` (never a run folder of its own), and
    records its save intent in the run's marker before writing, so a recovery killed at any
    point and run again writes exactly one results file. A save the run itself (or an earlier
    recovery) had finished but not marked is completed without writing anything.

    ``on_progress(bytes_read, journal_bytes)`` is called as the journal is replayed (progress
    bars).

    Raises RunStateError when ``run_dir`` is not a run folder, or its run is alive (RunBusyError),
    was already saved, recovered or resumed, or is an interrupted resume (abandoned now: its
    predecessor is the run to recover).
    """
    run_dir = Path(await anyio.Path(run_dir).absolute())
    lock, status, damage = await anyio.to_thread.run_sync(claim_dead, run_dir, "recover")
    try:
        reached("recover.claimed")
        settings, bad = await anyio.to_thread.run_sync(read_settings_or_damage, run_dir)
        store = OutputStore(output_dir or _where(run_dir, settings))
        notes = _damage_notes(damage, bad, store)
        await anyio.to_thread.run_sync(_check_resume, run_dir, status)
        template = settings.results_path_template if settings is not None else ""
        done = await anyio.to_thread.run_sync(_completed, run_dir, status, store, template)
        if done is not None:
            return done
        return await _rebuild(run_dir, status, settings, store, model_name, on_progress, notes)
    finally:
        lock.release()


def _damage_notes(status: str | None, settings: str | None, store: OutputStore) -> list[str]:
    """The warnings of a run whose marker or settings file is unreadable: the journal is the
    run's record, so recovery goes on, and says what it assumed."""
    notes = []
    if status is not None:
        notes.append(
            f"{status}: no process holds the run's lock, so it was taken as dead and recovered "
            "from its journal; a new marker says it is recovered"
        )
    if settings is not None:
        notes.append(
            f"{settings}: recovered with the default settings (save_details, bootstrap_iters, "
            f"seed, details_layout) into {store.target}; pass output_dir= (--output-dir) if the "
            "run wrote elsewhere"
        )
    return notes


def _where(run_dir: Path, settings: RunSettings | None) -> str:
    """The run's output folder: where the run folder is now (it may have been moved), or the
    remote target it published to."""
    if settings is not None and is_remote(settings.output_dir):
        return settings.output_dir
    return str(run_dir.parent.parent)


def _check_resume(run_dir: Path, status: RunStatus | None) -> None:
    """A resumed run that died before taking its predecessor over holds a partial copy of the
    predecessor's journal: it is abandoned, and the predecessor is the run to recover."""
    if status is None or status.predecessor is None:
        return
    before, damage = read_status_or_damage(Path(status.predecessor))
    if before is not None and before.state == "resumed" and before.successor == status.run_id:
        return
    if damage is not None:  # the hand-over cannot be told either way: the user decides
        raise RunStateError(
            f"the run in {run_dir} resumed {status.predecessor}, but {damage}, so whether "
            "this run took that one over cannot be told: if this run ran past its "
            "start, recover it and delete the predecessor's folder; else recover the "
            "predecessor and delete this folder"
        )
    update_status(run_dir, status, state="abandoned", error="interrupted before the hand-over")
    raise ResumeAbandonedError(
        f"the run in {run_dir} is a resume of {status.predecessor} interrupted before it took "
        f"that run over: abandoned; recover {status.predecessor} instead"
    )


def _completed(
    run_dir: Path, status: RunStatus | None, store: OutputStore, template: str
) -> RunResult | None:
    """The results of a save that wrote its results file but died before its marker: the
    marker is completed, nothing is written again (blocking). Without the file, the save is
    redone under the same date, over the details it had written."""
    intent = status.saving if status is not None else None
    if status is None or intent is None:
        return None
    result = finished_save(store, intent, str(run_dir), template)
    if result is not None:
        state = "saved" if intent.by == "save" else "recovered"
        update_status(run_dir, status, state=state, results_path=result.results_path, saving=None)
    return result


async def _rebuild(
    run_dir: Path,
    status: RunStatus | None,
    settings: RunSettings | None,
    store: OutputStore,
    model_name: str | None,
    on_progress: Callable[[int, int], None] | None,
    notes: list[str],
) -> RunResult:
    from evalstream.run.tracker import EvaluationTracker  # recovery drives a tracker

    work = run_dir / "recovery"
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
    tracker = EvaluationTracker(store.target, **(settings.tracker_options() if settings else {}))
    tracker.control.serve(work)
    tracker.control.contain_faults = True  # what cannot be replayed is skipped and counted
    scan = JournalScan()
    messages = scan_journal(run_dir / "journal", scan=scan)
    total = sum(p.stat().st_size for p in segment_paths(run_dir / "journal"))
    tally = _Tally()
    pending: list[ScoredSample] = []
    async with tracker:
        while chunk := await anyio.to_thread.run_sync(_take, messages):
            for message in chunk:
                tally.add(message)
            if on_progress is not None:
                on_progress(scan.bytes, total)
            for message in _merged(chunk, pending):
                if isinstance(message, TasksDeclared):
                    _stand_in_for_lost(tracker.registry, message)
                if not isinstance(message, EndOfRun):
                    await tracker.replay(message)
        if pending:
            await tracker.replay(SampleBatch(samples=tuple(pending)))
        tracker.control.partial = {**tally.section(run_dir, scan), "damaged_files": notes}
        tracker.control.notes.extend([*notes, *scan.problems()])
        if model_name is not None:
            await tracker.log_model_info(ModelInfo(model_name=model_name))
        model = tracker.control.model
        if model is None:
            raise ConfigError(
                f"the run in {run_dir} never logged its model; pass model_name= (or "
                "--model-name) to recover"
            )
        reached("recover.replayed")
        old = status.saving if status is not None else None
        intent = SaveIntent(
            date_id=old.date_id if old is not None else make_date_id(),
            model_name=model.model_name,
            by="recover",
        )
        status = await anyio.to_thread.run_sync(_record_intent, run_dir, status, intent)
        reached("recover.intent")
        tracker.control.date_id = intent.date_id
        result = await tracker.save()
    reached("recover.saved")
    local = result.output("local")
    if local is not None and local.ok:
        await anyio.to_thread.run_sync(
            lambda: update_status(
                run_dir, status, state="recovered", results_path=result.results_path, saving=None
            )
        )
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
    return result


def _record_intent(run_dir: Path, status: RunStatus | None, intent: SaveIntent) -> RunStatus:
    """The recovery's save intent in the dead run's marker (one is made for a run that died
    before writing its own, or whose own is unreadable)."""
    return update_status(run_dir, status or replacement_status(run_dir), saving=intent)
