"""Save-time work: compile the actors' state into lighteval's final dict, then run the outputs.

Outputs run concurrently in one task group, each returning a typed ``OutputOutcome``: a failed
TensorBoard write or Hub push is recorded in the run summary and never loses the local files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from evalstream._local import DetailsWritten, write_local
from evalstream._results import count_nonfinite, encode_results, summary_general
from evalstream._stats import derive_rows
from evalstream._summary import OutputOutcome, RunResult
from evalstream._tensorboard import RunInfo, event_files_for_hub, write_tensorboard

if TYPE_CHECKING:
    from evalstream._coordinator import Coordinator
    from evalstream._hub import HubPublisher
    from evalstream._storage import OutputStore

OutputFn = Callable[[], Awaitable[OutputOutcome]]


async def compile_final(
    coordinator: Coordinator, bootstrap_iters: int, seed: int
) -> tuple[dict[str, Any], list[str]]:
    """lighteval's final dict from the actors' state, and the aggregation warnings."""
    metrics = await coordinator.metrics.aggregate(bootstrap_iters, seed)
    details = coordinator.details.tasks()
    summary_tasks = await anyio.to_thread.run_sync(
        lambda: {name: details[name].compiled() for name in sorted(details)}
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
    }
    return final, [w for m in metrics.values() for w in m.warnings]


def local_output(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    details: DetailsWritten,
) -> OutputFn:
    """The local files: the results JSON, after the details the workers wrote."""

    async def run() -> OutputOutcome:
        return await write_local(store, model_name, date_id, results_json, details)

    return run


def tensorboard_output(
    store: OutputStore,
    final: Mapping[str, Any],
    prefix: str,
    run_info: RunInfo | None,
    publisher: HubPublisher | None = None,
) -> OutputFn:
    """The TensorBoard event file of this run and checkpoint; with a publisher, pushed to
    ``{org}/tensorboard_logs`` (private) under ``tb/`` in one commit."""

    async def run() -> OutputOutcome:
        tb = await write_tensorboard(
            output_dir=store.root,
            results=final["results"],
            config_general=final["config_general"],
            summary_tasks=final["summary_tasks"],
            prefix=prefix,
            run_info=run_info,
        )
        rels = [Path(f).relative_to(store.root).as_posix() for f in tb.files]
        detail: dict[str, Any] = {"logdir": tb.logdir, "scalars": tb.scalars}
        error = tb.error
        if tb.ok:
            await anyio.to_thread.run_sync(store.upload_sync, rels)
            if publisher is not None:
                files = event_files_for_hub([Path(f) for f in tb.files], store.root)
                push = await publisher.push_files(
                    f"{publisher.org}/tensorboard_logs",
                    files,
                    message=f"Add TensorBoard events ({len(files)} file(s))",
                    private=True,
                )
                detail["hub"] = msgspec.structs.asdict(push)
                error = push.error
        return OutputOutcome(
            name="tensorboard",
            ok=tb.ok and error is None,
            error=error,
            paths=[store.url(r) for r in rels],
            detail=detail,
        )

    return run


def hub_output(
    publisher: HubPublisher,
    repo_id: str,
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    local_done: anyio.Event,
    local: dict[str, OutputOutcome],
    retry_hint: str,
) -> OutputFn:
    """The Hub push: once the local files exist, the run and its card in one commit."""

    async def run() -> OutputOutcome:
        await local_done.wait()
        outcome = local["local"]
        if not outcome.ok:
            return OutputOutcome(
                name="hub",
                ok=False,
                error="local files were not written",
                detail={"repo_id": repo_id, "retry": retry_hint},
            )
        files = {
            f"{date_id}/{Path(rel).name}": store.local(rel)
            for rel in outcome.detail["details"].values()
        }
        push = await publisher.publish_run(
            repo_id, files, model_name=model_name, date_id=date_id, results_json=results_json
        )
        return OutputOutcome(
            name="hub",
            ok=push.ok,
            error=push.error,
            paths=[f"{repo_id}/{p}" for p in push.files] if push.ok else [],
            detail={
                "repo_id": repo_id,
                "commit": push.commit_oid,
                "attempts": push.attempts,
                "retry": retry_hint,
            },
        )

    return run


async def run_outputs(outputs: Mapping[str, OutputFn]) -> list[OutputOutcome]:
    """Run every output concurrently; outcomes come back in the order given."""
    outcomes: dict[str, OutputOutcome] = {}

    async def one(name: str, fn: OutputFn) -> None:
        outcomes[name] = await fn()

    async with anyio.create_task_group() as tg:
        for name, fn in outputs.items():
            tg.start_soon(one, name, fn)
    return [outcomes[name] for name in outputs]


@dataclass(frozen=True, kw_only=True)
class SavePlan:
    """Everything save() needs besides the actors' state."""

    store: OutputStore
    model_name: str
    save_details: bool
    bootstrap_iters: int
    seed: int
    tensorboard_prefix: str | None
    run_info: RunInfo | None
    publisher: HubPublisher | None
    push_to_hub: bool
    public: bool
    retry_hint: str
    partial: dict[str, Any] | None


async def write_run(
    plan: SavePlan, coordinator: Coordinator, workdir: str, date_id: str
) -> RunResult:
    """Compile, then run the outputs: local and TensorBoard at once, the Hub after local."""
    final, warnings = await compile_final(coordinator, plan.bootstrap_iters, plan.seed)
    if plan.partial is not None:
        final["evalstream"] = plan.partial
    results_json = encode_results(final)
    details = coordinator.details.tasks()
    written = coordinator.details.written
    local_fn = local_output(plan.store, plan.model_name, date_id, results_json, written)
    local_done = anyio.Event()
    local_box: dict[str, OutputOutcome] = {}

    async def local_then_signal() -> OutputOutcome:
        try:
            local_box["local"] = await local_fn()
        finally:
            local_done.set()
        return local_box["local"]

    outputs: dict[str, OutputFn] = {"local": local_then_signal}
    if plan.tensorboard_prefix is not None:
        outputs["tensorboard"] = tensorboard_output(
            plan.store, final, plan.tensorboard_prefix, plan.run_info, plan.publisher
        )
    if plan.push_to_hub and plan.publisher is not None:
        from evalstream._hub import details_repo_id  # huggingface_hub only when pushing

        outputs["hub"] = hub_output(
            plan.publisher,
            details_repo_id(plan.publisher.org, plan.model_name, plan.public),
            plan.store,
            plan.model_name,
            date_id,
            results_json,
            local_done,
            local_box,
            plan.retry_hint,
        )
    outcomes = await run_outputs(outputs)
    local = outcomes[0]
    warnings.extend(local.detail.get("warnings", []))
    return RunResult(
        date_id=date_id,
        model_name=plan.model_name,
        results=final,
        results_path=plan.store.url(local.detail["results"]) if local.ok else "",
        details_paths={t: plan.store.url(p) for t, p in local.detail.get("details", {}).items()},
        outputs=outcomes,
        samples={name: t.samples for name, t in details.items()},
        nonfinite_values=count_nonfinite(final),
        warnings=warnings,
        workdir=workdir,
    )
