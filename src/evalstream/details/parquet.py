"""Details segments become parquet files: two streaming passes, one row group per segment frame.

Columns of a fixed shape (tokens, prompts, counts) have a fixed Arrow type, so every run's files
share a schema. For the rest, pass one infers an Arrow type per column and batch and unifies them (a ``metrics`` struct may
gain keys, a column all-null in one batch gets its type from another). Pass two converts each
batch with the unified schema and writes it as a row group, so memory holds one batch, never the
task. A column whose values Arrow cannot type consistently (say, predictions that mix floats and
``(float, bool)`` pairs), whose schema nests deeper than parquet readers accept, or that parquet
cannot store at all (empty dicts everywhere: a struct without fields) is stored as JSON text, and
the run summary says so.

Most tasks need neither pass: their batches all have one schema, and the details worker writes
their file while the run goes (``sinks.live_parquet``), so ``save()`` only closes and moves it.
The two passes remain for the tasks whose schema changes, and for replays.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from evalstream._naming import details_path
from evalstream.details.features import IMAGES, images_array, with_features
from evalstream.details.lighteval_layout import COLUMNS as LIGHTEVAL_COLUMNS
from evalstream.details.lighteval_layout import is_lighteval, refine
from evalstream.details.rows import (
    COLUMNS,
    TOKEN_COLUMNS,
    VARIABLE,
    decode_columns,
    decode_fixed,
    decode_variable,
    tokens_array,
    unpack_tokens,
)
from evalstream.details.wide import METRIC_COLUMNS, WideColumn, is_pairs, pairs_array
from evalstream.durability.frames import read_frames
from evalstream.durability.storage import atomic_path, translate_oserror

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from evalstream.durability.storage import OutputStore

_TOKENS = pa.list_(pa.list_(pa.int64()))
FIXED: dict[str, pa.DataType] = {
    "choices": pa.list_(pa.string()),
    "cont_tokens": _TOKENS,
    "example": pa.string(),
    "full_prompt": pa.string(),
    "gold": pa.list_(pa.string()),
    "gold_index": pa.list_(pa.int64()),
    "images": IMAGES,
    "input_tokens": _TOKENS,
    "instruction": pa.string(),
    "judge_prompt": pa.string(),
    "judgement": pa.string(),
    "num_asked_few_shots": pa.int64(),
    "num_effective_few_shots": pa.int64(),
    "padded": pa.list_(pa.int64()),
    "truncated": pa.list_(pa.int64()),
}
"""Columns whose type never depends on the data: the same schema in every run and file."""
_JSON = msgspec.json.Encoder()
WHEN_EMPTY: dict[str, pa.DataType] = {
    "metrics": pa.null(),
    "pred_logits": pa.list_(pa.float64()),
    "predictions": pa.list_(pa.string()),
    "specifics": pa.null(),
}
"""Types of variable columns that hold no values in a file (pyarrow would infer ``null``).

A list column gets its element type. A dict column (``specifics``, ``metrics``) stays ``null``:
its real type is a struct of the keys it holds, and with no keys there is no struct parquet can
store; ``map<string, ...>`` was tried and Hugging Face ``datasets`` (3.x to 5.x) refuses to load
any file holding a map. A ``null`` column is what ``datasets`` itself writes for ``None`` (and
lighteval 0.13 for a doc without ``specific``), every reader loads it, and it casts to any struct
when files of several runs are read as one dataset."""


def empty_type(kind: pa.DataType) -> bool:
    """``null``, ``list<null>`` or a struct without fields: the column held only nulls, empty
    lists or empty dicts, so there was nothing to infer its type from."""
    return bool(
        pa.types.is_null(kind)
        or (pa.types.is_list(kind) and pa.types.is_null(kind.value_type))
        or kind == pa.struct([])
    )


def typed_array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``kind``; a ``null`` column takes ``None`` and ``{}`` only
    (pyarrow refuses an empty dict as a null value)."""
    if pa.types.is_null(kind):
        if any(values):
            raise pa.ArrowInvalid("a null column holds a value")
        return pa.nulls(len(values))
    return pa.array(values, type=kind)


def _variable_type(name: str, inferred: pa.DataType | None) -> pa.DataType:
    """The inferred type, or the column's real type where nothing was there to infer from."""
    if inferred is None or empty_type(inferred):
        return WHEN_EMPTY.get(name, pa.string())
    return inferred


def _frames(segment: Path) -> Iterator[bytes]:
    if segment.exists():
        yield from read_frames(segment)


def _as_json(values: list[Any]) -> list[str | None]:
    return [None if v is None else _JSON.encode(v).decode() for v in values]


MAX_PARQUET_DEPTH = 64
"""Deepest column schema stored as such: readers refuse schemas nested about 100 levels deep
(a list counts two), so a deeper column is stored as JSON text and every file opens."""


def parquet_depth(kind: pa.DataType) -> float:
    """Levels of the parquet schema of an Arrow type (a list is two: the list and its item);
    infinite for what parquet cannot store at all (a struct without fields, from ``{}``)."""
    if pa.types.is_struct(kind):
        if kind.num_fields == 0:
            return math.inf
        return 1 + max(parquet_depth(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return 2 + max(parquet_depth(kind.key_type), parquet_depth(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return 2 + parquet_depth(kind.value_type)
    return 1


CACHED_ROWS = 1 << 18
"""Rows of a segment whose variable columns the schema pass keeps as Arrow arrays for the write
pass (which then neither decodes nor converts them again where the unified type is the one
inferred): a bounded few MB, against about a fifth of the conversion's time."""

Cache = dict[int, dict[str, pa.Array]]
"""A flat segment's variable columns by frame number, as the schema pass inferred them."""


def _infer_schema(
    segment: Path, layout: str = "flat", cache: Cache | None = None
) -> tuple[pa.Schema, set[str]]:
    types: dict[str, pa.DataType] = {}
    json_columns: set[str] = set()
    cached_rows = 0
    metrics = WideColumn()  # past WIDE_METRICS names: (name, value) pairs, no struct inferred
    for index, payload in enumerate(_frames(segment)):
        keep: dict[str, pa.Array] | None = None
        if cache is not None and cached_rows < CACHED_ROWS and not is_lighteval(payload):
            keep = cache[index] = {}
        for name, values in decode_variable(payload).items():
            if (name in METRIC_COLUMNS and metrics.see(values)) or name in json_columns:
                continue
            try:
                array = pa.array(values)
                inferred = array.type
                if keep is not None:
                    keep[name] = array
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
        if keep:
            cached_rows += len(next(iter(keep.values())))
    json_columns.update(
        n  # an all-empty column gets its type below; a nested empty dict cannot be stored
        for n, t in types.items()
        if not empty_type(t) and parquet_depth(t) > MAX_PARQUET_DEPTH
    )
    if metrics.wide:  # whatever the struct's inference met before it got too wide
        json_columns -= METRIC_COLUMNS
        types.update((name, metrics.kind()) for name in METRIC_COLUMNS)
    if layout == "lighteval":
        fields = [
            pa.field(n, pa.string() if n in json_columns else refine(n, types.get(n)))
            for n in LIGHTEVAL_COLUMNS
        ]
        return with_features(pa.schema(fields)), json_columns
    fields = [
        pa.field(n, FIXED[n])
        if n in FIXED
        else pa.field(n, pa.string() if n in json_columns else _variable_type(n, types.get(n)))
        for n in COLUMNS
    ]
    return with_features(pa.schema(fields)), json_columns


COMPRESSION = "zstd"
"""The details files' codec: W1's files are 16 MB with zstd, 27 MB with snappy (lighteval's
pandas/datasets default, 26 MB); lighteval's loaders read both."""
ROW_GROUP_ROWS = 8192
"""Rows per parquet row group: segment batches are small, row groups should not be. Each group
is held, then encoded by the writer, in memory: on W1 16384 rows cost the details worker ~12 MB
more peak RSS than 8192 (files ~6 % larger)."""


class ColumnError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _column_array(name: str, values: Any, kind: pa.DataType, as_json: bool) -> pa.Array:
    """One column of a batch as an Arrow array of ``kind`` (token columns arrive packed)."""
    try:
        if name in TOKEN_COLUMNS and not as_json:
            array = tokens_array(values)
            return array if array.type == kind else array.cast(kind)
        if name == "images" and not as_json:
            return images_array(values)
        if name in METRIC_COLUMNS and not as_json and is_pairs(kind):
            return pairs_array(values, kind)
        if as_json:
            if name in TOKEN_COLUMNS:
                values = unpack_tokens(values)
            return pa.array(_as_json(values), type=pa.string())
        if name in FIXED:
            # infer, then a safe cast: converting with the type given would silently
            # truncate a float among int64 token ids
            array = pa.array(values)
            return array if array.type == kind else array.cast(kind)
        return typed_array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise ColumnError(name) from exc


def _batch_table(
    columns: Mapping[str, Any],
    schema: pa.Schema,
    json_columns: set[str],
    reuse: Mapping[str, pa.Array],
) -> pa.Table:
    arrays = [
        reuse[f.name]
        if f.name in reuse
        else _column_array(f.name, columns[f.name], f.type, f.name in json_columns)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _write(
    segment: Path,
    sink: Path | io.BytesIO,
    schema: pa.Schema,
    json_columns: set[str],
    cache: Cache | None = None,
) -> int:
    rows_written = 0
    group: list[pa.Table] = []
    group_rows = 0
    with pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer:
        for index, payload in enumerate(_frames(segment)):
            kept = cache.get(index, {}) if cache is not None else {}
            reuse = {
                f.name: kept[f.name]
                for f in schema
                if f.name in kept and f.name not in json_columns and kept[f.name].type == f.type
            }
            columns = (
                decode_fixed(payload) if len(reuse) == len(VARIABLE) else decode_columns(payload)
            )
            group.append(_batch_table(columns, schema, json_columns, reuse))
            group_rows += group[-1].num_rows
            if group_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(group))
                rows_written += group_rows
                group, group_rows = [], 0
        if group:
            writer.write_table(pa.concat_tables(group))
            rows_written += group_rows
        if rows_written == 0:
            writer.write_table(schema.empty_table())
    return rows_written


def segment_to_parquet(
    segment: Path, sink: Path | io.BytesIO, layout: str = "flat"
) -> tuple[int, list[str]]:
    """Write the rows of ``segment`` as parquet to ``sink``; return (rows, JSON-text columns).

    ``layout`` is the details layout the segment was encoded in (``flat`` or ``lighteval``).

    A value that does not fit its column's type (a float among token ids, say) turns that
    column into JSON text for the file, and the conversion starts again.
    """
    cache: Cache = {}
    schema, json_columns = _infer_schema(segment, layout, cache)
    while True:
        try:
            return _write(segment, sink, schema, json_columns, cache), sorted(json_columns)
        except ColumnError as exc:
            if exc.name in json_columns:
                raise
            json_columns.add(exc.name)
            field = schema.get_field_index(exc.name)
            schema = with_features(schema.set(field, pa.field(exc.name, pa.string())))
            if isinstance(sink, io.BytesIO):
                sink.seek(0)
                sink.truncate()


def write_details_sync(
    store: OutputStore,
    model_name: str,
    date_id: str,
    segments: Mapping[str, Path],
    layout: str = "flat",
    live: Mapping[str, Path] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Write one parquet file per task; return their relative paths and any warnings.

    A task in ``live`` already has its finished file (``sinks.live_parquet``): it is moved into place.
    """
    paths: dict[str, str] = {}
    warnings: list[str] = []
    for task in sorted(segments):
        rel = details_path(model_name, date_id, task)
        target = store.local(rel)
        finished = live.get(task) if live is not None else None
        try:
            with atomic_path(target) as tmp:
                if finished is not None:
                    _move(finished, tmp)
                    json_columns: list[str] = []
                else:
                    _, json_columns = segment_to_parquet(segments[task], tmp, layout)
        except OSError as exc:
            raise translate_oserror(exc, str(target)) from exc
        if json_columns:
            warnings.append(
                f"{task}: columns {json_columns} stored as JSON text (mixed types, or nested "
                f"deeper than {MAX_PARQUET_DEPTH} parquet levels)"
            )
        paths[task] = rel
    return paths, warnings


def _move(source: Path, target: Path) -> None:
    """Move a finished file over ``target``: a rename, or a copy across file systems."""
    try:
        os.replace(source, target)
    except OSError:
        shutil.copyfile(source, target)
        source.unlink(missing_ok=True)
