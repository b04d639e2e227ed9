"""The local output: details parquet files and the results JSON, each written atomically.

The details workers convert their segments to parquet when the run ends (``write_details_sync``
runs in their processes, off this process's GIL); the results JSON is written last, so a
results file on disk always means its details are complete. If the caller is cancelled the
thread still finishes the file it is on (a half-renamed file is impossible).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import anyio
import msgspec

from evalstream._errors import EvalStreamError
from evalstream._naming import details_path, results_path
from evalstream._summary import OutputOutcome, RunResult
from evalstream.durability.storage import translate_oserror
from evalstream.sinks.outputs import outcome

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream.details.protocol import DetailsWritten
    from evalstream.durability.runstate import SaveIntent
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.outputs import OutputContext, SavedRun

NAME = "local"


class LocalFiles(msgspec.Struct, frozen=True, kw_only=True):
    """The local output's outcome: the results file and each task's details, relative paths."""

    results: str
    details: dict[str, str]
    warnings: list[str]


def write_local_sync(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    details: DetailsWritten,
    template: str = "",
) -> OutputOutcome:
    """The results JSON (after the details the workers wrote), then upload to a remote target."""
    if details.error is not None:
        return outcome(NAME, ok=False, error=details.error)
    try:
        rel = results_path(model_name, date_id, template)
        store.write_sync(rel, results_json)
        store.upload_sync([*details.paths.values(), rel])
    except EvalStreamError as exc:
        return outcome(NAME, ok=False, error=str(exc))
    except OSError as exc:
        return outcome(NAME, ok=False, error=str(translate_oserror(exc, store.target)))
    written = LocalFiles(results=rel, details=details.paths, warnings=details.warnings)
    return outcome(NAME, written, paths=[store.url(p) for p in [rel, *details.paths.values()]])


def finished_save(
    store: OutputStore, intent: SaveIntent, workdir: str, template: str = ""
) -> RunResult | None:
    """The run an interrupted save had finished writing: the results file at the intent's
    (model, date), read back; None when there is none (blocking). Results are written last, so
    the file means the details before it are complete."""
    rel = results_path(intent.model_name, intent.date_id, template)
    raw = store.read_sync(rel)
    if raw is None:
        return None
    url = store.url(rel)
    results = msgspec.json.decode(raw)
    model, date_id = intent.model_name, intent.date_id
    details = {t: details_path(model, date_id, t) for t in results.get("summary_tasks", {})}
    return RunResult(
        date_id=date_id,
        model_name=model,
        results=results,
        results_path=url,
        details_paths={
            t: store.url(p) for t, p in details.items() if store.remote or store.local(p).exists()
        },
        outputs=[OutputOutcome(name="local", ok=True, paths=[url])],
        samples={},
        warnings=[f"the interrupted save of {intent.date_id} had written everything"],
        workdir=workdir,
    )


class LocalOutput:
    """The results JSON beside the details files the workers wrote, in the output folder."""

    name: ClassVar[str] = NAME
    owns: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, store: OutputStore, template: str = "") -> None:
        self.store = store
        self.template = template

    def write_sync(self, run: SavedRun) -> OutputOutcome:
        """``write_local_sync`` for ``run`` (blocking; from a worker thread)."""
        return write_local_sync(
            self.store, run.model_name, run.date_id, run.results_json, run.details, self.template
        )

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        """``write_sync`` in a worker thread."""
        return await anyio.to_thread.run_sync(self.write_sync, run)


def build(context: OutputContext) -> LocalOutput:
    """Every run writes its local files."""
    return LocalOutput(context.store, context.options.results_path_template)
