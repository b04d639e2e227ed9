"""Details files of every sample shape, written by the real tracker, and what each row must read back.

Shared by the readers matrix (``tests/details/test_readers.py``: pyarrow in the main suite,
``datasets``, pandas, polars and DuckDB in ``-m readers``). Each shape is one task of a run; a
run is written once per details layout. The expected rows are built here from the logged
inputs, by the formats' own definitions (README "On-disk layout", lighteval 0.13's ``Doc`` /
``ModelResponse``), not by evalstream's row code, so a file that stores something else fails.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

import _lighteval013 as lv
from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

WIDE = 300
"""Metric keys per sample of the ``wide`` shape."""


@dataclass
class Shape:
    """One task's samples as logged: (doc, outputs, metrics) each, and the task's categories."""

    categories: list[Any]
    samples: list[tuple[Any, Any, dict[str, Any]]] = field(default_factory=list)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A PNG file of one colour, encoded here (no imaging library needed to write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _seed(i: int, result: Any, n: int = 1) -> list[ModelResponse]:
    return [
        ModelResponse(result=result, input_tokens=[1, i, k], generated_tokens=[i + k, 7])
        for k in range(n)
    ]


def shapes() -> dict[str, Shape]:
    """Every shape, 12 samples each (two per value of ``i % 6`` where the data varies)."""
    out = {name: Shape(cats) for name, cats in _CATEGORIES.items()}
    for i in range(12):
        out["plain"].samples.append(
            (Doc(query=f"p{i}?", choices=["A", "B"], gold_index=i % 2, ctx=f"Q: p{i}?"),
             _seed(i, [-0.5 - i], 2), {"acc": float(i % 2)})
        )  # fmt: skip
        specific = {"k": i, "tag": f"t{i % 3}", "nested": {"ids": [i, i + 1], "w": i / 4}}
        out["specific"].samples.append(
            (Doc(query=f"s{i}", choices=[str(i)], specific=specific, ctx=f"say {i}"),
             _seed(i, [str(i)]), {"em": 1.0})
        )  # fmt: skip
        out["generative"].samples.append(
            (Doc(query=f"g{i}", choices=[f"a{i}"], instruction="Answer.", ctx=f"Answer. g{i}",
                 num_asked_few_shots=2, num_effective_few_shots=2),
             _seed(i, [f"a{i}", f"b{i}"], 2), {"em": float(i % 3 == 0), "f1": i / 12})
        )  # fmt: skip
        out["multichoice"].samples.append(
            (Doc(query=f"m{i}", choices=["w", "x", "y", "z"], gold_index=[0, i % 4],
                 ctx=f"pick m{i}"),
             _seed(i, [-1.0 - i / 8], 4), {"acc": float(i % 4 == 0), "acc_norm": 0.5})
        )  # fmt: skip
        out["v013"].samples.append(
            (lv.Doc(query=f"v{i}", choices=[" A", " B", " C"], gold_index=i % 3, id=str(i),
                    task_name="suite|v013|0", specific={"row": i} if i % 2 else None),
             lv.ModelResponse(input=f"v{i}", input_tokens=[i, 2, 3],
                              output_tokens=[[10], [11], [12]],
                              logprobs=[-1.0, -2.0 - i, -0.5], text=["A", "B", "C"],
                              argmax_logits_eq_gold=[False, True, False]),
             {"acc": float(i % 3 == 2)})
        )  # fmt: skip
        out["wide"].samples.append(
            (Doc(query=f"w{i}", choices=["A"], ctx=f"w{i}"),
             _seed(i, ["A"]), {f"m{k:03d}": (i * k % 7) / 7 for k in range(WIDE)})
        )  # fmt: skip
        out["empty"].samples.append(
            (Doc(query=f"e{i}", ctx=f"e{i}"), _seed(i, ["x"]), {})
        )  # fmt: skip
        images = [png(2 + k, 3, (40 * i % 256, k * 90, 200)) for k in range(i % 3)]
        out["images"].samples.append(
            (Doc(query=f"i{i}", choices=["yes", "no"], ctx=f"<image> i{i}",
                 images=images or None),
             _seed(i, [-0.25], 2), {"acc": float(i % 2)})
        )  # fmt: skip
    return out


_CATEGORIES: dict[str, list[Any]] = {
    "plain": ["multichoice"],
    "specific": ["generative"],
    "generative": ["generative_sampling"],
    "multichoice": ["multichoice"],
    "v013": ["multichoice"],
    "wide": ["generative"],
    "empty": ["generative"],
    "images": ["multichoice"],
}
SHAPES = tuple(_CATEGORIES)
LAYOUTS = ("flat", "lighteval")


def task_name(shape: str) -> str:
    """The task a shape is logged as."""
    return f"suite|{shape}|0"


async def write_run(
    output_dir: Path, layout: str, model: str = "org/readers", **options: Any
) -> dict[str, Path]:
    """Log every shape with the real tracker in ``layout`` (and tracker ``options``: a Hub to
    push to); the details file of each shape."""
    async with EvaluationTracker(
        output_dir, details_layout=layout, bootstrap_iters=0, **options
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name=model))
        all_shapes = shapes()
        await tracker.log_tasks(
            [TaskSpec(name=task_name(s), categories=all_shapes[s].categories) for s in SHAPES]
        )
        for shape, spec in all_shapes.items():
            for doc, outputs, metrics in spec.samples:
                await tracker.log_sample(task_name(shape), doc, outputs, metrics)
        result = await tracker.save()
    pushed = result.output("hub")
    assert pushed is None or pushed.ok, pushed
    return {s: Path(result.details_paths[task_name(s)]) for s in SHAPES}


def _is_seed(o: Any) -> bool:
    return isinstance(o, ModelResponse) and not o.is_v013


def _responses(outputs: Any) -> list[Any]:
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def _flat_row(shape: str, doc: Any, outputs: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    responses = _responses(outputs)
    predictions: list[Any] = []
    conts: list[Any] = []
    for o in responses:
        if _is_seed(o):
            predictions.extend(o.result)
            conts.append(o.generated_tokens)
        else:
            predictions.extend(o.text or o.logprobs)
            conts.extend(o.output_tokens)
    gold = [doc.gold_index] if isinstance(doc.gold_index, int) else list(doc.gold_index)
    row = {
        "example": doc.query,
        "full_prompt": getattr(doc, "ctx", ""),
        "instruction": doc.instruction or "",
        "metrics": metrics,
        "specifics": doc.specific,
        "predictions": predictions,
        "input_tokens": [o.input_tokens for o in responses],
        "cont_tokens": conts,
        "images": _stored_images(doc),
    }
    if "multichoice" in _CATEGORIES[shape]:
        row |= {"choices": doc.choices, "gold_index": gold}
    if _CATEGORIES[shape][0].startswith("generative"):
        row |= {"gold": [doc.choices[g] for g in gold if g < len(doc.choices)]}
    return row


def _stored_images(doc: Any) -> list[dict[str, Any]] | None:
    """A doc's images as ``datasets`` stores images: ``{bytes, path}`` (no path: not a file)."""
    return [{"bytes": b, "path": None} for b in doc.images] if doc.images else None


def _lighteval_row(doc: Any, outputs: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    responses = _responses(outputs)
    text: list[Any] = []
    logprobs: list[Any] = []
    tokens: list[Any] = []
    for o in responses:
        if _is_seed(o):
            for r in o.result:
                (text if isinstance(r, str) else logprobs).append(r)
            tokens.append(o.generated_tokens)
        else:
            text.extend(o.text)
            logprobs.extend(o.logprobs)
            tokens.extend(o.output_tokens)
    return {
        "doc": {
            "query": doc.query,
            "choices": doc.choices,
            "gold_index": doc.gold_index,
            "specific": doc.specific,
            "id": doc.id,
            "instruction": doc.instruction or None,
            "images": _stored_images(doc),
        },
        "metric": metrics,
        "model_response": {
            "input_tokens": responses[0].input_tokens,
            "text": text,
            "logprobs": logprobs,
            "output_tokens": tokens,
        },
    }


def expected_rows(shape: str, layout: str) -> list[dict[str, Any]]:
    """What each row of a shape's file must hold, for the columns (and struct fields) named."""
    samples = shapes()[shape].samples
    if layout == "flat":
        return [_flat_row(shape, *s) for s in samples]
    return [_lighteval_row(*s) for s in samples]


def pixels(image: Any) -> list[Any]:
    """An image's size, mode and pixels, whether decoded (PIL, as ``datasets`` gives it) or
    stored (``{bytes, path}``): what comparing a decoded image with the logged file needs."""
    from PIL import Image

    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    return ["image", list(image.size), image.mode, image.tobytes()]


def normalize(value: Any) -> Any:
    """One form for what every reader returns: lists, not arrays or tuples; no ``None`` in dicts.

    A key a row lacks reads back as ``None`` (a struct has every key of its column), and a dict
    without keys as ``None`` (a ``null`` column): both are dropped, so the logged dict compares.
    A wide task's metrics (over 256 names) are ``{name, value}`` pairs: read back as the dict.
    """
    if hasattr(value, "getpixel"):  # a PIL image: datasets decoded an Image feature
        return pixels(value)
    if hasattr(value, "tolist") and not isinstance(value, bytes | str):
        value = value.tolist()  # numpy arrays and scalars (pandas)
    if isinstance(value, dict):
        kept = {k: normalize(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    if isinstance(value, list | tuple):
        items = [normalize(v) for v in value]
        if items and all(isinstance(v, dict) and set(v) == {"name", "value"} for v in items):
            return {v["name"]: v["value"] for v in items}  # a wide task's metrics (details/wide.py)
        return items
    return value


def pick(row: dict[str, Any], like: dict[str, Any], *, decoded: bool = False) -> dict[str, Any]:
    """The parts of ``row`` that ``like`` names (struct fields included), normalized; with
    ``decoded``, stored images as their pixels (to compare with images a reader decoded)."""
    out: dict[str, Any] = {}
    for key, want in like.items():
        got = row.get(key)
        if isinstance(want, dict) and key in ("doc", "model_response"):
            got = pick(got or {}, want, decoded=decoded)
        elif key == "images" and decoded and got:
            got = [pixels(image) for image in got]
        out[key] = normalize(got)
    return out


def datasets_can_type(kind: pa.DataType) -> bool:
    """Whether ``datasets`` has a feature for this Arrow type (3.6 to 5.x: no maps, unions,
    dictionaries as values, or structs without fields)."""
    if pa.types.is_map(kind) or pa.types.is_union(kind) or pa.types.is_dictionary(kind):
        return False
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(datasets_can_type(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return datasets_can_type(kind.value_type)
    return True
