"""The run-level logging calls of a tracker: arguments, model, tasks, versions, doc counts.

These are lighteval's general-config, task-config and versions loggers' calls, as one mixin of
``EvaluationTracker``: each validates in the caller, then sends one message to its actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstream._errors import ConfigError
from evalstream._messages import ArgsInfo, ModelInfoLogged, NumDocs, TasksDeclared, TaskVersion
from evalstream._naming import check_model_name, check_task_name

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from evalstream._messages import RunMessage
    from evalstream._types import ModelInfo, TaskSpec
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher
    from evalstream.stats.aggregations import AggregationRegistry


def check_options(
    batch_size: int, inbox_capacity: int, flush_every: int, bootstrap_iters: int, interval: float
) -> None:
    """The tracker's numeric options, checked at construction."""
    if batch_size < 1 or inbox_capacity < 1 or flush_every < 1:
        raise ConfigError("batch_size, inbox_capacity and flush_every must be at least 1")
    if bootstrap_iters < 0 or bootstrap_iters == 1:
        raise ConfigError("bootstrap_iters must be 0 (no stderr) or at least 2")
    if interval <= 0:
        raise ConfigError("flush_interval must be positive (seconds)")


class RunConfigCalls:
    """Mixin for EvaluationTracker: needs ``_send``, ``registry``, ``store``, ``publisher``,
    ``_tasks`` and ``_model``."""

    registry: AggregationRegistry
    store: OutputStore
    push_to_hub: bool
    publisher: HubPublisher | None
    _tasks: dict[str, TaskSpec]
    _model: ModelInfo | None

    async def _send(self, message: RunMessage) -> None:
        raise NotImplementedError

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
        """Record the evaluated model; its name must be a safe relative path, and with
        ``push_to_hub`` make a repo id the Hub accepts (refused here, not at the push)."""
        name = check_model_name(model_info.model_name)
        for folder in ("results", "details"):
            self.store.local(f"{folder}/{name}")  # a symbolic link on the way fails now
        if self.push_to_hub and self.publisher is not None:
            self.publisher.check_model_name(name)
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
                        f"task {spec.name!r}: metric {metric!r} names the unknown aggregation "
                        f"{agg!r}; register it on the tracker's registry"
                    )
        self._tasks.update((spec.name, spec) for spec in specs)
        await self._send(TasksDeclared(tasks=specs))

    async def log_version(self, task_name: str, version: int) -> None:
        """Record a task's version (overrides the declared one)."""
        await self._send(TaskVersion(task_name=task_name, version=int(version)))

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
