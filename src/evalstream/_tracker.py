"""EvaluationTracker: the async front door of a run.

``log_sample`` validates in the caller (so a bad value fails where it was made), appends to a
small pending batch and returns; every ``batch_size`` samples the batch is routed to the actors,
and only then can the caller wait (back-pressure). ``flush()`` ships the pending batch and
returns when the actors have fsynced it. ``save()`` closes the inboxes, lets each actor compile,
aggregates, and runs the outputs concurrently.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio
import msgspec

from evalstream._coordinator import Coordinator
from evalstream._details import DetailsActor
from evalstream._errors import (
    ConfigError,
    InputError,
    MetricValueError,
    RunStateError,
    UnknownTaskError,
)
from evalstream._general_config import GeneralConfigActor
from evalstream._local import write_local
from evalstream._messages import (
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    Scope,
    ScoredSample,
    TasksDeclared,
    TaskVersion,
)
from evalstream._metrics import MetricsActor
from evalstream._naming import check_model_name, check_task_name, make_date_id
from evalstream._results import count_nonfinite, encode_results, summary_general
from evalstream._stats import AggregationRegistry, default_registry, derive_rows
from evalstream._storage import OutputStore
from evalstream._summary import OutputOutcome, RunResult
from evalstream._task_config import TaskConfigActor
from evalstream._tensorboard import run_info_from, write_tensorboard
from evalstream._versions import VersionsActor

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType

    from anyio.abc import TaskGroup

    from evalstream._actor import ActorStats
    from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec

State = Literal["new", "running", "saving", "saved", "closed"]
_NUMBER_TYPES = (int, float, bool)
_CHECK = msgspec.msgpack.Encoder()
_VERSION = "0.1.0"


def _check_metrics(task_name: str, metrics: Mapping[str, Any]) -> None:
    for name, value in metrics.items():
        if type(value) in _NUMBER_TYPES:
            continue
        if isinstance(value, tuple | list | str) or hasattr(value, "__float__"):
            continue
        raise MetricValueError(
            f"metric {name!r} of task {task_name!r} is a {type(value).__name__}, not a number "
            "or a tuple for a corpus aggregation; convert it before logging"
        )


class EvaluationTracker:
    """Records one evaluation run; use as ``async with EvaluationTracker(...) as tracker``."""

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        save_details: bool = True,
        push_to_hub: bool = False,
        push_to_tensorboard: bool = False,
        hub_results_org: str | None = "",
        tensorboard_metric_prefix: str = "eval",
        public: bool = False,
        nanotron_run_info: Any = None,
        *,
        bootstrap_iters: int = 1000,
        seed: int = 1234,
        batch_size: int = 256,
        inbox_capacity: int = 64,
        registry: AggregationRegistry | None = None,
        keep_workdir: bool = False,
    ) -> None:
        if batch_size < 1 or inbox_capacity < 1:
            raise ConfigError("batch_size and inbox_capacity must be at least 1")
        if bootstrap_iters < 0:
            raise ConfigError("bootstrap_iters must be >= 0 (0 disables bootstrap stderr)")
        self.store = OutputStore(output_dir)
        self.save_details = save_details
        self.push_to_hub = push_to_hub
        self.push_to_tensorboard = push_to_tensorboard
        self.hub_results_org = hub_results_org or ""
        self.tensorboard_metric_prefix = tensorboard_metric_prefix
        self.public = public
        self.nanotron_run_info = nanotron_run_info
        self.run_info = run_info_from(nanotron_run_info)
        self.bootstrap_iters = bootstrap_iters
        self.seed = seed
        self.batch_size = batch_size
        self.inbox_capacity = inbox_capacity
        self.registry = registry if registry is not None else default_registry()
        self.keep_workdir = keep_workdir
        self.start_time = time.time()
        stamp = datetime.fromtimestamp(self.start_time).astimezone().strftime("%Y%m%dT%H%M%S")
        self.run_id = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self.workdir = self.store.local(f".evalstream/{self.run_id}")
        self._state: State = "new"
        self._tasks: dict[str, TaskSpec] = {}
        self._model: ModelInfo | None = None
        self._pending: list[ScoredSample] = []
        self._logged = 0
        self._coordinator: Coordinator | None = None
        self._tg: TaskGroup | None = None
        self._result: RunResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RunStateError("a tracker runs once; create a new EvaluationTracker per run")
        await anyio.to_thread.run_sync(lambda: self.workdir.mkdir(parents=True, exist_ok=True))
        self._coordinator = Coordinator(
            general=GeneralConfigActor(
                tool_sha=f"evalstream-{_VERSION}", start_time=self.start_time
            ),
            details=DetailsActor(self.workdir, save_details=self.save_details),
            metrics=MetricsActor(self.registry),
            versions=VersionsActor(),
            task_config=TaskConfigActor(),
            capacity=self.inbox_capacity,
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._coordinator.start(self._tg)
        except BaseException as exc:
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._state = "running"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None and self._coordinator is not None
        try:
            if self._state in ("running", "saving"):
                with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                    await self._ship()
                    await self._coordinator.close()
        finally:
            self._state = "closed"
            suppressed = await self._tg.__aexit__(exc_type, exc, tb)
        return suppressed

    # -- logging -----------------------------------------------------------------------------

    def _running(self, *, healthy: bool = True) -> Coordinator:
        if self._state != "running" or self._coordinator is None:
            if self._state == "new":
                raise RunStateError("use the tracker inside 'async with EvaluationTracker(...)'")
            raise RunStateError(
                f"the run is {self._state}; nothing can be logged after save() — "
                "start a new tracker for a new run"
            )
        failure = self._coordinator.details.failure
        if healthy and failure is not None:
            raise failure
        return self._coordinator

    async def _send(self, message: RunMessage) -> None:
        await self._running().route(message)

    async def log_args_info(
        self,
        num_fewshot_seeds: int = 1,
        override_batch_size: int | None = None,
        max_samples: int | None = None,
        job_id: str = "0",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the harness's arguments."""
        await self._send(
            ArgsInfo(
                num_fewshot_seeds=num_fewshot_seeds,
                override_batch_size=override_batch_size,
                max_samples=max_samples,
                job_id=str(job_id),
                config=dict(config) if config is not None else None,
            )
        )

    async def log_model_info(self, model_info: ModelInfo) -> None:
        """Record the evaluated model; its name must be a safe relative path."""
        check_model_name(model_info.model_name)
        self._model = model_info
        await self._send(ModelInfoLogged(info=model_info))

    async def log_tasks(self, tasks: Iterable[TaskSpec]) -> None:
        """Declare tasks before logging their samples; names are validated here."""
        specs = tuple(tasks)
        for spec in specs:
            check_task_name(spec.name)
            for metric, agg in spec.aggregations.items():
                if agg not in self.registry:
                    raise ConfigError(
                        f"task {spec.name!r}: metric {metric!r} names the unknown "
                        f"aggregation {agg!r}; register it on the tracker's registry"
                    )
        for spec in specs:
            self._tasks[spec.name] = spec
        await self._send(TasksDeclared(tasks=specs))

    async def log_version(self, task_name: str, version: int) -> None:
        """Record a task's version (overrides the declared one)."""
        await self._send(TaskVersion(task_name=task_name, version=int(version)))

    async def log_sample(
        self,
        task_name: str,
        doc: Doc,
        outputs: Sequence[ModelResponse],
        metrics: Mapping[str, Any],
        llm_as_prompt_judgement: tuple[str, str] | None = None,
        *,
        scope: Scope = "both",
    ) -> None:
        """Log one scored sample; waits only when a full batch meets a full inbox."""
        self._running()
        self._pending.append(
            self.make_sample(task_name, doc, outputs, metrics, llm_as_prompt_judgement, scope)
        )
        self._logged += 1
        if len(self._pending) >= self.batch_size:
            await self._ship()

    def make_sample(
        self,
        task_name: str,
        doc: Doc,
        outputs: Sequence[ModelResponse],
        metrics: Mapping[str, Any],
        judgement: tuple[str, str] | None = None,
        scope: Scope = "both",
    ) -> ScoredSample:
        """Validate one sample and build its message (no I/O; safe from any thread)."""
        if task_name not in self._tasks:
            raise UnknownTaskError(
                f"task {task_name!r} was not declared; call log_tasks([...]) with it first "
                f"(declared: {sorted(self._tasks)[:5]}{'...' if len(self._tasks) > 5 else ''})"
            )
        _check_metrics(task_name, metrics)
        sample = ScoredSample(
            task_name=task_name,
            doc=doc,
            outputs=tuple(outputs),
            metrics=dict(metrics),
            judgement=judgement,
            scope=scope,
        )
        try:
            _CHECK.encode(sample)
        except (TypeError, OverflowError) as exc:
            raise InputError(
                f"a sample of task {task_name!r} holds a value that cannot be "
                f"stored ({exc}); convert it to str, number, list or dict"
            ) from exc
        return sample

    async def log_samples(self, samples: Sequence[ScoredSample]) -> None:
        """Log samples built by ``make_sample`` (one hop for many, as the sync tracker does)."""
        self._running()
        self._pending.extend(samples)
        self._logged += len(samples)
        if len(self._pending) >= self.batch_size:
            await self._ship()

    def is_declared(self, task_name: str) -> bool:
        """Whether ``task_name`` was declared with ``log_tasks``."""
        return task_name in self._tasks

    async def _ship(self) -> None:
        if self._pending and self._coordinator is not None:
            batch, self._pending = self._pending, []
            await self._coordinator.route(SampleBatch(samples=tuple(batch)))

    async def log_num_docs(
        self, task_name: str, original_num_docs: int, effective_num_docs: int
    ) -> None:
        """Record how many docs a task had and how many were evaluated."""
        await self._send(
            NumDocs(
                task_name=task_name,
                original_num_docs=original_num_docs,
                effective_num_docs=effective_num_docs,
            )
        )

    async def flush(self) -> None:
        """Return once every sample logged before is on disk (fsynced).

        After a storage failure, log_sample raises until a flush() succeeds: flush retries the
        writes that failed, so fixing the disk and flushing resumes the run with nothing lost.
        """
        coordinator = self._running(healthy=False)
        await self._ship()
        await coordinator.flush()
        if coordinator.details.failure is not None:
            raise coordinator.details.failure

    def stats(self) -> tuple[ActorStats, ...]:
        """Snapshots of every actor: inbox depth, waiting producers, buffered rows."""
        return self._coordinator.stats() if self._coordinator else ()

    @property
    def samples_logged(self) -> int:
        """Samples accepted by ``log_sample`` so far."""
        return self._logged

    # -- save --------------------------------------------------------------------------------

    async def save(self) -> RunResult:
        """Compile, aggregate and write every output; returns the run's frozen summary."""
        coordinator = self._running()
        if self._model is None:
            raise ConfigError(
                "no model was logged; call log_model_info(ModelInfo(model_name=...))"
                " before save() — the logged samples are kept"
            )
        self._state = "saving"
        await self._ship()
        await coordinator.route(EndOfRun(end_time=time.time()))
        await coordinator.close()
        final, _sizes, warnings = await self._compile(coordinator)
        date_id = make_date_id()
        nonfinite = count_nonfinite(final)
        results_json = encode_results(final)
        model_name = self._model.model_name
        details = coordinator.details.tasks()
        segments = {name: t.segment for name, t in details.items()} if self.save_details else None
        outputs = await self._run_outputs(final, model_name, date_id, results_json, segments)
        local = outputs[0]
        warnings.extend(local.detail.get("warnings", []))
        if local.ok and not self.keep_workdir:
            await anyio.to_thread.run_sync(shutil.rmtree, self.workdir, True)
        self._state = "saved"
        self._result = RunResult(
            date_id=date_id,
            model_name=model_name,
            results=final,
            results_path=self.store.url(local.detail.get("results", "")) if local.ok else "",
            details_paths={
                t: self.store.url(p) for t, p in local.detail.get("details", {}).items()
            },
            outputs=outputs,
            samples={name: t.counters.samples for name, t in details.items()},
            nonfinite_values=nonfinite,
            warnings=warnings,
            workdir=str(self.workdir),
        )
        return self._result

    async def preview(self) -> dict[str, Any]:
        """The final dict as it would be saved now, without ending the run."""
        coordinator = self._running()
        await self.flush()
        final, _, _ = await self._compile(coordinator)
        return final

    async def _compile(
        self, coordinator: Coordinator
    ) -> tuple[dict[str, Any], dict[str, int], list[str]]:
        metrics = await coordinator.metrics.aggregate(self.bootstrap_iters, self.seed)
        details = coordinator.details.tasks()
        summary_tasks = {name: details[name].compiled() for name in sorted(details)}
        task_rows = {task: m.row for task, m in metrics.items()}
        sizes = {task: m.samples for task, m in metrics.items()}
        results = {**task_rows, **derive_rows(task_rows, sizes)}
        final: dict[str, Any] = {
            "config_general": coordinator.general.config_general(),
            "results": results,
            "versions": coordinator.versions.versions(),
            "config_tasks": coordinator.task_config.configs(),
            "summary_tasks": summary_tasks,
            "summary_general": summary_general(summary_tasks),
        }
        return final, sizes, [w for m in metrics.values() for w in m.warnings]

    async def _run_outputs(
        self,
        final: dict[str, Any],
        model_name: str,
        date_id: str,
        results_json: bytes,
        segments: Mapping[str, Path] | None,
    ) -> list[OutputOutcome]:
        """Local files, TensorBoard and the Hub, concurrently; each outcome is data."""
        outcomes: dict[str, OutputOutcome] = {}

        async def local() -> None:
            outcomes["local"] = await write_local(
                self.store, model_name, date_id, results_json, segments
            )

        async def tensorboard() -> None:
            tb = await write_tensorboard(
                output_dir=self.store.root,
                results=final["results"],
                config_general=final["config_general"],
                summary_tasks=final["summary_tasks"],
                prefix=self.tensorboard_metric_prefix,
                run_info=self.run_info,
            )
            if tb.ok:
                root = self.store.root
                rels = [Path(f).relative_to(root).as_posix() for f in tb.files]
                await anyio.to_thread.run_sync(self.store.upload_sync, rels)
            outcomes["tensorboard"] = OutputOutcome(
                name="tensorboard",
                ok=tb.ok,
                error=tb.error,
                paths=[
                    self.store.url(Path(f).relative_to(self.store.root).as_posix())
                    for f in tb.files
                ],
                detail={"logdir": tb.logdir, "scalars": tb.scalars},
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(local)
            if self.push_to_tensorboard:
                tg.start_soon(tensorboard)
        return [outcomes[name] for name in ("local", "tensorboard", "hub") if name in outcomes]

    @property
    def result(self) -> RunResult | None:
        """The summary of the last ``save()``, if any."""
        return self._result
