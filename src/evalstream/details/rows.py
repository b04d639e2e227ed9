"""Details rows, columnar: how a batch of samples is stored in a segment frame and read back.

A frame holds one batch of one task as columns, not rows: building a column is one list
comprehension over the batch (no object per row), and the parquet writer hands columns to Arrow
as they are. The payload is ``<u32 n><variable columns><fixed columns>``, both msgpack arrays:
the variable columns (metrics, predictions, specifics, logits), whose Arrow types are inferred,
come first and alone, so the schema pass decodes only them.

Token columns, the bulk of the data, are packed: int64 values and int32 offsets as raw bytes,
which become Arrow list arrays without a Python object per token on the way back. A token list
that is not all 64-bit ints is stored as plain lists instead.
"""

from __future__ import annotations

import itertools
import struct
from array import array
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import numpy as np
import pyarrow as pa

from evalstream.details.lighteval_layout import COLUMNS as LIGHTEVAL_COLUMNS
from evalstream.details.lighteval_layout import decode as lighteval_columns
from evalstream.details.lighteval_layout import is_lighteval
from evalstream.durability.frames import read_frames

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from evalstream._messages import ScoredSample

COLUMNS: tuple[str, ...] = (
    "choices", "cont_tokens", "example", "full_prompt", "gold", "gold_index", "images",
    "input_tokens", "instruction", "judge_prompt", "judgement", "metrics", "num_asked_few_shots",
    "num_effective_few_shots", "padded", "pred_logits", "predictions", "specifics", "truncated",
)  # fmt: skip
"""The details parquet columns, sorted by name as lighteval writes them."""

VARIABLE: tuple[str, ...] = ("metrics", "pred_logits", "predictions", "specifics")
FIXED_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in VARIABLE)

_GOLD = frozenset(
    {
        "generative",
        "generative_sampling",
        "generative_logprob",
        "perplexity",
        "target_perplexity",
        "llm_as_judge",
        "llm_as_judge_multi_turn",
    }
)
_CHOICES = frozenset(
    {
        "multichoice",
        "multichoice_one_token",
        "multichoice_pmi",
        "llm_as_judge",
        "llm_as_judge_multi_turn",
    }
)
_LEN = struct.Struct("<I")
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


_INT32_MAX = 2**31 - 1


def _offsets(lengths: Iterator[int], count: int) -> bytes:
    ends = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=ends[1:])
    if ends[-1] > _INT32_MAX:
        raise OverflowError("more values than int32 offsets address")
    return ends.astype(np.int32).tobytes()


def pack_tokens(per_row: list[list[list[int]]]) -> list[Any]:
    """``["packed", row offsets, output offsets, values]``, or ``["lists", per_row]``.

    C-level passes only (a chain over every token list, lengths through ``map``), not a Python
    loop over the lists: 4.2 -> 2.8 us per four-response sample. The chain is gathered into a
    list before the array takes it: ``array`` grows item by item from an iterator but sizes
    itself once from a list (40 tokens: 3.0 -> 1.5 us).
    """
    try:
        lists = [tokens for outputs in per_row for tokens in outputs]
        values = array("q", list(itertools.chain.from_iterable(lists)))
        inner = _offsets(map(len, lists), len(lists))
        outer = _offsets(map(len, per_row), len(per_row))
    except (TypeError, OverflowError):
        return ["lists", per_row]
    return ["packed", outer, inner, values.tobytes()]


def tokens_array(packed: list[Any]) -> pa.Array:
    """The Arrow ``list<list<int64>>`` array of a packed token column."""
    if packed[0] != "packed":
        return pa.array(packed[1])
    outer = np.frombuffer(packed[1], dtype=np.int32)
    inner = np.frombuffer(packed[2], dtype=np.int32)
    values = pa.array(np.frombuffer(packed[3], dtype=np.int64))
    return pa.ListArray.from_arrays(outer, pa.ListArray.from_arrays(inner, values))


def unpack_tokens(packed: list[Any]) -> list[list[list[int]]]:
    """A packed token column as Python lists."""
    if packed[0] != "packed":
        return list(packed[1])
    result: list[list[list[int]]] = tokens_array(packed).to_pylist()
    return result


TOKEN_COLUMNS = frozenset({"cont_tokens", "input_tokens"})


class Columns(NamedTuple):
    """A batch of one task as details columns, token columns still as per-row lists.

    Built in one pass over the samples (``row_columns``): the segment frame, the per-sample
    hashes and the task counters are all read from these lists, so no response is visited twice.
    """

    variable: list[list[Any]]
    """In ``VARIABLE`` order."""
    fixed: list[list[Any]]
    """In ``FIXED_COLUMNS`` order."""
    single: list[bool]
    """Per row: one lighteval 0.13 response (its token hashes are 0.13's, of that response)."""

    def column(self, name: str) -> list[Any]:
        """A fixed column by name."""
        return self.fixed[_FIXED_INDEX[name]]


_FIXED_INDEX = {name: i for i, name in enumerate(FIXED_COLUMNS)}


def row_columns(samples: Sequence[ScoredSample], categories: frozenset[str]) -> Columns:
    """The details columns of ``samples``: one loop over samples and responses.

    Which of gold / choices / gold_index / pred_logits are filled follows the task's metric
    categories, as in lighteval; a task without categories gets all of them. The response
    shapes are told apart inline (``ModelResponse.is_v013``, ``predictions``,
    ``continuation_tokens``): three method calls per response were a third of the row cost.
    """
    every = not categories
    want_logits = every or "generative_logprob" in categories
    want_choices = every or bool(categories & _CHOICES)
    want_gold = every or bool(categories & _GOLD)
    metrics: list[Any] = []
    logits: list[Any] = []
    predictions: list[Any] = []
    specifics: list[Any] = []
    choices: list[Any] = []
    conts: list[Any] = []
    examples: list[Any] = []
    prompts: list[Any] = []
    golds: list[Any] = []
    gold_indices: list[Any] = []
    images: list[Any] = []
    inputs: list[Any] = []
    instructions: list[Any] = []
    judge_prompts: list[Any] = []
    judgements: list[Any] = []
    asked: list[Any] = []
    effective: list[Any] = []
    padded: list[Any] = []
    truncated: list[Any] = []
    single: list[bool] = []
    for sample in samples:
        doc = sample.doc
        preds: list[Any] = []
        cont: list[Any] = []
        ins: list[Any] = []
        pad: list[int] = []
        trunc: list[int] = []
        lgs: list[Any] = []
        v013 = False
        for o in sample.outputs:
            v013 = o.result is None and not o.generated_tokens
            if v013:
                preds.extend(o.text or o.logprobs)
                cont.extend(o.output_tokens)
            else:
                result = o.result
                if isinstance(result, list):
                    preds.extend(result)
                else:
                    preds.append(result)
                cont.append(o.generated_tokens)
            ins.append(o.input_tokens)
            pad.append(o.padded_tokens_count)
            trunc.append(o.truncated_tokens_count)
            if o.logits is not None:
                lgs.append(o.logits)
        single.append(v013 and len(ins) == 1)
        metrics.append(sample.metrics)
        logits.append(lgs if want_logits else [])
        predictions.append(preds)
        specifics.append(doc.specific)
        choices.append(doc.choices if want_choices else [])
        conts.append(cont)
        examples.append(doc.query)
        prompts.append(doc.ctx)
        golds.append(doc.golds() if want_gold else [])
        gold = doc.gold_index
        gold_indices.append(
            ([gold] if isinstance(gold, int) else list(gold)) if want_choices else []
        )
        images.append(doc.images or None)
        inputs.append(ins)
        instructions.append(doc.instruction)
        judged = sample.judgement
        judge_prompts.append(judged[0] if judged else None)
        judgements.append(judged[1] if judged else None)
        asked.append(doc.num_asked_few_shots)
        effective.append(doc.num_effective_few_shots)
        padded.append(pad)
        truncated.append(trunc)
    fixed = [
        choices, conts, examples, prompts, golds, gold_indices, images, inputs, instructions,
        judge_prompts, judgements, asked, effective, padded, truncated,
    ]  # fmt: skip
    return Columns([metrics, logits, predictions, specifics], fixed, single)


def packed_fixed(columns: Columns) -> list[Any]:
    """The fixed columns with the token columns packed (as a frame stores them)."""
    fixed = list(columns.fixed)
    for name in TOKEN_COLUMNS:
        index = _FIXED_INDEX[name]
        fixed[index] = pack_tokens(fixed[index])
    return fixed


def encode_columns(variable: list[list[Any]], fixed: list[Any]) -> bytes:
    """One frame payload: ``<u32 n><variable columns><fixed columns>`` (``packed_fixed``)."""
    var_bytes = _ENCODER.encode(variable)
    return _LEN.pack(len(var_bytes)) + var_bytes + _ENCODER.encode(fixed)


def encode_rows(samples: Sequence[ScoredSample], categories: frozenset[str]) -> bytes:
    """One frame payload holding ``samples`` as columns (see ``row_columns``)."""
    columns = row_columns(samples, categories)
    return encode_columns(columns.variable, packed_fixed(columns))


def decode_variable(payload: bytes) -> dict[str, list[Any]]:
    """The variable columns of a frame (the schema pass needs only these)."""
    if is_lighteval(payload):
        return lighteval_columns(payload)
    (size,) = _LEN.unpack_from(payload)
    cols = _DECODER.decode(memoryview(payload)[_LEN.size : _LEN.size + size])
    return dict(zip(VARIABLE, cols, strict=True))


def decode_fixed(payload: bytes) -> dict[str, list[Any]]:
    """The fixed columns of a flat frame (the write pass, when it has the variable ones)."""
    (size,) = _LEN.unpack_from(payload)
    fixed = _DECODER.decode(memoryview(payload)[_LEN.size + size :])
    return dict(zip(FIXED_COLUMNS, fixed, strict=True))


def decode_columns(payload: bytes) -> dict[str, list[Any]]:
    """Every column of a frame, by name; token columns stay packed (see ``tokens_array``)."""
    if is_lighteval(payload):
        return lighteval_columns(payload)
    (size,) = _LEN.unpack_from(payload)
    view = memoryview(payload)
    cols = dict(zip(VARIABLE, _DECODER.decode(view[_LEN.size : _LEN.size + size]), strict=True))
    cols.update(zip(FIXED_COLUMNS, _DECODER.decode(view[_LEN.size + size :]), strict=True))
    return cols


def iter_rows(payloads: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Rows as dicts (for snapshots and tests; the parquet writer stays columnar)."""
    for payload in payloads:
        if is_lighteval(payload):
            cols = lighteval_columns(payload)
            yield from (
                dict(zip(LIGHTEVAL_COLUMNS, row, strict=True))
                for row in zip(*cols.values(), strict=True)
            )
            continue
        cols = decode_columns(payload)
        for name in TOKEN_COLUMNS:
            cols[name] = unpack_tokens(cols[name])
        n = len(cols["example"])
        for i in range(n):
            yield {name: cols[name][i] for name in COLUMNS}


def read_rows(segment: Path) -> list[dict[str, Any]]:
    """Every row of a segment (for snapshots and tests; the parquet writer streams instead)."""
    if not segment.exists():
        return []
    return list(iter_rows(read_frames(segment)))
