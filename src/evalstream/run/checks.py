"""What ``log_sample`` checks before it acknowledges a sample, in the caller's task.

Everything an actor, the details worker or the parquet writer could later choke on is refused
here, with an error naming the task, the field and what to do: the shapes of ``metrics`` and
the judgement (``doc`` and ``outputs`` are converted by ``_lighteval`` first, or refused); each
metric value's kind (numbers, numpy scalars included, or per-sample tuples/lists/strings for
corpus aggregations) and its consistency with the first value logged for that task and metric;
metric names (not empty, and not the key of a number derived from another metric, such as
``acc_stderr`` beside ``acc``);
nesting depth; and, when encoding fails, the exact value that cannot be stored (a lone
surrogate, an int beyond 64 bits, an unknown type).
A refused sample is not journaled and the run goes on.

The checks cost a few type tests per field: the depth walk only descends into containers, and
the search for a bad value runs only after the encoder has refused the sample.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from evalstream._errors import ConfigError, InvalidSampleError, MetricValueError, RunStateError
from evalstream._messages import ENCODER
from evalstream.stats.rows import STDERR_SUFFIX, WEIGHTED_SUFFIX, is_derived_row

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from evalstream._types import Doc, ModelResponse

Kind = Literal["number", "corpus"]
"""What a metric's values are: numbers (averaged and the like) or per-sample corpus inputs."""

MAX_NESTING = 100
"""Deepest container nesting accepted in a free-form field (``Doc.specific``, results, metrics)."""

_CONTAINERS = (dict, list, tuple, set, frozenset)
_SCALAR_TYPES = frozenset({float, int, bool, str, type(None)})
_SCOPES = frozenset({"both", "details", "metrics"})
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what msgpack stores


def check_shapes(task: str, metrics: object, judgement: object, scope: object) -> None:
    """Raise InvalidSampleError unless the metrics, judgement and scope have the shapes
    ``log_sample`` takes (``doc`` and ``outputs`` are converted, or refused, before)."""
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise InvalidSampleError(
            f"task {task!r}: metrics is a {type(metrics).__name__}; pass a dict "
            "{metric name: value}"
        )
    if judgement is not None and not (
        isinstance(judgement, tuple | list)
        and len(judgement) == 2
        and all(isinstance(j, str) for j in judgement)
    ):
        raise InvalidSampleError(
            f"task {task!r}: the judgement is {type(judgement).__name__}; pass None or a "
            "(judge prompt, judgement) pair of strings"
        )
    if scope not in _SCOPES:
        raise InvalidSampleError(f"scope {scope!r} is not one of {sorted(_SCOPES)}")


def metric_value(task: str, name: object, value: object) -> tuple[object, Kind]:
    """``value`` as it will be stored (numpy scalars become Python numbers), and its kind."""
    name = _named(task, name)
    if type(value) is float or type(value) is bool:
        return value, "number"
    if type(value) is int:
        return _int(task, name, value), "number"
    if isinstance(value, np.generic | np.ndarray) and getattr(value, "ndim", 0) == 0:
        if isinstance(value, np.bool_ | np.integer | np.floating) or (
            isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
        ):
            item = value.item()
            number = _int(task, name, item) if type(item) is int else float(item)
            return number, "number"
    elif isinstance(value, tuple | list | str):
        return value, "corpus"
    elif isinstance(value, Decimal):
        raise MetricValueError(
            f"task {task!r}: metric {name!r} is a decimal.Decimal; metrics are stored as binary "
            "floats: log float(value)"
        )
    elif isinstance(value, numbers.Real):  # Fraction and other registered real numbers
        return float(value), "number"
    raise MetricValueError(
        f"task {task!r}: metric {name!r} is a {type(value).__name__}, not supported: log a "
        "number (bool, int, float, numpy number), or a tuple/list/str for a corpus aggregation "
        "such as corpus_f1 or perplexity"
    )


def _int(task: str, name: str, value: int) -> int | float:
    low, high = _INT_RANGE
    if low <= value <= high:
        return value
    try:
        return float(value)
    except OverflowError:
        raise MetricValueError(
            f"task {task!r}: metric {name!r} = {str(value)[:20]}... overflows a float64; log a "
            "smaller number"
        ) from None


def check_metrics(
    task: str, metrics: Mapping[Any, Any], kinds: Mapping[str, Kind] | None
) -> tuple[dict[str, Any], list[tuple[str, Kind]]]:
    """The metrics as stored, and the kinds they fix for the first time.

    A value whose kind differs from the first value logged for the same task and metric is
    refused: a metric's store holds numbers or corpus inputs, never both.
    """
    stored: dict[str, Any] = {}
    new: list[tuple[str, Kind]] = []
    for name, raw in metrics.items():
        value: object
        kind: Kind
        if (
            type(name) is str
            and name
            and (  # the common cases, without a call
                type(raw) is float or (type(raw) is int and _INT_RANGE[0] <= raw <= _INT_RANGE[1])
            )
        ):
            value, kind = raw, "number"
        else:
            value, kind = metric_value(task, name, raw)
        known = kinds.get(name) if kinds is not None else None
        if known is None:
            new.append((name, kind))
        elif known != kind:
            raise MetricValueError(
                f"task {task!r}: metric {name!r} got {_describe(kind)} ({raw!r:.60}) but its "
                f"first value in this run was {_describe(known)}; log one kind per metric "
                "(or use another metric name)"
            )
        if kind == "corpus" and too_deep(value):
            raise InvalidSampleError(
                f"task {task!r}: metric {name!r} is nested deeper than {MAX_NESTING} levels "
                "(or refers to itself); flatten it"
            )
        stored[name] = value
    return stored, new


_DERIVED_WHAT = {
    STDERR_SUFFIX: "standard error",
    WEIGHTED_SUFFIX: "sample-weighted mean (suite and 'all' rows)",
    WEIGHTED_SUFFIX + STDERR_SUFFIX: "weighted mean's standard error (suite and 'all' rows)",
}


def check_metric_names(
    task: str, new: Iterable[str], kinds: Mapping[str, Mapping[str, Kind]] | None
) -> None:
    """Refuse metric names new to the run that would share a results key with a number derived
    from another metric: ``{m}_stderr`` (every task row, as lighteval writes it),
    ``{m}_weighted`` and ``{m}_weighted_stderr`` (the suite and ``all`` rows).

    Checked against every metric of the run, not only the task's: the ``all`` row joins them
    all. ``acc_norm`` beside ``acc`` is fine; ``acc_stderr`` beside ``acc`` would overwrite
    acc's standard error (or be overwritten by it). Runs only when a sample brings a name the
    run has not seen, so it costs nothing per sample.
    """
    fresh = list(new)
    known = {name for metrics in (kinds or {}).values() for name in metrics}
    names = known | set(fresh)
    for name in fresh:
        for suffix, what in _DERIVED_WHAT.items():
            for base, key in ((name.removesuffix(suffix), name), (name, name + suffix)):
                if base != key and base in names and key in names:
                    raise MetricValueError(
                        f"task {task!r}: metric {name!r} collides with the {what} evalstream "
                        f"derives from metric {base!r}, stored under {key!r}: one would "
                        f"overwrite the other in the results; rename {key!r} (e.g. "
                        f"{key.removesuffix(suffix) + '-' + suffix[1:]!r})"
                    )


def check_task_not_derived(name: str) -> None:
    """Refuse a task named like a row the results derive: ``all``, or a suite's
    ``…:_average|fewshot`` (lighteval's names); the derived row would replace its results."""
    if is_derived_row(name):
        raise ConfigError(
            f"the task name {name!r} is the name of a row evalstream derives from the tasks "
            "(the 'all' row, or a suite's '...:_average' row, as lighteval names them): its "
            "results would be overwritten; rename the task"
        )


def _named(task: str, name: object) -> str:
    if not isinstance(name, str):
        raise MetricValueError(
            f"task {task!r}: metric name {name!r} is a {type(name).__name__}; names are strings"
        )
    if not name:
        raise MetricValueError(f"task {task!r}: a metric name is empty; name every metric")
    return name


def plain_metrics(task: str, metrics: Mapping[Any, Any]) -> dict[str, Any]:
    """Details-only metrics as stored: any storable value, numpy scalars as Python numbers."""
    stored: dict[str, Any] = {}
    for name, raw in metrics.items():
        _named(task, name)
        value = raw.item() if isinstance(raw, np.generic) else raw
        if too_deep(value):
            raise InvalidSampleError(
                f"task {task!r}: metric {name!r} is nested deeper than {MAX_NESTING} levels "
                "(or refers to itself); flatten it"
            )
        stored[name] = value
    return stored


def _describe(kind: Kind) -> str:
    return "a number" if kind == "number" else "a tuple/list/str (corpus input)"


def too_deep(value: object, limit: int = MAX_NESTING) -> bool:
    """True when containers in ``value`` nest deeper than ``limit`` (a cycle counts as deep)."""
    if not isinstance(value, _CONTAINERS):
        return False
    if _flat(value.values() if isinstance(value, dict) else value):
        return False  # as results and most specifics are: no walk
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        for child in current.values() if isinstance(current, dict) else current:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return False


def _flat(children: Iterable[object]) -> bool:
    for child in children:
        if type(child) not in _SCALAR_TYPES and isinstance(child, _CONTAINERS):
            return False
    return True


def check_depth(task: str, doc: Doc, outputs: tuple[ModelResponse, ...]) -> None:
    """Refuse free-form fields nested beyond ``MAX_NESTING`` (they could not be stored)."""
    if doc.specific is not None and too_deep(doc.specific):
        raise InvalidSampleError(
            f"task {task!r}: doc.specific is nested deeper than {MAX_NESTING} levels (or refers "
            "to itself); flatten it or store it as a JSON string"
        )
    for i, out in enumerate(outputs):
        result = out.result
        if type(result) is list:  # the common shapes, inline: a list of scores or texts
            for child in result:
                if type(child) not in _SCALAR_TYPES:
                    break
            else:
                continue
        elif type(result) in _SCALAR_TYPES:
            continue
        if too_deep(result):
            raise InvalidSampleError(
                f"task {task!r}: outputs[{i}].result is nested deeper than {MAX_NESTING} "
                "levels (or refers to itself); flatten it"
            )


def _leaves(value: object, path: str) -> Iterator[tuple[str, object]]:
    """Every key and scalar in ``value`` with its path (depth already bounded)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield f"{path} key {key!r:.40}", key
            yield from _leaves(child, f"{path}[{key!r:.40}]")
    elif isinstance(value, _CONTAINERS):
        for i, child in enumerate(value):
            yield from _leaves(child, f"{path}[{i}]")
    else:
        yield path, value


def _fields(
    doc: Doc, outputs: tuple[ModelResponse, ...], metrics: Mapping[str, Any]
) -> Iterator[tuple[str, object]]:
    for name in doc.__struct_fields__:
        yield from _leaves(getattr(doc, name), f"doc.{name}")
    for i, out in enumerate(outputs):
        for name in out.__struct_fields__:
            yield from _leaves(getattr(out, name), f"outputs[{i}].{name}")
    yield from _leaves(dict(metrics), "metrics")


def unstorable(
    task: str,
    doc: Doc,
    outputs: tuple[ModelResponse, ...],
    metrics: Mapping[str, Any],
    exc: Exception,
) -> InvalidSampleError:
    """The error for a sample the encoder refused, naming the first value that cannot be stored."""
    for path, value in _fields(doc, outputs, metrics):
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError as bad:
                return InvalidSampleError(
                    f"task {task!r}: {path} holds a lone surrogate ({bad.object[bad.start : bad.end]!r} "
                    f"at position {bad.start}), which is not valid Unicode; decode the text with "
                    "errors='replace' or drop the character"
                )
            continue
        try:
            ENCODER.encode(value)
        except (TypeError, OverflowError, ValueError):
            return InvalidSampleError(
                f"task {task!r}: {path} = {_short(value)} cannot be stored; convert it to str, "
                "number, list or dict (ints must fit in 64 bits)"
            )
    return InvalidSampleError(f"task {task!r}: the sample cannot be stored ({exc})")


def _short(value: object) -> str:
    text = repr(value)
    return f"{text[:40]}{'...' if len(text) > 40 else ''} ({type(value).__name__})"


def not_running(state: str) -> RunStateError:
    """The error of a call the tracker cannot take in ``state`` (not entered, saved, ...)."""
    if state == "new":
        return RunStateError("use the tracker inside 'async with EvaluationTracker(...)'")
    fix = "fix the error and call save() again" if state == "unsaved" else "start a new tracker"
    return RunStateError(f"the run is {state}; nothing can be logged after save(): {fix}")
