"""``evalstream recover``: the results and details of a dead run, rebuilt from its journal.

The journal's messages are replayed into a fresh tracker writing to the dead run's output_dir
with its recorded settings, and saved. The results file says it is partial: a top-level
``evalstream`` section lists, per task, the samples recovered and the documents expected
(when the harness logged them), and whether the run had reached ``save()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import ConfigError
from evalstream._journal import read_journal
from evalstream._messages import EndOfRun, NumDocs, SampleBatch
from evalstream._resume import check_dead
from evalstream._runstate import read_settings, update_status
from evalstream._tracker import EvaluationTracker
from evalstream._types import ModelInfo

if TYPE_CHECKING:
    from evalstream._summary import RunResult


def _partial(messages: list[Any], run_dir: Path, corrupt: str | None) -> dict[str, Any]:
    samples: dict[str, int] = {}
    expected: dict[str, int] = {}
    ended = False
    for m in messages:
        if isinstance(m, SampleBatch):
            for s in m.samples:
                if s.scope != "details":
                    samples[s.task_name] = samples.get(s.task_name, 0) + 1
        elif isinstance(m, NumDocs):
            expected[m.task_name] = m.effective_num_docs
        elif isinstance(m, EndOfRun):
            ended = True
    tasks = {
        t: {"samples": n, "expected": expected.get(t), "complete": expected.get(t) == n}
        for t, n in sorted(samples.items())
    }
    return {
        "partial": True,
        "recovered_from": str(run_dir),
        "reached_save": ended,
        "incomplete_tasks": sorted(t for t, v in tasks.items() if not v["complete"]),
        "tasks": tasks,
        "journal_corruption": corrupt,
    }


async def recover(
    run_dir: str | Path,
    *,
    output_dir: str | None = None,
    model_name: str | None = None,
) -> RunResult:
    """Rebuild and save the results and details of the dead run in ``run_dir``."""
    run_dir = Path(run_dir)
    status = await anyio.to_thread.run_sync(check_dead, run_dir)
    settings = await anyio.to_thread.run_sync(read_settings, run_dir)
    read = await anyio.to_thread.run_sync(read_journal, run_dir / "journal")
    target = output_dir or (settings.output_dir if settings else str(run_dir.parent.parent))
    tracker = EvaluationTracker(
        target,
        save_details=settings.save_details if settings else True,
        bootstrap_iters=settings.bootstrap_iters if settings else 1000,
        seed=settings.seed if settings else 1234,
    )
    tracker.partial = _partial(read.messages, run_dir, read.corrupt)
    async with tracker:
        for message in read.messages:
            if isinstance(message, EndOfRun):
                continue
            await tracker.replay(message)
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
