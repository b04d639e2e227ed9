"""Statistics: per-metric storage, aggregation with a standard error, and derived rows.

Everything here is a pure function of the collected values (no I/O, no event loop), so the
metrics actor can run it in a worker thread and tests can call it directly. Aggregation never
raises for bad data: a failure becomes NaN plus a warning for the run summary.

NaN policy: values are aggregated honestly, so NaN (and ±inf) in the inputs propagate into the
value and the stderr as numpy propagates them; the warning counts the non-finite inputs so the
reader knows why. Nothing is silently dropped.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from evalstream._errors import ConfigError, MetricValueError
from evalstream._options import DEFAULTS
from evalstream.stats.aggregations import (
    Aggregation,
    AggregationFn,
    AggregationRegistry,
    FloatArray,
    default_registry,
    numeric_errstate,
)
from evalstream.stats.bootstrap import bootstrap_stderr
from evalstream.stats.rows import (
    ALL_ROW,
    AVERAGE_SUFFIX,
    STDERR_SUFFIX,
    WEIGHTED_SUFFIX,
    is_derived_row,
)

__all__ = [
    "Aggregation",
    "AggregationFn",
    "AggregationRegistry",
    "DerivedRows",
    "MetricAggregate",
    "MetricStore",
    "aggregate_metric",
    "bootstrap_stderr",
    "default_registry",
    "derive_rows",
]

_INITIAL_CAPACITY = 4
"""Floats a store starts with (it doubles as it fills): a task logging one value under each of
100,000 metric names holds 100,000 stores, 34 MB in all with 4 floats each, 80 MB with 64."""


class MetricStore:
    """Per-(task, metric) values: numbers in a float64 array grown by doubling, tuples in a list.

    A store holds one kind: numbers for numeric aggregations, or per-sample tuples/strings for
    corpus aggregations. Mixing them is an input error, reported at the sample that mixes.
    """

    __slots__ = ("_buf", "_n", "_object_bytes", "_objects")

    def __init__(self) -> None:
        self._buf: FloatArray = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self._n = 0
        self._objects: list[object] = []
        self._object_bytes = 0

    def append(self, value: object) -> None:
        """Add one sample's value; anything but a real number, tuple, list or str is refused."""
        self.push(self.admit(value))

    def admit(self, value: object) -> float | object:
        """``value`` as this store would hold it, or MetricValueError; changes nothing."""
        if isinstance(value, numbers.Real | np.bool_):
            self._refuse_if(bool(self._objects), value, "per-sample tuples")
            try:
                return float(value)
            except OverflowError:
                raise MetricValueError(f"metric value {value!r} overflows a float64") from None
        if isinstance(value, tuple | list | str):
            self._refuse_if(self._n > 0, value, "numbers")
            return tuple(value) if isinstance(value, list) else value
        raise MetricValueError(
            f"metric value {value!r} of type {type(value).__name__} is not supported: log a "
            "number (bool, int, float, numpy number), or a tuple/list/str for a corpus "
            "aggregation such as corpus_f1 or perplexity"
        )

    def push(self, item: float | object) -> None:
        """Add a value ``admit`` returned for this store."""
        if type(item) is float:
            self._reserve(1)
            self._buf[self._n] = item
            self._n += 1
        else:
            self._objects.append(item)
            self._object_bytes += _shallow_size(item)

    def extend_numeric(self, values: np.ndarray[Any, Any]) -> None:
        """Add many numeric values at once (a 1-D bool, integer or float array)."""
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise MetricValueError(
                f"extend_numeric needs a 1-D numeric array, got shape {arr.shape} of {arr.dtype}"
            )
        self._refuse_if(bool(self._objects) and arr.size > 0, "array", "per-sample tuples")
        self._reserve(arr.shape[0])
        self._buf[self._n : self._n + arr.shape[0]] = arr
        self._n += arr.shape[0]

    def __len__(self) -> int:
        return self._n + len(self._objects)

    @property
    def numeric(self) -> FloatArray:
        """Read-only view of the numeric values logged so far."""
        view = self._buf[: self._n]
        view.flags.writeable = False
        return view

    @property
    def objects(self) -> list[object]:
        """A copy of the non-numeric values logged so far."""
        return list(self._objects)

    @property
    def nbytes(self) -> int:
        """Memory held: the whole numeric buffer plus the list and a shallow size of each item."""
        return int(self._buf.nbytes) + sys.getsizeof(self._objects) + self._object_bytes

    def _reserve(self, extra: int) -> None:
        needed = self._n + extra
        if needed <= self._buf.shape[0]:
            return
        capacity = max(self._buf.shape[0], 1)
        while capacity < needed:
            capacity *= 2
        grown = np.empty(capacity, dtype=np.float64)
        grown[: self._n] = self._buf[: self._n]
        self._buf = grown

    def _refuse_if(self, mixed: bool, value: object, held: str) -> None:
        if mixed:
            raise MetricValueError(
                f"metric value {value!r} cannot join a metric that already holds {held}; "
                "log one kind of value per metric"
            )


def _shallow_size(item: object) -> int:
    size = sys.getsizeof(item)
    if isinstance(item, tuple):
        size += sum(sys.getsizeof(x) for x in item)
    return size


class MetricAggregate(msgspec.Struct, frozen=True):
    """One metric's aggregated value and stderr for a task row, with any warning for the summary.

    ``value`` is None only when the aggregation returned a mapping, whose keys are in ``extra``.
    ``stderr`` is None when n ≤ 1, the bootstrap is disabled, or it could not be computed.
    """

    value: float | None
    stderr: float | None
    extra: dict[str, float] = {}
    warning: str | None = None


def aggregate_metric(
    store: MetricStore,
    aggregation: str,
    registry: AggregationRegistry,
    *,
    bootstrap_iters: int = DEFAULTS.bootstrap_iters,
    seed: int = DEFAULTS.seed,
    metric_name: str = "",
) -> MetricAggregate:
    """Aggregate one metric's values and attach a standard error.

    Mean-type aggregations (``analytic_stderr``) use std(ddof=1)/√n; others the bootstrap.
    Raises ConfigError only for configuration mistakes (unknown aggregation, bootstrap_iters of
    1 or negative); data problems give NaN and a warning.
    """
    agg = registry.get(aggregation)
    if bootstrap_iters < 0 or bootstrap_iters == 1:
        raise ConfigError(f"bootstrap_iters must be 0 (disabled) or ≥ 2, got {bootstrap_iters}")
    label = f"aggregation {aggregation!r} of metric {metric_name!r}"
    nan = float("nan")
    numeric = store.numeric
    objects = store.objects
    values: FloatArray | list[object] = objects if agg.corpus else numeric
    if len(values) != len(store):
        wanted = "per-sample tuples" if agg.corpus else "numbers"
        return MetricAggregate(nan, None, warning=f"{label} needs {wanted}; value is NaN")
    if len(values) == 0:
        return MetricAggregate(nan, None, warning=f"{label}: no values were logged; value is NaN")

    notes: list[str] = []
    bad = int(numeric.size - np.count_nonzero(np.isfinite(numeric)))
    if bad:
        n_nan = int(np.count_nonzero(np.isnan(numeric)))
        notes.append(
            f"{label}: {bad} of {numeric.size} values are non-finite ({n_nan} NaN, "
            f"{bad - n_nan} ±inf); they propagate into the value and stderr"
        )
    try:
        with numeric_errstate():
            result = _as_result(agg.compute(values))
    except Exception as exc:  # noqa: BLE001 - user code may fail in any way; the run must still save
        notes.append(f"{label} raised {type(exc).__name__}: {exc}; value is NaN")
        return MetricAggregate(nan, None, warning="; ".join(notes))
    if isinstance(result, dict):
        return MetricAggregate(None, None, extra=result, warning="; ".join(notes) or None)
    if not math.isfinite(result) and not bad:
        notes.append(f"{label} returned {result} from finite inputs")

    stderr: float | None = None
    if len(values) == 1 and bootstrap_iters > 0:
        notes.append(f"{label}: one sample, so no standard error; its stderr is null")
    if len(values) > 1 and bootstrap_iters > 0:
        try:
            stderr = _stderr(values, agg, bootstrap_iters, seed)
        except Exception as exc:  # noqa: BLE001 - as above: report it, never crash the save
            notes.append(f"{label}: stderr failed with {type(exc).__name__}: {exc}; stderr is None")
    return MetricAggregate(result, stderr, warning="; ".join(notes) or None)


def _stderr(values: FloatArray | list[object], agg: Aggregation, iters: int, seed: int) -> float:
    if agg.analytic_stderr is not None:
        data = agg.encode(list(values)) if agg.encode is not None else values
        with numeric_errstate():
            return agg.analytic_stderr(np.asarray(data, dtype=np.float64))
    return bootstrap_stderr(values, agg, iters, seed)


def _as_result(raw: object) -> float | dict[str, float]:
    if isinstance(raw, Mapping):
        return {str(k): float(v) for k, v in raw.items()}
    if isinstance(raw, numbers.Real | np.bool_):
        return float(raw)
    if isinstance(raw, np.ndarray) and raw.shape == () and raw.dtype.kind in "biuf":
        return float(raw)
    raise TypeError(f"returned {type(raw).__name__}; expected a number or a mapping of numbers")


# ---- derived rows -------------------------------------------------------------------------


class DerivedRows(msgspec.Struct, frozen=True):
    """The suite ``…:_average|fewshot`` rows and the ``all`` row, in that order."""

    rows: dict[str, dict[str, float | None]]


def _group_name(task: str) -> str | None:
    """lighteval's grouping: benchmark = the part of the task before ':', fewshot kept."""
    parts = task.split("|")
    if len(parts) == 3:
        return f"{parts[0]}|{parts[1].split(':')[0]}{AVERAGE_SUFFIX}|{parts[2]}"
    if len(parts) == 2:
        return f"{parts[0].split(':')[0]}{AVERAGE_SUFFIX}|{parts[1]}"
    return None


def derive_rows(
    task_rows: Mapping[str, Mapping[str, float | None]], task_sizes: Mapping[str, int]
) -> dict[str, dict[str, float | None]]:
    """Suite averages and the ``all`` row over the measured tasks.

    Tasks group as lighteval groups them: same suite, benchmark (task name before ':') and
    fewshot; so the fewshot in an ``_average`` name is that of all its tasks, and tasks run with
    different fewshot values form separate groups. Each metric's value is the unweighted mean over
    the tasks that have it; ``{m}_stderr`` = √(Σ seᵢ²)/k, the standard error of that mean for
    independent tasks (None if any task lacks it); ``{m}_weighted`` is the mean weighted by
    ``task_sizes`` (samples per task, i.e. a pooled per-sample mean; None if a size is missing)
    with ``{m}_weighted_stderr`` = √(Σ wᵢ²seᵢ²)/Σwᵢ. Derived rows given as input are ignored.
    """
    tasks = {t: r for t, r in task_rows.items() if not is_derived_row(t)}
    groups: dict[str, list[str]] = {}
    for task in tasks:
        name = _group_name(task)
        if name is not None:
            groups.setdefault(name, []).append(task)
    out = {
        name: _combine(members, tasks, task_sizes)
        for name, members in groups.items()
        if len(members) > 1
    }
    out[ALL_ROW] = _combine(list(tasks), tasks, task_sizes)
    return out


def _is_stderr_key(key: str, row: Mapping[str, float | None]) -> bool:
    return key.endswith(STDERR_SUFFIX) and key.removesuffix(STDERR_SUFFIX) in row


def _combine(
    members: list[str],
    rows: Mapping[str, Mapping[str, float | None]],
    sizes: Mapping[str, int],
) -> dict[str, float | None]:
    metrics: dict[str, None] = {}
    for task in members:
        metrics.update((k, None) for k in rows[task] if not _is_stderr_key(k, rows[task]))
    out: dict[str, float | None] = {}
    for metric in metrics:
        se_key = metric + STDERR_SUFFIX
        weighted = metric + WEIGHTED_SUFFIX
        has_se = any(se_key in rows[t] for t in members)
        found = [(t, v) for t in members if (v := rows[t].get(metric)) is not None]
        values = [float(v) for _, v in found]
        ses = [rows[t].get(se_key) for t, _ in found]
        weights = [sizes.get(t) for t, _ in found]
        k = len(found)
        out[metric] = sum(values) / k if k else None
        if has_se:
            out[se_key] = _combined_se([1.0] * k, ses)
        if k and all(w is not None for w in weights) and sum(w or 0 for w in weights) > 0:
            w = [float(x or 0) for x in weights]
            out[weighted] = sum(a * b for a, b in zip(w, values, strict=True)) / sum(w)
            if has_se:
                out[weighted + STDERR_SUFFIX] = _combined_se(w, ses)
        else:
            out[weighted] = None
            if has_se:
                out[weighted + STDERR_SUFFIX] = None
    return out


def _combined_se(weights: list[float], ses: list[float | None]) -> float | None:
    """Stderr of Σwᵢxᵢ/Σwᵢ for independent xᵢ; None when any seᵢ or all the values are missing."""
    if not ses or any(s is None for s in ses):
        return None
    variance = sum((w * float(s or 0.0)) ** 2 for w, s in zip(weights, ses, strict=True))
    return math.sqrt(variance) / sum(weights)
