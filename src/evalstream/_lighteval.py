"""lighteval's own objects, read by their fields: Doc, ModelResponse, tasks and model configs.

lighteval is an optional peer and is never imported: an object is read by the names of the fields
our vocabulary shares with it, so lighteval 0.13's dataclasses, the seed era's, and look-alikes all
work. A mapping is read strictly (an unknown key is an ``InputError`` that names it and the
accepted ones); an object's other attributes are ignored. Values are validated against the
vocabulary's types here, in the call that logged them, with the path of a wrong field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from evalstream._errors import ConfigError, InputError
from evalstream._types import (
    DETAILS_LAYOUTS,
    METRIC_CATEGORIES,
    Doc,
    ModelInfo,
    ModelResponse,
    TaskSpec,
)

if TYPE_CHECKING:
    from evalstream.stats.aggregations import AggregationRegistry

S = TypeVar("S", Doc, ModelResponse, ModelInfo)
_MISSING = object()
_DOC_FIELDS: tuple[str, ...] = Doc.__struct_fields__
_RESPONSE_FIELDS: tuple[str, ...] = ModelResponse.__struct_fields__
_INFO_FIELDS: tuple[str, ...] = ModelInfo.__struct_fields__
_EMPTY_WHEN_NONE = ("instruction", "original_query", "ctx")
"""str fields of our Doc that lighteval 0.13 leaves ``None``."""
_PLAIN_FIELDS = ("specific", "fewshot_samples", "generation_grammar", "input", "logits")
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


def _hook(value: Any) -> Any:
    """lighteval's JSON rules (``EnhancedJSONEncoder``), plus arrays and pydantic models."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if callable(value):
        return getattr(getattr(value, "func", value), "__name__", None) or type(value).__name__
    return str(value)


_PLAIN = msgspec.json.Encoder(enc_hook=_hook)


def plain(value: Any) -> Any:
    """``value`` as plain JSON types (dataclasses as dicts, callables by name, else ``str``)."""
    return msgspec.json.decode(_PLAIN.encode(value))


def _fields(obj: Any, names: tuple[str, ...], kind: str) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        unknown = sorted(set(obj) - set(names))
        if unknown:
            raise InputError(f"{kind} has unknown field(s) {unknown}; accepted: {', '.join(names)}")
        return dict(obj)
    found = {}
    for name in names:
        value = getattr(obj, name, _MISSING)
        if value is not _MISSING:
            found[name] = value
    if not found:
        raise InputError(
            f"a {type(obj).__name__} is not a {kind}: it has none of the fields {', '.join(names)}"
        )
    return found


def _convert(fields: dict[str, Any], cls: type[S], kind: str) -> S:
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError:
        pass
    try:  # numpy / torch values: as plain lists and numbers, then check again
        return msgspec.convert(plain(fields), cls)
    except msgspec.ValidationError as exc:
        raise InputError(f"{kind} has a field of the wrong type: {exc}") from exc


def check_layout(layout: str) -> None:
    """Raise ConfigError unless ``layout`` is a details layout."""
    if layout not in DETAILS_LAYOUTS:
        raise ConfigError(f"details_layout must be 'flat' or 'lighteval', not {layout!r}")


def doc_from(doc: Any) -> Doc:
    """Our Doc from a Doc, a lighteval ``Doc`` (any version) or a mapping of its fields."""
    if type(doc) is Doc:
        return doc
    fields = _fields(doc, _DOC_FIELDS, "Doc")
    for name in _EMPTY_WHEN_NONE:
        if name in fields and fields[name] is None:
            del fields[name]
    if "sampling_methods" in fields:
        fields["sampling_methods"] = [getattr(m, "value", m) for m in fields["sampling_methods"]]
    for name in _PLAIN_FIELDS:
        if fields.get(name) is not None:
            fields[name] = plain(fields[name])
    return _convert(fields, Doc, "Doc")


def response_from(response: Any) -> ModelResponse:
    """Our ModelResponse from one, a lighteval ``ModelResponse`` or a mapping of its fields."""
    if type(response) is ModelResponse:
        return response
    fields = _fields(response, _RESPONSE_FIELDS, "ModelResponse")
    for name in _PLAIN_FIELDS:
        if fields.get(name) is not None:
            fields[name] = plain(fields[name])
    return _convert(fields, ModelResponse, "ModelResponse")


def outputs_from(outputs: Any) -> tuple[ModelResponse, ...]:
    """A sample's responses: a sequence of them (seed-era) or one response (lighteval 0.13)."""
    if isinstance(outputs, list | tuple):
        for o in outputs:  # a plain loop: a generator costs more than the check, per sample
            if type(o) is not ModelResponse:
                return tuple(response_from(o) for o in outputs)
        return tuple(outputs)
    if outputs is None:
        return ()
    return (response_from(outputs),)


def model_info_from(model: Any) -> ModelInfo:
    """A ModelInfo from one, a mapping, a seed-era ``ModelInfo`` or a 0.13 model config.

    A pydantic config (0.13's ``ModelConfig``) or any object with more than ModelInfo's fields
    is also kept whole as ``model_config``, as lighteval 0.13 writes it in ``config_general``.
    """
    if isinstance(model, ModelInfo):
        return model
    if isinstance(model, Mapping):
        data = dict(model)
    elif hasattr(model, "model_dump"):
        data = dict(model.model_dump())
    else:
        data = {n: getattr(model, n) for n in dir(model) if not n.startswith("_")}
        data = {n: v for n, v in data.items() if not callable(v)}
    if not isinstance(data.get("model_name"), str):
        raise InputError(
            f"a {type(model).__name__} is not a model description: it has no str model_name"
        )
    known = {n: data[n] for n in _INFO_FIELDS if n in data}
    if set(data) - set(_INFO_FIELDS):
        known["model_config"] = plain(data)
    for name in ("model_sha", "model_dtype", "model_size"):
        if known.get(name) is not None and not isinstance(known[name], str):
            known[name] = str(known[name])
    return _convert(known, ModelInfo, "model info")


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
