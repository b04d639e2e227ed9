"""The sample browser: one page of a saved run's details, filtered, without reading the file whole.

A details file is parquet with row groups of up to 8,192 rows. A page is found group by group:
with no filter, the footer's row counts say which group holds the page's first row, and no
other group is read; with a filter, each group's filter columns alone (the metric, the input
and output texts) are read to find the matching rows, until the page and one row past it are
found. Only then are the shown columns read, from the groups that hold the page's rows. Memory
is one row group's filter columns at a time, whatever the file's size; a filter that matches
late in a large file costs a scan of its filter columns, never of its prompts' neighbours.

Both layouts are read: the flat one (``example``, ``full_prompt``, ``predictions``, ``gold``,
``metrics``) and lighteval 0.13's nested one (``doc``, ``model_response``, ``metric``), whose
struct fields are read alone (``doc.query``); a wide task's metrics (``{name, value}`` pairs)
too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalstream._errors import ViewRequestError
from evalstream.runs.loading import metrics_dict

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_SIZE = 200
"""Rows a page may ask for."""


class SampleFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What the browser asks for: a task's page of ``size`` rows, filtered."""

    task: str
    correct: bool | None = None
    """Only rows whose ``metric`` is 1 (True) or 0 (False); None: every row."""
    metric: str | None = None
    """The 0/1 metric ``correct`` reads (None: the task's first metric)."""
    text: str = ""
    """Only rows whose input (query, prompt) or output holds this text, in any case."""
    page: int = 0
    size: int = 20


class SamplePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of rows, as the browser's JSON."""

    task: str
    page: int
    size: int
    rows: list[dict[str, Any]]
    more: bool
    """Whether a row matches past this page."""
    total: int | None
    """Rows in the file when nothing is filtered (from its footer); None under a filter."""
    metrics: list[str]
    groups_read: int
    """Row groups whose columns were read for this page (the rest were skipped)."""


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ViewRequestError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ViewRequestError(f"{name} must be between {low} and {high}, not {value}")
    return value


def parse_filter(params: Mapping[str, str]) -> SampleFilter:
    """The filter of a query string (``task``, ``correct``, ``metric``, ``q``, ``page``,
    ``size``); ViewRequestError says which parameter is wrong and what it takes."""
    task = params.get("task") or ""
    if not task:
        raise ViewRequestError("task is required: the task whose samples to show")
    correct_raw = (params.get("correct") or "").lower()
    if correct_raw not in ("", "1", "0", "true", "false"):
        raise ViewRequestError(
            f"correct must be 1 or 0 (or empty for every row), not {correct_raw!r}"
        )
    correct = None if correct_raw == "" else correct_raw in ("1", "true")
    return SampleFilter(
        task=task,
        correct=correct,
        metric=params.get("metric") or None,
        text=params.get("q") or "",
        page=_whole(params, "page", 0, 0, 10_000_000),
        size=_whole(params, "size", 20, 1, MAX_SIZE),
    )


class _Layout:
    """Where a layout keeps what the browser shows and filters on (dotted: a struct's field)."""

    def __init__(self, names: list[str]) -> None:
        nested = {"doc", "metric", "model_response"} <= set(names)
        self.metrics = "metric" if nested else "metrics"
        self.shown = (
            {
                "input": "doc.query",
                "prompt": "model_response.input",
                "output": "model_response.text",
                "logprobs": "model_response.logprobs",
                "choices": "doc.choices",
                "gold_index": "doc.gold_index",
            }
            if nested
            else {
                "input": "example",
                "prompt": "full_prompt",
                "output": "predictions",
                "choices": "choices",
                "gold": "gold",
                "gold_index": "gold_index",
            }
        )
        self.texts = [self.shown["input"], self.shown["prompt"], self.shown["output"]]
        tops = set(names)
        self.shown = {k: v for k, v in self.shown.items() if v.split(".")[0] in tops}
        self.texts = [c for c in self.texts if c.split(".")[0] in tops]
        if self.metrics in tops:
            self.shown["metrics"] = self.metrics


def _column(table: pa.Table, dotted: str) -> pa.Array:
    """A column, or a struct's field by ``parent.field``, as one array (nulls if absent)."""
    top, _, field = dotted.partition(".")
    array = table.column(top).combine_chunks()
    if field:
        if not pa.types.is_struct(array.type) or array.type.get_field_index(field) < 0:
            return pa.nulls(len(array))
        array = pc.struct_field(array, field)
    return array


def _text_mask(array: pa.Array, text: str) -> np.ndarray:
    rows = np.zeros(len(array), dtype=bool)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        found = pc.fill_null(pc.match_substring(array, text, ignore_case=True), False)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_list(array.type) and pa.types.is_string(array.type.value_type):
        flat = pc.list_flatten(array)
        found = pc.fill_null(pc.match_substring(flat, text, ignore_case=True), False)
        parents = pc.list_parent_indices(array).to_numpy()
        rows[parents[np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)]] = True
    return rows  # numbers (log-likelihoods) hold no text


def _metric_values(array: pa.Array, metric: str) -> np.ndarray:
    """A metric's values per row (NaN where absent), from a struct or ``{name, value}`` pairs."""
    if pa.types.is_struct(array.type):
        values = pc.struct_field(array, metric).cast(pa.float64())
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=float)
    out = np.full(len(array), np.nan)
    for i, row in enumerate(array.to_pylist()):
        value = metrics_dict(row).get(metric)
        if isinstance(value, int | float):
            out[i] = float(value)
    return out


def metric_names(schema: pa.Schema, layout: _Layout, file: pq.ParquetFile) -> list[str]:
    """The metrics of a task: a struct's fields, or the names of a wide task's first group."""
    if layout.metrics not in schema.names:
        return []
    kind = schema.field(layout.metrics).type
    if pa.types.is_struct(kind):
        return [kind.field(i).name for i in range(kind.num_fields)]
    if file.metadata.num_row_groups == 0:
        return []
    first = file.read_row_group(0, columns=[layout.metrics]).column(0).to_pylist()
    return sorted({name for row in first for name in metrics_dict(row)})


def _matches(
    file: pq.ParquetFile, group: int, layout: _Layout, flt: SampleFilter, metric: str | None
) -> np.ndarray:
    """The rows of row group ``group`` the filter keeps, reading its filter columns only."""
    wanted = list(layout.texts) if flt.text else []
    if flt.correct is not None:
        wanted.append(layout.metrics)
    table = file.read_row_group(group, columns=sorted({c.split(".")[0] for c in wanted}))
    keep = np.ones(table.num_rows, dtype=bool)
    if flt.text:
        found = np.zeros(table.num_rows, dtype=bool)
        for name in layout.texts:
            found |= _text_mask(_column(table, name), flt.text)
        keep &= found
    if flt.correct is not None and metric is not None:
        values = _metric_values(_column(table, layout.metrics), metric)
        keep &= values == (1.0 if flt.correct else 0.0)
    return np.flatnonzero(keep)


def _shown_rows(
    file: pq.ParquetFile, group: int, layout: _Layout, picks: np.ndarray, first_row: int
) -> list[dict[str, Any]]:
    """The shown columns of ``picks`` (row indexes in ``group``), as the browser's dicts."""
    tops = sorted({c.split(".")[0] for c in layout.shown.values()})
    table = file.read_row_group(group, columns=tops).take(pa.array(picks, type=pa.int64()))
    columns = {key: _column(table, name).to_pylist() for key, name in layout.shown.items()}
    rows = []
    for i, index in enumerate(picks.tolist()):
        row: dict[str, Any] = {"row": first_row + index}
        for key, values in columns.items():
            row[key] = metrics_dict(values[i]) if key == "metrics" else values[i]
        golds = row.pop("gold_index", None)
        if not row.get("gold") and golds is not None:  # the choices the gold indexes name
            choices = row.get("choices") or []
            golds = [golds] if isinstance(golds, int) else golds
            row["gold"] = [
                choices[g] for g in golds if isinstance(g, int) and 0 <= g < len(choices)
            ]
        rows.append(row)
    return rows


def read_page(file: pq.ParquetFile, flt: SampleFilter) -> SamplePage:
    """Page ``flt.page`` of ``file``'s rows that match ``flt`` (blocking: run it in a thread)."""
    layout = _Layout(file.schema_arrow.names)
    metrics = metric_names(file.schema_arrow, layout, file)
    metric = flt.metric
    if metric is not None and metric not in metrics:
        raise ViewRequestError(
            f"task {flt.task} has no metric {metric!r}; its metrics: {', '.join(metrics) or 'none'}"
        )
    if flt.correct is not None and metric is None:
        if not metrics:
            raise ViewRequestError(f"task {flt.task} has no metric to tell right from wrong")
        metric = metrics[0]
    filtered = bool(flt.text) or flt.correct is not None
    skip, wanted = flt.page * flt.size, flt.size + 1  # one past the page: is there more?
    rows: list[dict[str, Any]] = []
    found = read = first_row = 0
    meta = file.metadata
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        if filtered:
            read += 1
            hits = _matches(file, group, layout, flt, metric)
        elif skip >= count:  # unfiltered: the footer's counts skip whole groups unread
            skip -= count
            first_row += count
            continue
        else:
            hits = np.arange(count)
        if skip >= len(hits):
            skip -= len(hits)
        else:
            hits, skip = hits[skip:], 0
            take = hits[: max(0, flt.size - len(rows))]
            if len(take):
                read += 0 if filtered else 1
                rows += _shown_rows(file, group, layout, take, first_row)
            found += len(hits)
            if found >= wanted:
                break
        first_row += count
    return SamplePage(
        task=flt.task,
        page=flt.page,
        size=flt.size,
        rows=rows,
        more=found > len(rows),
        total=None if filtered else meta.num_rows,
        metrics=metrics,
        groups_read=read,
    )
