"""lighteval's own call shapes: the details logger's two signatures, its tasks and corpus metrics.

What only a lighteval-shaped caller needs (the sync facade): its ``details_logger.log`` call in
either version's shape, a TaskSpec from a lighteval task with its own corpus functions, and the
corpus-metric input objects of 0.13. The objects themselves (Doc, ModelResponse, model configs)
are read by ``evalstream.run.coerce``, on the native path as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import InputError
from evalstream._types import METRIC_CATEGORIES, TaskSpec
from evalstream.run.coerce import plain

if TYPE_CHECKING:
    from evalstream.stats.aggregations import AggregationRegistry

_BUILTIN_AGGREGATIONS = frozenset({"mean", "median", "max", "min", "sum"})
_SEED_DETAILS = ("task_name", "task", "doc", "outputs", "metrics", "llm_as_prompt_judgement")
_V013_DETAILS = ("task_name", "doc", "model_response", "metrics")


def _bind(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind a call to ``names`` as Python would, with an InputError for a bad call."""
    if len(args) > len(names):
        raise InputError(f"details_logger.log() takes at most {len(names)} arguments ({names})")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names or key in bound:
            raise InputError(
                f"details_logger.log() got {'an unexpected' if key not in names else 'a repeated'} "
                f"argument {key!r}; call shapes: log{_SEED_DETAILS} or log{_V013_DETAILS}"
            )
        bound[key] = value
    required = names[:-1] if names is _SEED_DETAILS else names
    missing = [n for n in required if n not in bound]
    if missing:
        raise InputError(f"details_logger.log() is missing {missing}; expected log{names}")
    return bound


def details_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``details_logger.log``'s arguments in either call shape, as the seed-era names.

    lighteval 0.13: ``log(task_name, doc, model_response, metrics)`` (four arguments, one
    response); seed era: ``log(task_name, task, doc, outputs, metrics, llm_as_prompt_judgement)``.
    """
    v013 = "model_response" in kwargs or (
        len(args) + len(kwargs) == len(_V013_DETAILS)
        and not {"task", "outputs", "llm_as_prompt_judgement"} & kwargs.keys()
    )
    if not v013:
        return _bind(_SEED_DETAILS, args, kwargs)
    bound = _bind(_V013_DETAILS, args, kwargs)
    bound["outputs"] = bound.pop("model_response")
    return bound


class CorpusInputs:
    """lighteval's corpus-metric inputs: logged as tuples, rebuilt for lighteval's function.

    0.13's corpus-level metrics log one object per sample (``GenerativeCorpusMetricInput(golds,
    preds)``, ...) that their corpus function reads by attribute. Our metric store and journal keep
    tuples, so such an object is logged as the tuple of its fields and its class is remembered
    here; the registered aggregation rebuilds the objects before calling lighteval's function.
    The classes live in this process only: a recovered run cannot rebuild them.
    """

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str], type] = {}

    def metrics(self, task_name: str, metrics: Mapping[str, Any], scope: str) -> Mapping[str, Any]:
        """``metrics`` with every dataclass value as the tuple of its fields (for the metric
        store) or, for the details, as the dict of its fields (as 0.13 writes them)."""
        if not any(dataclasses.is_dataclass(v) for v in metrics.values()):
            return metrics
        out = dict(metrics)
        for name, value in metrics.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if scope == "details":
                    out[name] = plain(value)
                    continue
                self.kinds[(task_name, name)] = type(value)
                out[name] = tuple(plain(getattr(value, f.name)) for f in dataclasses.fields(value))
        return out

    def rebuild(self, task_name: str, metric: str, values: Any) -> list[Any]:
        """The logged values, as the objects they were logged as."""
        kind = self.kinds.get((task_name, metric))
        if kind is None:
            return list(values)
        return [kind(*v) if isinstance(v, tuple | list) else v for v in values]


def _aggregation_name(
    task_name: str,
    metric: str,
    fn: Any,
    registry: AggregationRegistry,
    inputs: CorpusInputs | None,
    *,
    corpus: bool,
) -> str:
    """Our registered name for a lighteval corpus function; an unknown one is registered.

    ``corpus``: the metric logs per-sample inputs (a lighteval ``CorpusLevelMetric``), not numbers.
    """
    name = getattr(fn, "__name__", None)
    if name in _BUILTIN_AGGREGATIONS and name in registry:
        return str(name)

    def call(values: Any) -> Any:
        return fn(inputs.rebuild(task_name, metric, values) if inputs else list(values))

    label = f"lighteval:{task_name}:{metric}"
    registry.register(label, call, corpus=corpus, replace=True)
    return label


def task_spec_from(
    name: str,
    task: Any,
    registry: AggregationRegistry | None = None,
    inputs: CorpusInputs | None = None,
) -> TaskSpec:
    """A TaskSpec from a TaskSpec, a config mapping, or a lighteval task (any version).

    With a registry, the task's own corpus functions (``task.aggregation()``) become its
    aggregations: numpy's and the builtins' by name, any other callable registered as is.
    """
    if isinstance(task, TaskSpec):
        return task if task.name == name else msgspec.structs.replace(task, name=name)
    if isinstance(task, Mapping):
        return TaskSpec(name=name, config=plain(dict(task)))
    config = getattr(task, "cfg", None) or getattr(task, "config", None) or {}
    categories = []
    corpus_metrics: set[str] = set()
    for metric in getattr(task, "metrics", None) or getattr(config, "metrics", None) or []:
        if "Corpus" in type(metric).__name__:
            names = getattr(metric, "metric_name", "")
            corpus_metrics.update(map(str, names if isinstance(names, list) else [names]))
        category = getattr(metric, "category", None)
        label = str(getattr(category, "name", category)).lower()
        if label in METRIC_CATEGORIES:
            categories.append(label)
    aggregations: dict[str, str] = {}
    aggregation = getattr(task, "aggregation", None)
    if registry is not None and callable(aggregation):
        for metric, fn in dict(aggregation()).items():
            corpus = str(metric) in corpus_metrics
            aggregations[str(metric)] = _aggregation_name(
                name, str(metric), fn, registry, inputs, corpus=corpus
            )
    return TaskSpec(
        name=name,
        version=int(getattr(task, "version", 0) or 0),
        config=plain(config) if config else {},
        aggregations=aggregations,
        categories=sorted(set(categories)),  # type: ignore[arg-type]
    )
