"""What a run has declared: its tasks, the metric kinds seen, its model; and the checks on them.

lighteval's general-config, task-config and versions loggers' calls arrive here from the
tracker: each is validated in the caller (a bad name fails in the call that gave it, not at
``save()``) and becomes one message for the journal and the actors. The tracker sends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstream._errors import ConfigError
from evalstream._messages import (
    ArgsInfo,
    ModelInfoLogged,
    NumDocs,
    SampleBatch,
    TasksDeclared,
    TaskVersion,
)
from evalstream._naming import (
    check_model_name,
    check_path_limits,
    check_task_name,
    results_path,
)
from evalstream.run.checks import check_task_not_derived
from evalstream.run.intake import Prepared, learn_kinds, prepare_batch, prepare_sample

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from evalstream._messages import RunMessage, Scope
    from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec
    from evalstream.durability.storage import OutputStore
    from evalstream.run.checks import Kind
    from evalstream.run.intake import Item
    from evalstream.sinks.hub import HubPublisher
    from evalstream.stats.aggregations import AggregationRegistry


class RunConfig:
    """The declared tasks, the first kind of each (task, metric), and the model of one run."""

    def __init__(
        self,
        registry: AggregationRegistry,
        store: OutputStore,
        publisher: HubPublisher | None,
        results_template: str = "",
    ) -> None:
        """``publisher``: set when the run is pushed, so a model name the Hub refuses fails
        at ``log_model_info``, not at the push."""
        self.registry = registry
        self.results_template = results_template
        self.store = store
        self.publisher = publisher
        self.tasks: dict[str, TaskSpec] = {}
        self.kinds: dict[str, dict[str, Kind]] = {}
        self.model: ModelInfo | None = None

    def args_info(
        self,
        num_fewshot_seeds: int,
        override_batch_size: int | None,
        max_samples: int | None,
        job_id: str,
        config: Mapping[str, Any] | None,
    ) -> ArgsInfo:
        """The harness's arguments as a message."""
        return ArgsInfo(
            num_fewshot_seeds=num_fewshot_seeds,
            override_batch_size=override_batch_size,
            max_samples=max_samples,
            job_id=str(job_id),
            config=dict(config) if config is not None else None,
        )

    def model_info(self, model_info: ModelInfo) -> ModelInfoLogged:
        """Check the model's name (a safe relative path; with a push, a repo id the Hub
        accepts), remember the model, and return its message."""
        name = check_model_name(model_info.model_name)
        results = results_path(name, "x", self.results_template).rsplit("/", 1)[0]
        self._check_paths(name, self.tasks, "model")
        for folder in (results, f"details/{name}"):
            self.store.local(folder)  # a symbolic link on the way (or a bad template) fails now
        if self.publisher is not None:
            self.publisher.check_model_name(name)
        self.model = model_info
        return ModelInfoLogged(info=model_info)

    def declare(self, tasks: Iterable[TaskSpec]) -> TasksDeclared:
        """Check and remember tasks; an aggregation must be in the registry already."""
        specs = tuple(tasks)
        for spec in specs:
            check_task_name(spec.name)
            check_task_not_derived(spec.name)
            for metric, agg in spec.aggregations.items():
                if agg not in self.registry:
                    raise ConfigError(
                        f"task {spec.name!r}: metric {metric!r} names the unknown aggregation "
                        f"{agg!r}; register it on the tracker's registry"
                    )
        model = self.model.model_name if self.model is not None else None
        self._check_paths(model, [spec.name for spec in specs], "task")
        self.tasks.update((spec.name, spec) for spec in specs)
        return TasksDeclared(tasks=specs)

    def _check_paths(self, model: str | None, tasks: Iterable[str], blame: str) -> None:
        """Every file a save would write for ``model`` and ``tasks`` fits the file system of
        ``output_dir`` (NAME_MAX, PATH_MAX): refused here, not after the whole evaluation."""
        name_max, path_max = self.store.path_limits()
        root = str(self.store.root)
        check_path_limits(
            root,
            model,
            tasks,
            template=self.results_template,
            name_max=name_max,
            path_max=path_max,
            blame=blame,
        )

    def version(self, task_name: str, version: int) -> TaskVersion:
        """A task's version (overrides the declared one)."""
        return TaskVersion(task_name=task_name, version=int(version))

    def num_docs(self, task_name: str, original: int, effective: int) -> NumDocs:
        """How many docs a task had and how many were evaluated."""
        return NumDocs(
            task_name=task_name, original_num_docs=original, effective_num_docs=effective
        )

    def sample(
        self,
        task_name: str,
        doc: Doc,
        outputs: Sequence[ModelResponse] | ModelResponse,
        metrics: Mapping[str, Any],
        judgement: tuple[str, str] | None,
        scope: Scope,
    ) -> Prepared:
        """Validate and encode one sample of a declared task (no I/O; any thread)."""
        return prepare_sample(
            self.tasks, task_name, doc, outputs, metrics, judgement, scope, self.kinds
        )

    def samples(self, task_name: str, items: Sequence[Item], scope: Scope) -> list[Prepared]:
        """Validate and encode a batch of one declared task's samples, all or none."""
        return prepare_batch(self.tasks, task_name, items, scope, self.kinds)

    def learn(self, message: RunMessage) -> None:
        """What a replayed message (recovery, resume, merge) declares, as if logged here."""
        match message:
            case TasksDeclared(tasks=tasks):
                self.tasks.update((t.name, t) for t in tasks)
            case ModelInfoLogged(info=info):
                self.model = info
            case SampleBatch(samples=samples):
                learn_kinds(self.kinds, samples)
            case _:
                pass

    def require_model(self) -> ModelInfo:
        """The logged model; save() cannot name its files without one."""
        if self.model is None:
            raise ConfigError(
                "no model was logged; call log_model_info(ModelInfo(model_name=...))"
                " before save() — the logged samples are kept"
            )
        return self.model
