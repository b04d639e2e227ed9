"""A task's parquet file written while the run goes (in the details worker).

See ``LiveParquet``; ``sinks.parquet`` holds the conversion it shares with the two passes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from evalstream.details.features import images_array, with_features
from evalstream.details.lighteval_layout import COLUMNS as LIGHTEVAL_COLUMNS
from evalstream.details.lighteval_layout import refine
from evalstream.details.parquet import (
    COMPRESSION,
    FIXED,
    MAX_PARQUET_DEPTH,
    ROW_GROUP_ROWS,
    WHEN_EMPTY,
    empty_type,
    parquet_depth,
    typed_array,
)
from evalstream.details.rows import COLUMNS, FIXED_COLUMNS, TOKEN_COLUMNS, VARIABLE, tokens_array
from evalstream.details.wide import METRIC_COLUMNS, first_batch, is_pairs, pairs_array

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class LiveParquet:
    """A task's parquet file, written row group by row group while the run goes.

    The end of a run converted every segment in two passes (infer and unify the schema, then
    write), which was most of ``save()``. A task whose batches all convert to one schema needs
    neither pass: its first batch fixes the schema, and each batch becomes Arrow arrays as it is
    ingested, from the columns the worker built anyway (no decoding back). A batch that would
    change the schema (a metrics key added, another type inferred, a column Arrow cannot type or
    parquet cannot nest) abandons the file, and the end of the run converts the segment in two
    passes as before, so the live file is only ever a shortcut to the same table. A column empty
    in the first batch takes the type the two passes give a column empty throughout
    (``WHEN_EMPTY``); a later batch that fills it abandons the file too.
    """

    def __init__(self, path: Path, layout: str = "flat") -> None:
        self.path = path
        self.layout = layout
        self.schema: pa.Schema | None = None
        self.group: list[pa.Table] = []
        self.group_rows = 0
        self.rows = 0
        self.abandoned = False
        self.parts: list[Path] = []
        self.last_used = 0
        """When the worker last gave it a batch (its message count): the open part least
        recently used is the one suspended."""
        self._writer: pq.ParquetWriter | None = None

    def add(self, variable: Sequence[list[Any]], fixed: Sequence[Any] = ()) -> None:
        """Convert one batch: the flat layout's ``VARIABLE`` then ``FIXED_COLUMNS`` values
        (tokens packed), or the lighteval layout's three columns (``lighteval_rows``)."""
        if self.abandoned:
            return
        try:
            self._add(variable, fixed)
        except (pa.ArrowException, TypeError, OverflowError, OSError):
            self.abandon()

    def _add(self, variable: Sequence[list[Any]], fixed: Sequence[Any]) -> None:
        flat = self.layout == "flat"
        names = VARIABLE if flat else LIGHTEVAL_COLUMNS
        arrays: dict[str, pa.Array] = {}
        for name, values in zip(names, variable, strict=True):
            array = self._variable(name, values, flat)
            if array is None:
                self.abandon()
                return
            arrays[name] = array
        if self.schema is None:
            self.schema = with_features(
                pa.schema(
                    [
                        pa.field(n, arrays[n].type) if n in arrays else pa.field(n, FIXED[n])
                        for n in (COLUMNS if flat else LIGHTEVAL_COLUMNS)
                    ]
                )
            )
        if flat:
            for name, values in zip(FIXED_COLUMNS, fixed, strict=True):
                arrays[name] = _fixed_array(name, values)
        table = pa.Table.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema)
        self.group.append(table)
        self.group_rows += table.num_rows
        if self.group_rows >= ROW_GROUP_ROWS:
            self.write_group()

    def _variable(self, name: str, values: list[Any], flat: bool) -> pa.Array | None:
        """A column whose type the data gives, as the two passes would type it over this
        file; None if this batch's type is not the file's (or not one parquet can nest)."""
        known = self.schema.field(name).type if self.schema is not None else None
        if name in METRIC_COLUMNS and (known is None or is_pairs(known)):  # details/wide.py
            wide = first_batch(values) if known is None else pairs_array(values, known)
            if wide is not None:
                return wide
        # what Arrow cannot type raises: ``add`` abandons
        array = pa.array(values) if flat or name not in STRUCT_ROWS else struct_array(values)
        if not flat:
            kind = refine(name, array.type)  # declared types where the data says null
        elif empty_type(array.type):
            kind = known or WHEN_EMPTY.get(name, pa.string())
        else:
            kind = array.type
        if known is None and parquet_depth(kind) > MAX_PARQUET_DEPTH:
            return None
        if known is not None and kind != known:
            return None
        if array.type == kind:
            return array
        if not flat:  # the declared types of null fields: a cast, not a second conversion
            with contextlib.suppress(pa.ArrowNotImplementedError, pa.ArrowInvalid):
                return array.cast(kind)
        return typed_array(values, kind)

    @property
    def is_open(self) -> bool:
        """Whether a part file is open (it holds a few MB of writer state)."""
        return self._writer is not None

    def write_group(self) -> None:
        """Write the pending batches as one row group (the memory they hold is freed)."""
        if self.abandoned or not self.group or self.schema is None:
            return
        try:
            if self._writer is None:
                part = self.path.with_suffix(f".{len(self.parts)}.parquet")
                part.parent.mkdir(parents=True, exist_ok=True)
                self.parts.append(part)
                self._writer = pq.ParquetWriter(part, self.schema, compression=COMPRESSION)
            self._writer.write_table(pa.concat_tables(self.group))
        except (pa.ArrowException, OSError):
            self.abandon()
            return
        self.rows += self.group_rows
        self.group, self.group_rows = [], 0

    def suspend(self) -> None:
        """Write what is pending and close the open part, freeing its writer's memory.

        An open parquet writer holds about 4 MB (Arrow buffers and allocator pages): sixty open
        at once held 220 MB. Tasks mostly run one after another, so a suspended task is usually
        done and its one part is its file; one that gets rows again opens another part, and
        ``finish`` joins the parts' row groups.
        """
        self.write_group()
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except (pa.ArrowException, OSError):
                self.abandon()

    def finish(self) -> Path | None:
        """Write what is pending and close; the finished file, or None if it was abandoned."""
        self.suspend()
        if self.abandoned or not self.parts or self.schema is None:
            self.abandon()
            return None
        if len(self.parts) == 1:
            return self.parts[0]
        try:
            with pq.ParquetWriter(self.path, self.schema, compression=COMPRESSION) as joined:
                for part in self.parts:
                    source = pq.ParquetFile(part)
                    for index in range(source.num_row_groups):
                        joined.write_table(source.read_row_group(index))
        except (pa.ArrowException, OSError):
            self.abandon()
            return None
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.parts = []
        return self.path

    def abandon(self) -> None:
        """Give the file up: drop the pending batches, close and delete what was written."""
        self.abandoned = True
        self.group, self.group_rows = [], 0
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(pa.ArrowException, OSError):
                writer.close()
        for part in (*self.parts, self.path):
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
        self.parts = []


STRUCT_ROWS = frozenset({"doc", "model_response"})
"""The lighteval layout's columns of rows that all hold the same keys (``doc_row``,
``response_row``; ``metric`` holds each task's own metric names)."""


def struct_array(rows: list[dict[str, Any]]) -> pa.StructArray:
    """``pa.array(rows)`` for dicts that all hold the first one's keys in its order: the same
    array, built from one array per field (a list per field is cheaper for Arrow to infer than
    dicts: W1's ``doc`` 2.7 -> 1.9, ``model_response`` 4.1 -> 3.6 us a sample)."""
    keys = list(rows[0])
    return pa.StructArray.from_arrays([pa.array([r[k] for r in rows]) for k in keys], names=keys)


def _fixed_array(name: str, values: Any) -> pa.Array:
    """A fixed column converted with its type given, not inferred and cast (a third less).

    Safe here, unlike for a segment read back: these values come from samples msgspec decoded
    against their schema, so a str column holds str and an int column ints; an int beyond int64
    raises, which abandons the live file as the two passes would turn the column to JSON.
    """
    if name in TOKEN_COLUMNS:
        array = tokens_array(values)
        return array if array.type == FIXED[name] else array.cast(FIXED[name])
    if name == "images":
        return images_array(values)
    return pa.array(values, type=FIXED[name])
