"""Tasks with very many metric names: the metrics column as (name, value) pairs, not a struct.

The details' metrics column (``metrics``, or ``metric`` in lighteval's layout) is a struct with
one field per metric name, as lighteval writes it. A task that logs a few metrics per sample
under ever new names (a metric per doc, per class, per slice) makes that struct as wide as all
its names: with 1,000 samples of 100 new names each, every row held 100,000 slots, the file had
100,018 parquet columns, the details worker peaked at 2.5 GB and the save took 30 s, and merely
opening the file cost a reader 0.5 GB.

So past ``WIDE_METRICS`` distinct names in a task's file, the column is a list of
``{name, value}`` structs instead, one per metric the sample logged, in the order it logged
them: its size follows the values, not the names. ``value`` is ``float64`` when every value of
the task is a number (a bool as 0/1) or null, else ``string`` holding each value's JSON. pyarrow,
pandas, polars and Hugging Face ``datasets`` read it as a list of dicts
(``{m["name"]: m["value"] for m in row["metrics"]}`` gives the sample's metrics back). A task
with at most ``WIDE_METRICS`` names keeps lighteval's struct.

The rule is the same on both paths that write a task's file: the live file (the first batch
decides; a batch that would change the column's type abandons the live file, as any schema
change does) and the two passes at the end of the run (all names of the task decide). A task
whose first batch has more names than the bound has more in all, so both agree.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

WIDE_METRICS = 256
"""Distinct metric names a task's file keeps as struct fields; past it, (name, value) pairs."""
METRIC_COLUMNS = frozenset({"metrics", "metric"})
"""The metrics column of the flat layout and of lighteval's."""
_EXACT = 2**53  # ints beyond it lose digits as float64: their JSON text keeps them
_JSON = msgspec.json.Encoder()


def pairs_type(value: pa.DataType) -> pa.DataType:
    """The column's type in the wide form, ``value`` being float64 or string."""
    return pa.list_(pa.struct([("name", pa.string()), ("value", value)]))


def is_pairs(kind: pa.DataType) -> bool:
    """Whether ``kind`` is the wide form's type."""
    if not pa.types.is_list(kind) or not pa.types.is_struct(kind.value_type):
        return False
    return [f.name for f in kind.value_type] == ["name", "value"]


def _is_number(value: object) -> bool:
    if value is None or isinstance(value, float | bool):
        return True
    return isinstance(value, int) and -_EXACT <= value <= _EXACT


def all_numbers(rows: list[Any]) -> bool:
    """Whether every metric value of ``rows`` (dicts, or None) goes into float64 unchanged."""
    return all(_is_number(v) for row in rows if row for v in row.values())


class WideColumn:
    """Pass one's view of a task's metrics column: its names, until there are too many."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.wide = False
        self.numbers = True

    def see(self, rows: list[Any]) -> bool:
        """Note one batch; True once the column is wide (the caller then infers no struct)."""
        if not self.wide:
            self.names.update(name for row in rows if row for name in row)
            if len(self.names) > WIDE_METRICS:
                self.wide, self.names = True, set()
        self.numbers = self.numbers and all_numbers(rows)
        return self.wide

    def kind(self) -> pa.DataType:
        """The column's type in the wide form."""
        return pairs_type(pa.float64() if self.numbers else pa.string())


def first_batch(rows: list[Any]) -> pa.Array | None:
    """A live file's first batch in the wide form if it has more than ``WIDE_METRICS`` names,
    else None (the struct is inferred as for any column)."""
    names: set[str] = set()
    for row in rows:
        if row:
            names.update(row)
            if len(names) > WIDE_METRICS:
                kind = pairs_type(pa.float64() if all_numbers(rows) else pa.string())
                return pairs_array(rows, kind)
    return None


def pairs_array(rows: list[Any], kind: pa.DataType) -> pa.Array:
    """``rows`` (a dict of metric values per sample, or None) as an array of ``kind``.

    Raises ``pa.ArrowInvalid`` for a value float64 cannot hold when ``kind`` says float64 (a
    live file then abandons: the two passes saw every value and chose string).
    """
    text = pa.types.is_string(kind.value_type.field("value").type)
    names: list[str] = []
    values: list[Any] = []
    offsets = [0]
    for row in rows:
        if row:
            names.extend(row)
            values.extend(row.values())
        offsets.append(len(names))
    if text:
        values = [None if v is None else _JSON.encode(v).decode() for v in values]
    elif not all(_is_number(v) for v in values):
        raise pa.ArrowInvalid("a metric value that is not a number, in a float64 column")
    else:
        values = [None if v is None else float(v) for v in values]
    fields = list(kind.value_type)
    items = pa.StructArray.from_arrays(
        [pa.array(names, pa.string()), pa.array(values, fields[1].type)], fields=fields
    )
    mask = pa.array([row is None for row in rows], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, type=kind, mask=mask)
