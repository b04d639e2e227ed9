"""``evalstream recover``: the results and details of a dead run, rebuilt from its journal.

The journal's messages are streamed (a few frames per worker-thread hop, never the whole run in
memory) into a fresh tracker writing to the dead run's output_dir with its recorded settings,
and saved. Consecutive sample batches are merged up to ``_MERGE`` samples on the way, so a run
logged in tiny batches (``durable=True``, ``batch_size=1``) is rebuilt in large ones. The results file says it is partial: a top-level ``evalstream`` section lists, per
declared task, the samples recovered and the documents expected (when the harness logged them),
which tasks are incomplete, and whether the run had reached ``save()``. Nothing in the journal is
fatal to recovery: a frame that does not decode (``skipped_frames``), and a message or sample an
actor cannot apply (``skipped``), are skipped and counted there.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import ConfigError
from evalstream._messages import EndOfRun, NumDocs, SampleBatch, ScoredSample, TasksDeclared
from evalstream._types import ModelInfo
from evalstream.durability.journal import JournalScan, scan_journal, segment_paths
from evalstream.durability.resume import check_dead
from evalstream.durability.runstate import read_settings, update_status

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

    def section(self, run_dir: Path, corrupt: str | None) -> dict[str, Any]:
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
            "journal_corruption": corrupt,
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

    ``on_progress(bytes_read, journal_bytes)`` is called as the journal is replayed (progress
    bars).

    Raises RunStateError when ``run_dir`` is not a run folder, or its run is alive or was
    already saved, recovered or resumed.
    """
    run_dir = Path(run_dir)
    status = await anyio.to_thread.run_sync(check_dead, run_dir)
    settings = await anyio.to_thread.run_sync(read_settings, run_dir)
    target = output_dir or (settings.output_dir if settings else str(run_dir.parent.parent))
    from evalstream.run.tracker import EvaluationTracker  # recovery drives a tracker

    tracker = EvaluationTracker(target, **(settings.tracker_options() if settings else {}))
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
        tracker.control.partial = {
            **tally.section(run_dir, scan.corrupt),
            "skipped_frames": scan.skipped,
        }
        if model_name is not None:
            await tracker.log_model_info(ModelInfo(model_name=model_name))
        try:
            result = await tracker.save()
        except ConfigError as exc:
            raise ConfigError(f"{exc}; pass model_name= (or --model-name) to recover") from exc
    if status is not None:
        await anyio.to_thread.run_sync(
            lambda: update_status(
                run_dir, status, state="recovered", results_path=result.results_path
            )
        )
    return result
