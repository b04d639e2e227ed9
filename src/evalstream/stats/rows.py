"""A results row: one task's metric with its stderr and 95 % normal-approximation interval.

lighteval's ``results`` section is ``{task: {metric: value, "{metric}_stderr": stderr}}``; the
CLI tables, the HTML report, its plots, ``evalstream ls`` and the TensorBoard sink all read it
as rows. They read it here, so they agree on which keys are metrics (every key not ending in
``_stderr``; a ``_stderr`` key without its metric is a stderr of nothing and no row), on what
counts as a number, and on when there is an interval (finite value and finite stderr only: a
NaN or infinite bound is no interval, and without a stderr there is none either).
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALL_ROW",
    "AVERAGE_SUFFIX",
    "DERIVED_SUFFIXES",
    "STDERR_SUFFIX",
    "WEIGHTED_SUFFIX",
    "Z95",
    "MetricRow",
    "is_derived_row",
    "metric_rows",
]

Z95 = 1.959963984540054
"""The 97.5 % point of the standard normal: value ± Z95 x stderr is the 95 % interval."""

STDERR_SUFFIX = "_stderr"
"""lighteval stores a metric's standard error under ``{metric}_stderr`` in the same task row."""

WEIGHTED_SUFFIX = "_weighted"
"""The suite and ``all`` rows also hold ``{metric}_weighted``, the mean weighted by samples."""

DERIVED_SUFFIXES = (STDERR_SUFFIX, WEIGHTED_SUFFIX, WEIGHTED_SUFFIX + STDERR_SUFFIX)
"""What a results row appends to a metric's name for the numbers derived from it: a metric
called ``{m}{suffix}`` beside ``m`` would share a key with one of them (refused when logged)."""

ALL_ROW = "all"
"""The row of every task's mean (lighteval's name); suite means are ``…:_average|fewshot``."""

AVERAGE_SUFFIX = ":_average"
"""A suite row's benchmark part ends so: ``suite|mmlu:_average|5``."""


def is_derived_row(name: str) -> bool:
    """True for the ``all`` row and the suite ``…:_average`` rows: means of task rows, not tasks
    (a task may not be called so)."""
    return name == ALL_ROW or any(part.endswith(AVERAGE_SUFFIX) for part in name.split("|"))


class MetricRow(msgspec.Struct, frozen=True):
    """One metric of one task; ``value``/``stderr`` are None when absent or not a number."""

    task: str
    metric: str
    value: float | None
    stderr: float | None
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float:
        """Z95 x stderr, 0 without an interval (an error bar of nothing is drawn as none)."""
        return Z95 * self.stderr if self.stderr is not None and self.low is not None else 0.0


def _number(raw: object) -> float | None:
    """A real number as read (an int stays an int, so tables print it as one), else None.

    ``bool`` is an int to Python but no measurement; numpy scalars (in-memory results) count.
    """
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        return None
    return raw if isinstance(raw, int | float) else float(raw)


def metric_rows(results: Mapping[str, Mapping[str, object]]) -> list[MetricRow]:
    """Every task's metrics as rows, in the order of ``results`` and of each task's keys."""
    rows = []
    for task, row in results.items():
        for metric, raw in row.items():
            if metric.endswith(STDERR_SUFFIX):
                continue
            value = _number(raw)
            stderr = _number(row.get(metric + STDERR_SUFFIX))
            low = high = None
            if (
                value is not None
                and stderr is not None
                and math.isfinite(value)
                and math.isfinite(stderr)
            ):
                low, high = value - Z95 * stderr, value + Z95 * stderr
            rows.append(MetricRow(task, metric, value, stderr, low, high))
    return rows
