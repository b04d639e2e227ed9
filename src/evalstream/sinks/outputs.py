"""The outputs of a save: local files, TensorBoard and the Hub, each as one awaitable.

Each factory returns an ``OutputFn`` that never raises for its sink's failure: it returns a typed
``OutputOutcome`` instead, so ``evalstream.run.save`` can run them concurrently and one failed sink
never loses another's work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from evalstream._errors import UnsafeNameError
from evalstream._summary import OutputOutcome
from evalstream.sinks.local import write_local
from evalstream.sinks.tensorboard import RunInfo, event_files_for_hub, write_tensorboard

if TYPE_CHECKING:
    from evalstream.details.protocol import DetailsWritten
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher

OutputFn = Callable[[], Awaitable[OutputOutcome]]


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
        try:
            store.local("tb")  # refuses a symbolic link there
        except UnsafeNameError as exc:
            return OutputOutcome(name="tensorboard", ok=False, error=str(exc))
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
