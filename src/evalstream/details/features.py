"""Images in the details files, stored so Hugging Face ``datasets`` reads them back as images.

``datasets`` keeps an image as a struct ``{bytes: binary, path: string}`` and knows the column is
an image (not a struct) only from the parquet schema's ``huggingface`` metadata, the JSON of its
``Features``. ``with_features`` writes that metadata for the columns that hold images, and only
for them: a column the metadata leaves out is typed from its Arrow type, as in any parquet file.
For a column the metadata names, ``datasets`` uses the feature only if its Arrow type is exactly
the column's, so a struct column holding images (lighteval's ``doc``) is described whole, field by
field, in the JSON every ``datasets`` from 3.x to 5.x parses (a list is ``[feature]``).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
"""One image, as ``datasets`` stores its ``Image`` feature (evalstream leaves ``path`` null)."""
IMAGES = pa.list_(IMAGE)
"""A doc's images (lighteval 0.13's ``Doc.images``)."""

_VALUES: dict[pa.DataType, str] = {
    pa.null(): "null", pa.bool_(): "bool", pa.int8(): "int8", pa.int16(): "int16",
    pa.int32(): "int32", pa.int64(): "int64", pa.uint8(): "uint8", pa.uint16(): "uint16",
    pa.uint32(): "uint32", pa.uint64(): "uint64", pa.float16(): "float16",
    pa.float32(): "float32", pa.float64(): "float64", pa.string(): "string",
    pa.large_string(): "large_string", pa.binary(): "binary", pa.large_binary(): "large_binary",
    pa.date32(): "date32", pa.date64(): "date64",
}  # fmt: skip
"""Arrow types as ``datasets``' ``Value`` dtypes."""


def images_array(values: list[Any]) -> pa.Array:
    """The ``IMAGES`` array of per-row image lists (encoded bytes each, or None)."""
    lists = pa.array(values, type=pa.list_(pa.binary()))
    data = lists.values
    images = pa.StructArray.from_arrays(
        [data, pa.nulls(len(data), pa.string())], fields=[IMAGE.field(0), IMAGE.field(1)]
    )
    return pa.ListArray.from_arrays(lists.offsets, images, type=IMAGES, mask=lists.is_null())


def has_images(kind: pa.DataType) -> bool:
    """Whether ``IMAGE`` is in this type, at any depth."""
    if kind == IMAGE:
        return True
    if pa.types.is_struct(kind):
        return any(has_images(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return has_images(kind.value_type)
    return False


class _Unmapped(Exception):
    """An Arrow type this module has no ``datasets`` feature for."""


def _feature(kind: pa.DataType) -> Any:
    if kind == IMAGE:
        return {"_type": "Image"}
    if pa.types.is_struct(kind) and kind.num_fields:
        return {f.name: _feature(f.type) for f in kind}
    if pa.types.is_list(kind):
        return [_feature(kind.value_type)]
    if pa.types.is_timestamp(kind):
        zone = f", tz={kind.tz}" if kind.tz else ""
        return {"dtype": f"timestamp[{kind.unit}{zone}]", "_type": "Value"}
    if kind in _VALUES:
        return {"dtype": _VALUES[kind], "_type": "Value"}
    raise _Unmapped(str(kind))


def with_features(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the ``huggingface`` metadata that makes ``datasets`` decode its images.

    A column holding images whose other types have no feature here (none that samples can hold)
    is left out: its images then read back as ``{bytes, path}`` dicts, and the file still loads.
    """
    features = {}
    for field in schema:
        if has_images(field.type):
            try:
                features[field.name] = _feature(field.type)
            except _Unmapped:
                continue
    metadata = dict(schema.metadata or {})
    metadata.pop(b"huggingface", None)
    if features:
        metadata[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    return schema.with_metadata(metadata)
