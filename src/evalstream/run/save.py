"""Save orchestration: end the run, compile the actors' state, then run the sinks.

``save_run`` is the sequence ``EvaluationTracker.save()`` follows: ship the pending batch, journal
the end of run, let the actors (and the details workers) finish, compile lighteval's final dict,
then run the outputs concurrently — local and TensorBoard at once, the Hub after local. Each
output returns a typed ``OutputOutcome``: a failed TensorBoard write or Hub push is recorded in
the run summary and never loses the local files. A save that fails or is cancelled leaves the
run journaled and marked, so ``evalstream recover`` can finish it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import EvalStreamError, RunFailedError, StorageError
from evalstream._messages import EndOfRun
from evalstream._naming import make_date_id
from evalstream._summary import OutputOutcome, RunResult
from evalstream.durability.killpoints import reached
from evalstream.durability.runstate import SaveIntent
from evalstream.shards.writer import ShardWriter
from evalstream.sinks.local import LocalOutput
from evalstream.sinks.outputs import SavedRun, write_outputs
from evalstream.sinks.results import count_nonfinite, encode_results, summary_general
from evalstream.sinks.schema import SCHEMA_VERSION
from evalstream.stats.compute import derive_rows

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from evalstream.durability.runstate import RunStatus
    from evalstream.durability.storage import OutputStore
    from evalstream.run.coordinator import Coordinator
    from evalstream.run.host import RunHost
    from evalstream.run.progress import Meter
    from evalstream.shards.writer import NoShard
    from evalstream.sinks.outputs import Output

    # what save() runs once the actors finished: write_run (the outputs), or a shard's upload
    WriteFn = Callable[["SavePlan", "Coordinator", str, str], Awaitable[RunResult]]


@dataclass(frozen=True, kw_only=True)
class SaveSteps:
    """The run's collaborators that save needs: the host, and the tracker's two hooks."""

    host: RunHost
    coordinator: Coordinator
    ship: Callable[[], Awaitable[int]]
    close_live: Callable[[], Awaitable[None]]
    keep_workdir: bool
    write: WriteFn | None = None  # None: the outputs; a shard's save() uploads instead
    strict: bool = True  # False in recovery: what the actors skipped goes in the partial section
    date_id: str = ""  # recover and merge: the date their save intent recorded
    meter: Meter | None = None  # what was routed to the actors, for the cross-check


@dataclass
class SaveProgress:
    """How far the save got, so a save that failed (disk full) resumes where it stopped."""

    ended: bool = False  # EndOfRun is journaled
    closed: bool = False  # the actors (and the details workers) have finished
    date_id: str = ""


def retryable(exc: BaseException) -> bool:
    """A storage failure: once the disk is fixed, ``save()`` again finishes the run."""
    return isinstance(exc, StorageError)


def primary_outcome(result: RunResult) -> OutputOutcome | None:
    """The outcome that says whether the run is saved: its local files (a shard: its upload)."""
    return result.output("local") or result.output("shard")


def shard_write(shard: ShardWriter | NoShard) -> WriteFn | None:
    """A shard's save(): upload the rest and mark the attempt complete, instead of the outputs."""
    if not isinstance(shard, ShardWriter):
        return None

    async def write(
        plan: SavePlan, coordinator: Coordinator, workdir: str, date_id: str
    ) -> RunResult:
        samples = {name: t.samples for name, t in coordinator.details.tasks().items()}
        return await shard.write(plan.model_name, samples, workdir, date_id)

    return write


async def save_run(steps: SaveSteps, plan: SavePlan, progress: SaveProgress) -> RunResult:
    """End the run and write every output; on failure or cancellation, mark the run and re-raise.

    A StorageError before the actors close leaves them running and ``progress`` says what is
    done; a failed local output returns its outcome; either way ``save()`` can be called again.
    """
    host, coordinator, journal = steps.host, steps.coordinator, steps.host.journal
    try:
        if not progress.closed:
            await steps.ship()
            if not progress.ended:
                await host.send(EndOfRun(end_time=time.time()))
                progress.ended = True
                await steps.close_live()
            await journal.wait_synced()
            reached("save.ended")
            progress.date_id = progress.date_id or steps.date_id or make_date_id()
            if steps.write is None:
                # before the first file: a save killed from here on is completed or redone
                # under this date by `recover`, never written twice (SaveIntent)
                intent = SaveIntent(date_id=progress.date_id, model_name=plan.model_name)
                await host.set_status(saving=intent)
                reached("save.intent")
                coordinator.details.set_output(plan.store.root, plan.model_name, progress.date_id)
            await coordinator.close()  # the details workers write the parquet files now
            progress.closed = True
            reached("save.details")
            fault = host.fault_error() or _miscounted(steps, coordinator)
            if fault is not None and steps.strict:
                raise fault
        elif steps.write is None and coordinator.details.written.error is not None:
            await coordinator.details.rebuild(journal.folder)
        local = _local_alone(steps, plan)
        if local is not None:  # the results file, the marker and the cleanup: one hop
            await journal.close()  # fsynced with the end of run; nothing is appended after it
            finish = partial(_local_then_marked, host, steps.keep_workdir, local)
            result = await write_run(
                plan, coordinator, str(host.workdir), progress.date_id, outputs=finish
            )
            return result
        write = steps.write or write_run
        result = await write(plan, coordinator, str(host.workdir), progress.date_id)
    except BaseException as exc:
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        with anyio.CancelScope(shield=True):
            if cancelled or not retryable(exc):
                with anyio.move_on_after(30):
                    with contextlib.suppress(EvalStreamError):  # the original error wins
                        await steps.ship()  # logged samples reach the journal regardless
                        await journal.wait_synced()
                    await coordinator.close()  # idempotent; the actors must not outlive save()
            with contextlib.suppress(StorageError):  # a full disk cannot take the marker either
                await host.set_status(state="cancelled" if cancelled else "failed", error=repr(exc))
        raise
    reached("save.outputs")
    primary = primary_outcome(result)
    # the outputs are written: a cancellation from here on would leave files the caller never
    # hears of (a marker "saved" and save() raising), so the bookkeeping finishes first
    with anyio.CancelScope(shield=True):
        if primary is not None and primary.ok:  # fsynced with the end of run, as above
            await journal.close()
        cleanup = partial(_cleanup, host.workdir, steps.keep_workdir)
        await host.folder.set_status(cleanup, **_marked(primary, result.results_path))
    return result


def _local_alone(steps: SaveSteps, plan: SavePlan) -> LocalOutput | None:
    """The local output, when a run's save writes it and nothing else (a daemon's usual run)."""
    if steps.write is not None or len(plan.outputs) != 1:
        return None
    (output,) = plan.outputs
    return output if isinstance(output, LocalOutput) else None


async def _local_then_marked(
    host: RunHost, keep_workdir: bool, local: LocalOutput, run: SavedRun
) -> list[OutputOutcome]:
    """The local output alone: its results file, the marker that points at it and the
    journal's cleanup in one thread hop, in the order of the outputs' path (``save.outputs``
    and ``save.marked`` between them), shielded as that path's marker is."""
    outcomes: list[OutputOutcome] = []

    def write() -> dict[str, Any]:
        outcome = local.write_sync(run)
        outcomes.append(outcome)
        reached("save.outputs")
        return _marked(outcome, outcome.paths[0] if outcome.ok else "")

    with anyio.CancelScope(shield=True):
        cleanup = partial(_cleanup, host.workdir, keep_workdir)
        await host.folder.set_status(cleanup, first=write)
    return outcomes


def _marked(primary: OutputOutcome | None, results_path: str) -> dict[str, Any]:
    """The marker's changes once the outputs are written: ``saved`` when the primary output
    is, else ``failed`` with the save intent kept (a failed save is redone under its date)."""
    if primary is not None and primary.ok:
        return {
            "state": "saved",
            "results_path": results_path or None,
            "saving": None,
            "error": None,
        }
    return {
        "state": "failed",
        "results_path": results_path or None,
        "error": f"{primary and primary.error}; call save() again once fixed",
    }


def _cleanup(workdir: Path, keep_workdir: bool, status: RunStatus) -> None:
    """In the marker's thread, once it says saved: the journal goes (one hop for both)."""
    if status.state == "saved":
        reached("save.marked")
        if not keep_workdir:
            _clean(workdir)


def _miscounted(steps: SaveSteps, coordinator: Coordinator) -> RunFailedError | None:
    """The results and details must count exactly what the journal accepted: every batch
    journaled was routed to the actors. A difference is a bug of ours, never saved as ``ok``."""
    faults = coordinator.faults
    if steps.meter is None or faults.samples or faults.forgiven is not None:
        return None  # what an actor skipped is reported as such (the fault, or the warning)
    rows = {name: t.samples for name, t in coordinator.details.tasks().items()}
    metrics = steps.meter.unrouted(coordinator.metrics.samples())
    details = steps.meter.unrouted(rows, "details") if steps.write is None else {}
    if not metrics and not details:
        return None
    return RunFailedError(
        "the actors do not hold what the journal accepted (task: (journaled, held)): "
        f"metrics {metrics}, details {details}; the journal is kept: run `evalstream recover "
        f"{steps.host.workdir}`"
    )


def _clean(workdir: Path) -> None:
    """Drop the journal and segments of a saved run; keep its marker and lock (blocking)."""
    for name in ("journal", "segments", "rebuild"):
        shutil.rmtree(workdir / name, ignore_errors=True)


@dataclass(frozen=True)
class Compiled:
    """lighteval's final dict, the aggregation warnings, and the incomplete tasks."""

    final: dict[str, Any]
    warnings: list[str]
    incomplete: dict[str, tuple[int, int]]


async def compile_final(coordinator: Coordinator, bootstrap_iters: int, seed: int) -> Compiled:
    """lighteval's final dict from the actors' state, with what the run summary must say."""
    metrics = await coordinator.metrics.aggregate(bootstrap_iters, seed)
    details = coordinator.details.tasks()
    summary_tasks = (
        await anyio.to_thread.run_sync(
            lambda: {name: details[name].compiled() for name in sorted(details)}
        )
        if details
        else {}
    )
    task_rows = {task: m.row for task, m in metrics.items()}
    sizes = {task: m.samples for task, m in metrics.items()}
    final: dict[str, Any] = {
        "config_general": coordinator.general.config_general(),
        "results": {**task_rows, **derive_rows(task_rows, sizes)},
        "versions": coordinator.versions.versions(),
        "config_tasks": coordinator.task_config.configs(),
        "summary_tasks": summary_tasks,
        "summary_general": summary_general(summary_tasks),
        "schema_version": SCHEMA_VERSION,
    }
    incomplete = incomplete_tasks(final["config_tasks"], sizes, details)
    warnings = [w for m in metrics.values() for w in m.warnings]
    warnings += [
        f"task {task!r} is incomplete: {logged} of its {effective} effective docs were logged"
        for task, (logged, effective) in incomplete.items()
    ]
    return Compiled(final, warnings, incomplete)


def incomplete_tasks(
    config_tasks: Mapping[str, Mapping[str, Any]],
    metric_samples: Mapping[str, int],
    details: Mapping[str, Any],
) -> dict[str, tuple[int, int]]:
    """Tasks that logged fewer samples than ``log_num_docs`` declared: (logged, effective)."""
    out: dict[str, tuple[int, int]] = {}
    for task, config in config_tasks.items():
        effective = int(config.get("effective_num_docs", -1))
        detail = details.get(task)
        logged = max(metric_samples.get(task, 0), detail.samples if detail is not None else 0)
        if effective > 0 and logged < effective:
            out[task] = (logged, effective)
    return out


@dataclass(frozen=True, kw_only=True)
class SavePlan:
    """Everything save() needs besides the actors' state: where, which model, which outputs."""

    store: OutputStore
    model_name: str
    bootstrap_iters: int
    seed: int
    outputs: list[Output]
    partial: dict[str, Any] | None
    notes: tuple[str, ...] = ()  # recovery and resume: what the dead run's reading lost


async def write_run(
    plan: SavePlan,
    coordinator: Coordinator,
    workdir: str,
    date_id: str,
    *,
    outputs: Callable[[SavedRun], Awaitable[list[OutputOutcome]]] | None = None,
) -> RunResult:
    """Compile, then run the outputs of the registry concurrently (``sinks/outputs.py``), or
    ``outputs`` (the local output alone, with the marker: ``_local_then_marked``)."""
    compiled = await compile_final(coordinator, plan.bootstrap_iters, plan.seed)
    final, warnings = compiled.final, compiled.warnings
    if plan.partial is not None:
        final["evalstream"] = {**plan.partial, "skipped": coordinator.faults.summary()}
    details = coordinator.details.tasks()
    run = SavedRun(
        model_name=plan.model_name,
        date_id=date_id,
        results=final,
        results_json=encode_results(final),
        details=coordinator.details.written,
    )
    outcomes = await (outputs or partial(write_outputs, plan.outputs))(run)
    local = next((o for o in outcomes if o.name == "local"), None)
    written = local.detail if local is not None and local.ok else {}
    # the local output's paths, made in its thread: the results file's, then each task's
    # details in order (no symbolic-link checks of every path again here, on the event loop)
    urls = local.paths if local is not None and written else []
    details_paths = dict(zip(written.get("details", {}), urls[1:], strict=True))
    warnings.extend(plan.notes)
    warnings.extend(written.get("warnings", []))
    if coordinator.faults.forgiven is not None:
        warnings.append(
            f"resume: the dead run's journal held what could not be replayed, skipped: "
            f"{coordinator.faults.forgiven}"
        )
    return RunResult(
        date_id=date_id,
        model_name=plan.model_name,
        results=final,
        results_path=urls[0] if urls else "",
        details_paths=details_paths,
        outputs=outcomes,
        samples={name: t.samples for name, t in details.items()},
        nonfinite_values=count_nonfinite(final),
        warnings=warnings,
        incomplete_tasks={
            task: {"logged": logged, "effective_num_docs": effective}
            for task, (logged, effective) in compiled.incomplete.items()
        },
        workdir=workdir,
    )
