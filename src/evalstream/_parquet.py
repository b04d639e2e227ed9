"""Details segments become parquet files: two streaming passes, one row group per segment frame.

Pass one infers an Arrow type per column and batch and unifies them (a ``metrics`` struct may
gain keys, a column all-null in one batch gets its type from another). Pass two converts each
batch with the unified schema and writes it as a row group, so memory holds one batch, never the
task. A column whose values Arrow cannot type consistently (say, predictions that mix floats and
``(float, bool)`` pairs) is stored as JSON text, and the run summary says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from evalstream._details import ROWS_DECODER, DetailRow
from evalstream._frames import read_frames

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator
    from pathlib import Path

COLUMNS: tuple[str, ...] = DetailRow.__struct_fields__
_JSON = msgspec.json.Encoder()


def _batches(segment: Path) -> Iterator[list[DetailRow]]:
    if segment.exists():
        for payload in read_frames(segment):
            yield ROWS_DECODER.decode(payload)


def _column(rows: list[DetailRow], name: str) -> list[Any]:
    return [getattr(row, name) for row in rows]


def _as_json(values: list[Any]) -> list[str | None]:
    return [None if v is None else _JSON.encode(v).decode() for v in values]


def _infer_schema(segment: Path) -> tuple[pa.Schema, set[str]]:
    types: dict[str, pa.DataType] = {}
    json_columns: set[str] = set()
    for rows in _batches(segment):
        for name in COLUMNS:
            if name in json_columns:
                continue
            try:
                inferred = pa.array(_column(rows, name)).type
                types[name] = (
                    inferred
                    if name not in types
                    else pa.unify_schemas(
                        [pa.schema([(name, types[name])]), pa.schema([(name, inferred)])],
                        promote_options="permissive",
                    )
                    .field(name)
                    .type
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
                json_columns.add(name)
    fields = [
        pa.field(n, pa.string() if n in json_columns else types.get(n, pa.null())) for n in COLUMNS
    ]
    return pa.schema(fields), json_columns


def segment_to_parquet(segment: Path, sink: Path | io.BytesIO) -> tuple[int, list[str]]:
    """Write the rows of ``segment`` as parquet to ``sink``; return (rows, JSON-text columns)."""
    schema, json_columns = _infer_schema(segment)
    rows_written = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for rows in _batches(segment):
            arrays = []
            for field in schema:
                values = _column(rows, field.name)
                if field.name in json_columns:
                    arrays.append(pa.array(_as_json(values), type=pa.string()))
                else:
                    arrays.append(pa.array(values, type=field.type))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows_written += len(rows)
        if rows_written == 0:
            writer.write_table(schema.empty_table())
    return rows_written, sorted(json_columns)
