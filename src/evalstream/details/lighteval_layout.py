"""lighteval 0.13's details layout: one row per sample, struct columns doc / metric / model_response.

0.13 writes ``Dataset.from_list([asdict(Detail(doc, model_response, metric))])`` and its pipeline
re-reads only ``model_response`` (``ModelResponse(**row["model_response"])``), so that struct's
fields are exactly 0.13's ``ModelResponse`` fields in its order, and ``doc``'s are its ``Doc``'s.
Arrow types follow the data, as 0.13's (``datasets`` infers them), except that a field that is
``None`` or empty in every row gets its declared type instead of ``null``, so the files of
different runs share a schema. Seed-era responses (several per doc, ``result`` and
``generated_tokens``) are folded into one 0.13 response: texts, logprobs and token lists in order.

A segment frame of this layout is ``MAGIC`` (an impossible length prefix for the flat layout)
then one msgpack array ``[docs, metrics, responses]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from evalstream._errors import DetailsNotFoundError, InputError
from evalstream._naming import details_glob, details_task, model_details_dir
from evalstream.details.features import IMAGES

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from evalstream._messages import ScoredSample
    from evalstream._types import Doc, ModelResponse

MAGIC = b"\xff\xff\xff\xff"
COLUMNS: tuple[str, ...] = ("doc", "metric", "model_response")
_S, _I, _B, _F = pa.string(), pa.int64(), pa.bool_(), pa.float64()
DOC_TYPES: dict[str, pa.DataType | None] = {
    "query": _S, "choices": pa.list_(_S), "gold_index": None, "instruction": _S, "images": IMAGES,
    "specific": None, "unconditioned_query": _S, "original_query": _S, "id": _S,
    "task_name": _S, "fewshot_samples": None, "sampling_methods": pa.list_(_S),
    "fewshot_sorting_class": _S, "generation_size": _I, "stop_sequences": pa.list_(_S),
    "use_logits": _B, "num_samples": _I, "generation_grammar": None,
}  # fmt: skip
"""0.13's Doc fields in order; ``None``: typed by the data only (0.13 leaves them ``null``)."""
RESPONSE_TYPES: dict[str, pa.DataType] = {
    "input": _S, "input_tokens": pa.list_(_I), "text": pa.list_(_S),
    "output_tokens": pa.list_(pa.list_(_I)), "text_post_processed": pa.list_(_S),
    "reasonings": pa.list_(_S), "logprobs": pa.list_(_F), "argmax_logits_eq_gold": pa.list_(_B),
    "logits": pa.list_(pa.list_(_F)), "unconditioned_logprobs": pa.list_(_F),
    "truncated_tokens_count": _I, "padded_tokens_count": _I,
}  # fmt: skip
"""0.13's ModelResponse fields in order, with their declared types."""
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def doc_row(doc: Doc) -> dict[str, Any]:
    """``asdict`` of the 0.13 Doc this doc is; an image as ``datasets`` stores one."""
    return {
        "query": doc.query,
        "choices": doc.choices,
        "gold_index": doc.gold_index,
        "instruction": doc.instruction or None,
        "images": [{"bytes": b, "path": None} for b in doc.images] if doc.images else None,
        "specific": doc.specific,
        "unconditioned_query": doc.unconditioned_query,
        "original_query": doc.original_query or None,
        "id": doc.id,
        "task_name": doc.task_name,
        "fewshot_samples": doc.fewshot_samples,
        "sampling_methods": doc.sampling_methods,
        "fewshot_sorting_class": doc.fewshot_sorting_class,
        "generation_size": doc.generation_size,
        "stop_sequences": doc.stop_sequences,
        "use_logits": doc.use_logits,
        "num_samples": doc.num_samples,
        "generation_grammar": doc.generation_grammar,
    }


def _fold_result(result: Any, text: list[Any], logprobs: list[float], argmax: list[bool]) -> None:
    """A seed-era ``result``: a text, a logprob, a ``(logprob, is_greedy)`` pair, or a list."""
    if isinstance(result, str):
        text.append(result)
    elif isinstance(result, bool):
        argmax.append(result)
    elif isinstance(result, int | float):
        logprobs.append(float(result))
    elif (
        isinstance(result, list | tuple)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and isinstance(result[1], bool)
    ):
        logprobs.append(float(result[0]))
        argmax.append(result[1])
    elif isinstance(result, list | tuple):
        for item in result:
            _fold_result(item, text, logprobs, argmax)


def response_row(doc: Doc, outputs: Sequence[ModelResponse]) -> dict[str, Any]:
    """The one 0.13 ``ModelResponse`` of a sample, as a dict of its fields in 0.13's order."""
    if len(outputs) == 1 and outputs[0].is_v013:
        o = outputs[0]
        return {
            "input": o.input,
            "input_tokens": o.input_tokens,
            "text": o.text,
            "output_tokens": o.output_tokens,
            "text_post_processed": o.text_post_processed,
            "reasonings": o.reasonings,
            "logprobs": o.logprobs,
            "argmax_logits_eq_gold": o.argmax_logits_eq_gold,
            "logits": o.logits,
            "unconditioned_logprobs": o.unconditioned_logprobs,
            "truncated_tokens_count": o.truncated_tokens_count,
            "padded_tokens_count": o.padded_tokens_count,
        }
    text: list[Any] = []
    logprobs: list[float] = []
    argmax: list[bool] = []
    tokens: list[Any] = []
    reasonings: list[str | None] = []
    logits: list[Any] = []
    first: ModelResponse | None = None
    for o in outputs:  # inline, no method call per response: W1's four, 7.1 -> 3.4 us
        result = o.result
        if result is None and not o.generated_tokens:  # ``is_v013``
            text.extend(o.text)
            logprobs.extend(o.logprobs)
            argmax.extend(o.argmax_logits_eq_gold)
            reasonings.extend(o.reasonings)
            tokens.extend(o.output_tokens)
        else:
            if type(result) is list and len(result) == 1 and type(result[0]) is float:
                logprobs.append(result[0])  # the common ``[logprob]``, as ``_fold_result`` folds it
            else:
                _fold_result(result, text, logprobs, argmax)
            tokens.append(o.generated_tokens)
        if o.logits is not None:
            logits.append(o.logits)
        if first is None and (o.input is not None or o.input_tokens):
            first = o
    return {
        "input": first.input if first and first.input is not None else (doc.ctx or doc.query),
        "input_tokens": first.input_tokens if first else [],
        "text": text,
        "output_tokens": tokens,
        "text_post_processed": None,
        "reasonings": reasonings,
        "logprobs": logprobs,
        "argmax_logits_eq_gold": argmax,
        "logits": logits or None,
        "unconditioned_logprobs": None,
        "truncated_tokens_count": max((o.truncated_tokens_count for o in outputs), default=0),
        "padded_tokens_count": max((o.padded_tokens_count for o in outputs), default=0),
    }


def lighteval_rows(samples: Sequence[ScoredSample]) -> list[list[Any]]:
    """The three columns of ``samples`` in 0.13's layout: docs, metrics, responses."""
    return [
        [doc_row(s.doc) for s in samples],
        [s.metrics for s in samples],
        [response_row(s.doc, s.outputs) for s in samples],
    ]


def encode_lighteval_rows(samples: Sequence[ScoredSample]) -> bytes:
    """One frame payload holding ``samples`` in 0.13's layout."""
    return encode_columns(lighteval_rows(samples))


def encode_columns(columns: list[list[Any]]) -> bytes:
    """One frame payload holding ``lighteval_rows`` columns."""
    return MAGIC + _ENCODER.encode(columns)


def is_lighteval(payload: bytes) -> bool:
    """Whether a frame payload is of this layout."""
    return payload[:4] == MAGIC


def decode(payload: bytes) -> dict[str, list[Any]]:
    """The three columns of a frame of this layout."""
    cols = _DECODER.decode(memoryview(payload)[len(MAGIC) :])
    return dict(zip(COLUMNS, cols, strict=True))


def _has_null(t: pa.DataType) -> bool:
    if pa.types.is_null(t):
        return True
    if pa.types.is_struct(t):  # an image's path is always null
        return any(_has_null(f.type) for f in t)
    return bool(pa.types.is_list(t) and _has_null(t.value_type))


def refine(name: str, inferred: pa.DataType | None) -> pa.DataType:
    """The file's type of column ``name``: inferred, with declared types where it says null."""
    declared = DOC_TYPES if name == "doc" else RESPONSE_TYPES if name == "model_response" else {}
    if name == "metric" and (inferred is None or inferred in (pa.null(), pa.struct([]))):
        return pa.null()  # no metric values: parquet has no empty struct, datasets no map
    if inferred is None or pa.types.is_null(inferred):
        inferred = pa.struct([(n, t or pa.null()) for n, t in declared.items()])
    if not declared or not pa.types.is_struct(inferred):
        return inferred
    fields = []
    for field in inferred:
        better = declared.get(field.name)
        fields.append(field.with_type(better) if better and _has_null(field.type) else field)
    return pa.struct(fields)


def details_folder(root: Path, model_name: str, date_id: str) -> Path:
    """``root/details/{model}/{date_id}``; ``first`` / ``last`` pick the oldest / newest run."""
    base = root / model_details_dir(model_name)
    if date_id in ("first", "last"):
        runs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        if not runs:
            raise DetailsNotFoundError(f"no saved details of {model_name!r} under {base}")
        return runs[0] if date_id == "first" else runs[-1]
    return base / date_id


def load_details(
    root: Path, model_name: str, date_id: str, task_names: Sequence[str]
) -> dict[str, pa.Table]:
    """The details tables of a saved run by full task name, as 0.13's ``load_details_datasets``.

    A requested name matches a file's task with or without its few-shot part (``task|0`` and
    ``task`` both match ``details_task|0_...``; 0.13 accepts only the second). Every requested
    task must be found; rows keep the order they were logged in.
    """
    import pyarrow.parquet as pq

    folder = details_folder(root, model_name, date_id)
    if not folder.is_dir():
        raise DetailsNotFoundError(f"no saved details at {folder} (model {model_name!r})")
    date = folder.name
    found: dict[str, Path] = {}
    for path in sorted(folder.glob(details_glob(date))):
        if (task := details_task(path.name, date)) is not None:
            found[task] = path
    wanted = set(task_names)
    picked = {t: p for t, p in found.items() if t in wanted or t.rsplit("|", 1)[0] in wanted}
    missing = [t for t in task_names if not any(n == t or n.rsplit("|", 1)[0] == t for n in picked)]
    if missing:
        raise DetailsNotFoundError(
            f"no details of task(s) {missing} in {folder}; found: {sorted(found)}"
        )
    tables = {}
    for task, path in picked.items():
        table = pq.read_table(path)
        if "model_response" not in table.column_names:
            raise InputError(
                f"{path} has the flat details layout; lighteval re-reads responses only from "
                "files saved with details_layout='lighteval'"
            )
        tables[task] = table
    return tables
