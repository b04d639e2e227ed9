"""Coercion at intake: our types from lighteval's objects (any version), mappings or our own.

lighteval is an optional peer and is never imported: an object is read by the names of the fields
our vocabulary shares with it, so lighteval 0.13's dataclasses, the seed era's, and look-alikes all
work, on the native ``log_sample`` as through the sync facade. A mapping is read strictly (an
unknown key is an ``InputError`` that names it and the accepted ones); an object's other
attributes are ignored. Values are validated against the vocabulary's types here, in the call
that logged them, with the path of a wrong field.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from evalstream._errors import InputError
from evalstream._types import Doc, ModelInfo, ModelResponse

S = TypeVar("S", Doc, ModelResponse, ModelInfo)
_MISSING = object()
_DOC_FIELDS: tuple[str, ...] = Doc.__struct_fields__
_RESPONSE_FIELDS: tuple[str, ...] = ModelResponse.__struct_fields__
_INFO_FIELDS: tuple[str, ...] = ModelInfo.__struct_fields__
_EMPTY_WHEN_NONE = ("instruction", "original_query", "ctx")
"""str fields of our Doc that lighteval 0.13 leaves ``None``."""
_PLAIN_FIELDS = ("specific", "fewshot_samples", "generation_grammar", "input", "logits")


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


_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
"""PIL modes PNG stores as they are; an image of another mode (CMYK, F, ...) is stored as TIFF."""


def _image_bytes(image: Any, index: int) -> bytes:
    """One image as its encoded file: bytes as given, ``datasets``' ``{"bytes": ...}`` mapping,
    or a PIL image (lighteval's ``Doc.images``) encoded losslessly, read by its methods."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, bytearray | memoryview):
        return bytes(image)
    if isinstance(image, Mapping) and isinstance(image.get("bytes"), bytes | bytearray):
        return bytes(image["bytes"])
    mode = getattr(image, "mode", None)
    if callable(getattr(image, "save", None)) and isinstance(mode, str):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if mode in _PNG_MODES else "TIFF")
        return buffer.getvalue()
    raise InputError(
        f"Doc.images[{index}] is a {type(image).__name__}; pass the encoded image file (bytes of "
        "a PNG, JPEG, ...), a {'bytes': ...} mapping or a PIL image"
    )


def _images(images: Any) -> list[bytes] | None:
    if images is None:
        return None
    if isinstance(images, bytes | str) or not isinstance(images, Iterable):
        raise InputError(f"Doc.images is a {type(images).__name__}; pass a list of images")
    return [_image_bytes(image, i) for i, image in enumerate(images)]


def doc_from(doc: Any) -> Doc:
    """Our Doc from a Doc, a lighteval ``Doc`` (any version) or a mapping of its fields."""
    if type(doc) is Doc:
        if doc.images is None or all(type(i) is bytes for i in doc.images):
            return doc
        return msgspec.structs.replace(doc, images=_images(doc.images))
    fields = _fields(doc, _DOC_FIELDS, "Doc")
    if fields.get("images") is not None:
        fields["images"] = _images(fields["images"])
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


def converted(doc: Any, outputs: Any) -> bool:
    """Whether ``doc_from`` and ``outputs_from`` validated every value of these (each came as a
    foreign object or a mapping, so ``msgspec.convert`` checked its types): our own Structs are
    built without type checks, so theirs are proved by the decode check at intake instead."""
    if type(doc) is Doc:
        return False
    if isinstance(outputs, list | tuple):
        return all(type(o) is not ModelResponse for o in outputs)
    return type(outputs) is not ModelResponse


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
