"""SyncEvaluationTracker: the async pipeline behind lighteval's synchronous attribute API.

The tracker runs on an event loop in a background thread (an anyio blocking portal). Samples are
validated in the caller's thread and shipped to the loop in batches, one portal hop per batch,
so a synchronous harness pays microseconds per sample, not a thread round trip. The attributes
lighteval users read (``details``, ``metric_aggregated``, ``versions``, ...) are snapshots,
copied when read, never live containers.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import msgspec
from anyio.from_thread import BlockingPortal, start_blocking_portal

from evalstream._errors import InputError, RunStateError
from evalstream._options import DEFAULTS
from evalstream._types import Doc, TaskSpec
from evalstream.details.lighteval_layout import load_details
from evalstream.details.rows import read_rows
from evalstream.lighteval.adapters import CorpusInputs, details_call, task_spec_from
from evalstream.run import forks
from evalstream.run.coerce import model_info_from, plain
from evalstream.run.tracker import EvaluationTracker

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from concurrent.futures import Future
    from contextlib import AbstractContextManager
    from types import TracebackType

    from evalstream._summary import RunResult
    from evalstream.run.intake import Prepared

T = TypeVar("T")
_EMPTY_DOC = Doc(query="")


class _Logger:
    def __init__(self, owner: SyncEvaluationTracker) -> None:
        self._owner = owner


class GeneralConfigLogger(_Logger):
    """lighteval's ``general_config_logger``."""

    def log_args_info(
        self,
        num_fewshot_seeds: int = 1,
        override_batch_size: int | None = None,
        max_samples: int | None = None,
        job_id: str = "0",
        config: Any = None,
    ) -> None:
        """Record the harness's arguments."""
        self._owner._call(
            self._owner.tracker.log_args_info,
            num_fewshot_seeds,
            override_batch_size,
            max_samples,
            str(job_id),
            plain(config) if config is not None else None,
        )

    def log_model_info(
        self,
        model_info: Any = None,
        model_config: Any = None,
        generation_parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the model: ``model_info`` (seed era) or ``model_config=`` (lighteval 0.13).

        Either may be a ModelInfo, a mapping with ``model_name``, lighteval's ``ModelInfo`` or a
        0.13 model config (kept whole as ``config_general["model_config"]``).
        """
        given = model_config if model_config is not None else model_info
        if given is None:
            raise InputError("log_model_info needs model_info or model_config=")
        info = model_info_from(given)
        if generation_parameters is not None:
            config = dict(info.model_config or {})
            config["generation_parameters"] = plain(dict(generation_parameters))
            info = msgspec.structs.replace(info, model_config=config)
        self._owner._call(self._owner.tracker.log_model_info, info)

    def log_end_time(self) -> None:
        """Kept for compatibility: the end time is taken when ``save()`` starts."""
        self._owner.end_time = time.time()

    def __getattr__(self, name: str) -> Any:
        general = self._owner._snapshot()["config_general"]
        if name in general:
            return general[name]
        raise AttributeError(name)


class DetailsLogger(_Logger):
    """lighteval's ``details_logger``; rows stream to disk, ``details`` reads them back."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        """Log one sample's details (not its metrics: see ``metrics_logger.log``).

        Both of lighteval's call shapes: 0.13's ``log(task_name, doc, model_response, metrics)``
        and the seed era's ``log(task_name, task, doc, outputs, metrics,
        llm_as_prompt_judgement=None)``; doc and responses may be lighteval's own objects.
        """
        call = details_call(args, kwargs)
        self._owner._log(
            call["task_name"],
            call.get("task"),
            call["doc"],
            call["outputs"],
            call["metrics"],
            call.get("llm_as_prompt_judgement"),
            "details",
        )

    def aggregate(self) -> None:
        """Kept for compatibility: hashes and counters are compiled at save."""

    @property
    def details(self) -> dict[str, list[dict[str, Any]]]:
        """Every logged row per task, read back from disk (costly for big runs)."""
        owner = self._owner
        saved = owner.tracker.result
        if saved is not None:  # after save(): the saved files (lighteval's get_details reads this)
            import pyarrow.parquet as pq

            return {t: pq.read_table(p).to_pylist() for t, p in saved.details_paths.items()}
        owner.flush()
        tasks: dict[str, Any] = owner._call(owner.tracker.control.details_segments)
        return {name: read_rows(seg) for name, seg in tasks.items()}

    @property
    def compiled_details(self) -> dict[str, dict[str, Any]]:
        """Per-task hashes and counters (``summary_tasks``)."""
        return dict(self._owner._snapshot()["summary_tasks"])

    @property
    def compiled_details_over_all_tasks(self) -> dict[str, Any]:
        """Hashes and counters over all tasks (``summary_general``)."""
        return dict(self._owner._snapshot()["summary_general"])


class MetricsLogger(_Logger):
    """lighteval's ``metrics_logger``."""

    def log(self, task_name: str, metrics: Mapping[str, Any]) -> None:
        """Log one sample's metric values."""
        self._owner._log(task_name, None, _EMPTY_DOC, (), metrics, None, "metrics")

    def aggregate(
        self,
        task_dict: Mapping[str, Any] | None = None,
        bootstrap_iters: int = DEFAULTS.bootstrap_iters,
    ) -> None:
        """Set the bootstrap iterations used at save (aggregation itself runs at save)."""
        self._owner.tracker.control.set_bootstrap_iters(bootstrap_iters)
        if task_dict:
            self._owner.task_config_logger.log(task_dict)

    @property
    def metric_aggregated(self) -> dict[str, dict[str, float | None]]:
        """Aggregated results rows, computed now (or as saved)."""
        return dict(self._owner._snapshot()["results"])

    @property
    def metrics_values(self) -> dict[str, dict[str, list[object]]]:
        """Every per-sample value per task and metric (costly for big runs)."""
        self._owner.flush()
        values: dict[str, dict[str, list[object]]] = self._owner._call(
            self._owner.tracker.control.metric_values
        )
        return values


class VersionsLogger(_Logger):
    """lighteval's ``versions_logger``."""

    def log(self, task_name: str, task_version: int) -> None:
        """Record a task's version."""
        self._owner._call(self._owner.tracker.log_version, task_name, task_version)

    @property
    def versions(self) -> dict[str, int]:
        """Versions by task."""
        return dict(self._owner._snapshot()["versions"])


class TaskConfigLogger(_Logger):
    """lighteval's ``task_config_logger``."""

    def log(self, task_dict: Mapping[str, Any]) -> None:
        """Declare tasks from ``{name: TaskSpec | lighteval task | config mapping}``."""
        registry = self._owner.tracker.registry
        inputs = self._owner._inputs
        specs = [task_spec_from(name, task, registry, inputs) for name, task in task_dict.items()]
        self._owner._call(self._owner.tracker.log_tasks, specs)

    @property
    def tasks_configs(self) -> dict[str, dict[str, Any]]:
        """Task configs by task."""
        return dict(self._owner._snapshot()["config_tasks"])


class SyncEvaluationTracker:
    """The tracker for synchronous code, with lighteval's logger attributes as a drop-in.

    Its details are in lighteval 0.13's layout unless ``details_layout="flat"`` is given: a
    lighteval user who changes only the import gets files lighteval's own loader re-scores
    (``--load-responses-from-details-date-id``), as its own tracker's were.
    """

    def __init__(self, output_dir: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("details_layout", "lighteval")
        self.tracker = EvaluationTracker(output_dir, *args, **kwargs)
        self.general_config_logger = GeneralConfigLogger(self)
        self.details_logger = DetailsLogger(self)
        self.metrics_logger = MetricsLogger(self)
        self.versions_logger = VersionsLogger(self)
        self.task_config_logger = TaskConfigLogger(self)
        self.end_time: float | None = None
        self._inputs = CorpusInputs()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._host: Future[None] | None = None
        self._stop: anyio.Event | None = None
        self._pending: list[Prepared] = []
        # the loop starts once, whichever thread calls first; tasks are declared once
        self._lock = threading.RLock()
        self._pending_lock = threading.Lock()  # the pending batch: appended to, taken whole
        self._pid: int | None = None  # the process the loop started in (run/forks.py)

    # -- the background loop -------------------------------------------------------------------

    def _start(self) -> BlockingPortal:
        """The running portal, started by the first call of any thread (exactly once: the
        others wait for it under the lock, then all use the same loop). In a forked child
        (whose copy of the loop has no thread to run it) a RunStateError, before any lock."""
        forks.check(self._pid)
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._portal is None:
                if self.tracker.result is not None:
                    raise RunStateError("the run was saved; create a new tracker for a new run")
                portal_cm = start_blocking_portal()
                portal = portal_cm.__enter__()
                try:
                    self._host, _ = portal.start_task(self._serve)
                except BaseException:
                    portal_cm.__exit__(None, None, None)
                    raise
                self._portal_cm, self._portal = portal_cm, portal
                self._pid = os.getpid()
            return self._portal

    async def _serve(self, *, task_status: Any) -> None:
        self._stop = anyio.Event()
        async with self.tracker:
            task_status.started()
            await self._stop.wait()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._start().call(fn, *args)

    def close(self) -> None:
        """Stop the background loop (samples not saved stay in the run's working folder).

        In a forked child it does nothing: the loop and the run are the parent's."""
        if forks.foreign(self._pid):
            return
        with self._lock:
            portal, portal_cm = self._portal, self._portal_cm
            if portal is None or portal_cm is None:
                return
            try:
                self._ship()
            finally:
                stop = self._stop
                if stop is not None:
                    portal.call(stop.set)
                if self._host is not None:
                    self._host.result()
                portal_cm.__exit__(None, None, None)
                self._portal = self._portal_cm = self._host = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- logging ---------------------------------------------------------------------------------

    def _log(
        self,
        task_name: str,
        task: Any,
        doc: Any,
        outputs: Any,
        metrics: Mapping[str, Any],
        judgement: tuple[str, str] | None,
        scope: Any,
    ) -> None:
        self._start()
        if not self.tracker.is_declared(task_name):
            with self._lock:  # once, however many threads log the task's first samples
                if not self.tracker.is_declared(task_name):
                    if task is None:
                        task = TaskSpec(name=task_name)
                    spec = task_spec_from(task_name, task, self.tracker.registry, self._inputs)
                    self._call(self.tracker.log_tasks, [spec])
        with self._pending_lock:  # validation fixes metric kinds: one sample at a time
            metrics = self._inputs.metrics(task_name, metrics, scope)
            self._pending.append(
                self.tracker.make_sample(task_name, doc, outputs, metrics, judgement, scope)
            )
            full = len(self._pending) >= self.tracker.options.batch_size
        if full:
            self._ship()

    def _ship(self) -> None:
        """Send the pending batch (taken whole under the lock, sent outside it: threads
        ship their batches concurrently, each waiting only on back-pressure)."""
        forks.check(self._pid)
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if batch:
            self._call(self.tracker.log_prepared, batch)

    def log_num_docs(self, task_name: str, original_num_docs: int, effective_num_docs: int) -> None:
        """Record how many docs a task had and how many were evaluated."""
        self._call(self.tracker.log_num_docs, task_name, original_num_docs, effective_num_docs)

    def flush(self) -> None:
        """Return once everything logged so far is on disk."""
        self._ship()
        self._call(self.tracker.flush)

    def _snapshot(self) -> dict[str, Any]:
        if self.tracker.result is not None:
            return self.tracker.result.results
        self._ship()
        return self._call(self.tracker.preview)  # type: ignore[no-any-return]

    def generate_final_dict(self) -> dict[str, Any]:
        """The results dict (as saved, or as it would be saved now)."""
        return self._snapshot()

    def save(self) -> RunResult:
        """Write every output and stop the background loop; returns the run summary."""
        self._ship()
        result: RunResult = self._call(self.tracker.save)
        self.close()
        return result

    def load_details_datasets(self, date_id: str, task_names: Sequence[str]) -> dict[str, Any]:
        """The saved details of run ``date_id`` (``first``, ``last`` or a date id) by task.

        As lighteval 0.13's (its ``--load-responses-from-details-date-id`` calls this): rows of
        files saved with ``details_layout="lighteval"``, so ``ModelResponse(**row[
        "model_response"])`` rebuilds each response. A task name matches with or without its
        few-shot part. ``datasets.Dataset`` objects when ``datasets`` is installed, else lists
        of row dicts. The model is the one given to ``log_model_info``.
        """
        model = self.tracker.control.model
        if model is None:
            raise RunStateError("call general_config_logger.log_model_info(...) first")
        tables = load_details(self.tracker.store.root, model.model_name, date_id, task_names)
        try:
            datasets = importlib.import_module("datasets")
        except ImportError:
            return {task: table.to_pylist() for task, table in tables.items()}
        return {task: datasets.Dataset(table) for task, table in tables.items()}

    @property
    def result(self) -> RunResult | None:
        """The summary of the last ``save()``, if any."""
        return self.tracker.result
