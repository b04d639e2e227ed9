"""The W&B output (lighteval's ``use_wandb``): the run in trackio if installed, else in W&B.

Owns the option ``use_wandb``; reads the run info (nanotron's ``GeneralArgs`` or a ``RunInfo``)
and, as lighteval 0.13 does, the environment: ``WANDB_PROJECT`` (required), ``WANDB_SPACE_ID``
(a trackio Space). The results go under lighteval's keys, one per results row: ``{task with ':'
replaced by '/'}: {metric: value}``. Beyond lighteval:

- **details**: each task's details file, one row per sample, as the table ``details/{task}``
  (nested fields as ``parent.child`` columns, lists as JSON text), when details are saved;
  at most ``MAX_TABLE_ROWS`` rows (W&B's limit), the outcome names a task cut there.
- **checkpoints as steps**: a run with run info is one checkpoint of a training run. Every
  evaluation of that training run logs to one tracker run, named after it, at the checkpoint's
  step, so the tracker plots each metric against training steps. trackio logs at that step;
  W&B, whose own step may only grow (a checkpoint evaluated late would be dropped), logs it as
  ``checkpoint_step``, the x-axis of every key. Without run info each evaluation is a tracker
  run of its own, ``{model} {date_id}`` (``WANDB_RUN_ID`` continues one, as in lighteval). A
  model revision is not read as a step: a revision names a checkpoint, it does not order them.

W&B's run folders go in ``{output_dir}/wandb/`` (the staging folder for a remote output_dir),
or in ``WANDB_DIR``; trackio's store is its own (``TRACKIO_DIR``). The output starts with the
others (the details files are written before any output runs) and never touches their files:
a tracker that fails (no network, a refused key, a bad project name) is a failed outcome, its
message cleared of any token the environment holds.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import msgspec

from evalstream._errors import ConfigError
from evalstream.sinks.outputs import outcome
from evalstream.sinks.redact import redact
from evalstream.sinks.trackers import Table, TrackerRun, log_sync, pick_backend

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream._summary import OutputOutcome
    from evalstream.details.protocol import DetailsWritten
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.outputs import OutputContext, SavedRun
    from evalstream.sinks.tensorboard import RunInfo

NAME = "wandb"
MAX_TABLE_ROWS = 200_000
"""Rows of one details table: W&B's own limit (``wandb.Table.MAX_ARTIFACT_ROWS``)."""
SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "TRACKIO_WRITE_TOKEN")
"""Environment variables whose values never reach an outcome's message."""
_JSON = msgspec.json.Encoder(enc_hook=str)


class TrackerLogged(msgspec.Struct, frozen=True, kw_only=True):
    """The W&B output's outcome: which tracker, which run, what was logged at which step."""

    backend: str
    project: str
    run: str
    step: int | None = None
    run_id: str = ""
    where: str = ""
    results: list[str] = []
    tables: dict[str, int] = {}
    truncated: dict[str, int] = {}
    """Tasks whose details had more rows than a table takes: rows in the details file."""


def results_keys(results: Mapping[str, Any]) -> dict[str, Any]:
    """The final dict's results rows under lighteval's ``push_to_wandb`` keys."""
    return {task.replace(":", "/"): dict(row) for task, row in results["results"].items()}


def table_key(task: str) -> str:
    """Where a task's details table is logged."""
    return "details/" + task.replace(":", "/")


def flat_cells(value: Any, prefix: str, into: dict[str, Any]) -> None:
    """One details value as table cells: a mapping spreads over ``prefix.key`` columns, a list
    becomes JSON text (the trackers' tables take scalars), a scalar stays as it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            flat_cells(item, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(value, list | tuple | bytes):
        into[prefix] = _JSON.encode(value).decode()
    else:
        into[prefix] = value


def details_tables(
    store: OutputStore, details: DetailsWritten, limit: int = MAX_TABLE_ROWS
) -> tuple[dict[str, Table], dict[str, int]]:
    """Each task's details file as a table (blocking), and the tasks cut at ``limit`` rows."""
    import pyarrow.parquet as pq

    tables: dict[str, Table] = {}
    truncated: dict[str, int] = {}
    for task, rel in sorted(details.paths.items()):
        data = pq.read_table(store.local(rel))
        if data.num_rows > limit:
            truncated[task] = data.num_rows
            data = data.slice(0, limit)
        rows: list[dict[str, Any]] = []
        for row in data.to_pylist():
            cells: dict[str, Any] = {}
            flat_cells(row, "", cells)
            rows.append(cells)
        columns = list(dict.fromkeys(column for cells in rows for column in cells))
        tables[task] = Table(columns, [[cells.get(c) for c in columns] for cells in rows])
    return tables, truncated


class WandbOutput:
    """The saved run in an experiment tracker, as lighteval's ``use_wandb`` logs it, and more."""

    name: ClassVar[str] = NAME
    owns: ClassVar[tuple[str, ...]] = ("use_wandb",)
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, store: OutputStore, backend: str, run_info: RunInfo | None) -> None:
        self.store = store
        self.backend = backend
        self.run_info = run_info
        self.project = os.environ["WANDB_PROJECT"]
        self.space_id = os.environ.get("WANDB_SPACE_ID") or None
        self.wandb_dir = os.environ.get("WANDB_DIR") or None
        self.run_id = os.environ.get("WANDB_RUN_ID") or None

    def plan(self, run: SavedRun) -> TrackerRun:
        """The tracker run of this evaluation: its checkpoint series, or a run of its own."""
        info, series = self.run_info, None
        if info is not None and self.run_id is None:
            digest = hashlib.sha256(f"{self.project}\0{info.run}".encode()).hexdigest()
            series = f"evalstream-{digest[:20]}"
        return TrackerRun(
            backend=self.backend,
            project=self.project,
            name=info.run if info is not None else f"{run.model_name} {run.date_id}",
            step=info.step if info is not None else None,
            series_id=series,
            space_id=self.space_id,
            folder=self.wandb_dir or str(self.store.root),
            config={"model_name": run.model_name},
        )

    def _log_sync(self, plan: TrackerRun, run: SavedRun) -> TrackerLogged:
        results = results_keys(run.results)
        tables, truncated = details_tables(self.store, run.details)
        if self.wandb_dir is None and plan.backend == "wandb":
            self.store.local("wandb").parent.mkdir(parents=True, exist_ok=True)
        logged = log_sync(plan, results, {table_key(t): table for t, table in tables.items()})
        return TrackerLogged(
            backend=plan.backend,
            project=plan.project,
            run=plan.name,
            step=plan.step,
            run_id=logged.run_id,
            where=logged.where,
            results=sorted(results),
            tables={task: len(table.rows) for task, table in tables.items()},
            truncated=truncated,
        )

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        """Log the run in one step, in a worker thread.

        The client's calls cannot be interrupted: a save cancelled meanwhile waits until the
        tracker's run is finished (W&B gives up on an unreachable server after its
        ``init_timeout``, 90 s by default).
        """
        plan = self.plan(run)
        if run.details.error is not None:
            error = f"the details were not written ({run.details.error}); nothing logged"
            return outcome(NAME, self._empty(plan), ok=False, error=error)
        try:
            logged = await anyio.to_thread.run_sync(self._log_sync, plan, run)
        except Exception as exc:  # noqa: BLE001 - the tracker's failure is this output's outcome
            secrets = {os.environ.get(name, "") for name in SECRETS}
            error = redact(f"{plan.backend}: {type(exc).__name__}: {exc}", secrets)
            return outcome(NAME, self._empty(plan), ok=False, error=error)
        return outcome(NAME, logged, paths=[logged.where])

    def _empty(self, plan: TrackerRun) -> TrackerLogged:
        return TrackerLogged(backend=plan.backend, project=plan.project, run=plan.name)


def build(context: OutputContext) -> WandbOutput | None:
    """With ``use_wandb``; refuses a run with no project name or no tracker installed."""
    if not context.options.use_wandb:
        return None
    backend = pick_backend()
    missing = []
    if not os.environ.get("WANDB_PROJECT"):
        missing.append("the project name in the WANDB_PROJECT environment variable")
    if backend is None:
        missing.append(
            "trackio or wandb installed (pip install 'evalstream[trackio]' or "
            "'evalstream[wandb]'; trackio is used when both are)"
        )
    if backend is None or missing:
        raise ConfigError("use_wandb=True needs " + " and ".join(missing))
    return WandbOutput(context.store, backend, context.run_info)
