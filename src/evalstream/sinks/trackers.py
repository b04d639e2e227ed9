"""The experiment trackers behind ``use_wandb``: trackio when it is installed, else W&B.

lighteval 0.13 picks the tracker the same way and names both "wandb": the project comes from
``WANDB_PROJECT``, a trackio Space from ``WANDB_SPACE_ID``. The clients are imported here, and
only when a run logs (the ``trackio`` and ``wandb`` extras): a run that does not log to a
tracker never imports them, and constructing a tracker only asks whether one is installed.

``log_sync`` is blocking (trackio writes SQLite, W&B talks to its service process, both may go
over HTTP) and is called in a worker thread. One call opens the tracker's run, logs the
evaluation in one step and finishes the run, so no tracker run outlives the save that made it,
and neither two evalstream runs nor the caller's own tracker run (a training loop's) are
touched by another: trackio is called in an empty context and its ``Run`` object is used, not
its module-level current run; W&B's run is made with ``reinit="create_new"``.

W&B records what is logged and nothing more: no console capture (it would copy whatever the
process prints, tokens included), no machine metadata (command line, environment), no system
metrics, code, git state or requirements. No API key passes through here: W&B reads its own
(``WANDB_API_KEY``, its login), offline mode needs none; trackio uses the Hugging Face login.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

BACKENDS = ("trackio", "wandb")
"""In lighteval's order of preference."""

STEP_KEY = "checkpoint_step"
"""W&B's x-axis for a checkpoint series (its own step must only grow; this one need not)."""

_TRACKIO = threading.Lock()


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (trackio takes a second).

    A module set to None in ``sys.modules`` is one Python refuses to import: not installed.
    """
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def pick_backend() -> str | None:
    """trackio if it is installed, else W&B if it is, else None."""
    return next((name for name in BACKENDS if installed(name)), None)


class Table(NamedTuple):
    """One task's details as the trackers' tables take them: column names, rows of cells."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True, kw_only=True)
class TrackerRun:
    """Where and as what one evaluation is logged."""

    backend: str
    project: str
    name: str
    step: int | None
    """The checkpoint's step; None: the tracker's next step (one evaluation, one step)."""
    series_id: str | None = None
    """W&B's run id of a checkpoint series; None: W&B's own (or ``WANDB_RUN_ID``)."""
    space_id: str | None = None
    """trackio: the Space to log to; None: trackio's local store."""
    folder: str | None = None
    """W&B: the folder its ``wandb/`` run folders go in; None: ``WANDB_DIR``."""
    config: dict[str, Any] = field(default_factory=dict)


class Logged(NamedTuple):
    """The tracker's id of the run, and where it can be seen."""

    run_id: str
    where: str


def log_sync(run: TrackerRun, results: Mapping[str, Any], tables: Mapping[str, Table]) -> Logged:
    """Log ``results`` (lighteval's keys) and ``tables`` in one step of ``run`` (blocking).

    A failure raises the client's own exception; the caller makes it the output's outcome.
    """
    if run.backend == "trackio":
        return _trackio(run, results, tables)
    return _wandb(run, results, tables)


def _trackio(run: TrackerRun, results: Mapping[str, Any], tables: Mapping[str, Table]) -> Logged:
    """In a context of its own: ``trackio.init`` finishes the run current in its context (a
    training loop's, when the caller's context is copied) and replaces ``trackio.config``,
    which is put back; one save of the process at a time."""
    trackio: Any = importlib.import_module("trackio")
    with _TRACKIO:  # two saves at once must not put back each other's config
        config = trackio.config
        try:
            return contextvars.Context().run(_trackio_run, trackio, run, results, tables)
        finally:
            trackio.config = config


def _trackio_run(
    trackio: Any, run: TrackerRun, results: Mapping[str, Any], tables: Mapping[str, Table]
) -> Logged:
    handle = trackio.init(
        project=run.project,
        name=run.name,
        space_id=run.space_id,
        config=run.config,
        resume="allow",  # a checkpoint series is one run, by name
        embed=False,
        auto_log_cpu=False,  # an evaluation's save, not a machine to monitor
        auto_log_gpu=False,
    )
    try:
        payload = dict(results)
        for key, table in tables.items():
            payload[key] = trackio.Table(columns=table.columns, data=table.rows)
        handle.log(payload, step=run.step)
    finally:
        handle.finish()
    where = run.space_id or str(importlib.import_module("trackio.utils").TRACKIO_DIR)
    return Logged(run_id=str(handle.id), where=where)


def _wandb(run: TrackerRun, results: Mapping[str, Any], tables: Mapping[str, Table]) -> Logged:
    wandb: Any = importlib.import_module("wandb")
    settings = wandb.Settings(
        console="off",
        x_disable_meta=True,
        x_disable_stats=True,
        x_save_requirements=False,
        disable_code=True,
        disable_git=True,
    )
    handle = wandb.init(
        project=run.project,
        name=run.name,
        id=run.series_id,
        dir=run.folder,
        config=run.config,
        resume="allow",  # as lighteval: WANDB_RUN_ID, or a series' id, continues that run
        reinit="create_new",
        settings=settings,
    )
    try:
        payload = dict(results)
        if run.step is not None:
            handle.define_metric(STEP_KEY)
            handle.define_metric("*", step_metric=STEP_KEY)
            payload[STEP_KEY] = run.step
        for key, table in tables.items():
            payload[key] = wandb.Table(
                columns=table.columns, data=table.rows, allow_mixed_types=True
            )
        handle.log(payload)
        where = str(Path(handle.dir).parent) if handle.offline else str(handle.url)
    except BaseException:
        handle.finish(exit_code=1)
        raise
    handle.finish()
    return Logged(run_id=str(handle.id), where=where)
