"""The details worker's one-pass columns equal the per-sample slow path they replaced.

``row_columns`` tells response shapes apart inline; the reference here builds every column the
plain way, through ``ModelResponse.predictions`` / ``continuation_tokens`` / ``Doc.golds``,
from samples decoded from journal bytes as the worker sees them. The frame, the hashes and the
counters must all be equal on random batches of both response shapes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._messages import ScoredSample
from evalstream._types import Doc, ModelResponse
from evalstream.details.rows import _CHOICES as CHOICE_CATEGORIES
from evalstream.details.rows import _GOLD as GOLD_CATEGORIES
from evalstream.details.rows import (
    decode_columns,
    encode_rows,
    pack_tokens,
    row_columns,
)
from evalstream.stats.hashing import TaskCounters, batch_hashes, sample_hashes, token_reprs

_TOKENS = st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=6)
_COUNT = st.integers(min_value=0, max_value=3)
_SEED_ERA = st.builds(
    ModelResponse,
    result=st.one_of(st.lists(st.floats(allow_nan=False), max_size=2), st.just("yes")),
    input_tokens=_TOKENS,
    generated_tokens=st.lists(st.integers(0, 9), min_size=1, max_size=3),
    truncated_tokens_count=_COUNT,
    padded_tokens_count=_COUNT,
    logits=st.one_of(st.none(), st.lists(st.floats(allow_nan=False), max_size=2)),
)
_V013 = st.builds(
    ModelResponse,
    text=st.lists(st.text(max_size=4), max_size=2),
    logprobs=st.lists(st.floats(allow_nan=False), max_size=2),
    input_tokens=_TOKENS,
    output_tokens=st.lists(_TOKENS, max_size=3),
    truncated_tokens_count=_COUNT,
    padded_tokens_count=_COUNT,
)
_DOC = st.builds(
    Doc,
    query=st.text(max_size=12),
    ctx=st.text(max_size=12),
    choices=st.lists(st.text(max_size=3), max_size=4),
    gold_index=st.one_of(st.integers(-1, 4), st.lists(st.integers(0, 4), max_size=2)),
    instruction=st.text(max_size=4),
    num_asked_few_shots=_COUNT,
    num_effective_few_shots=st.integers(-1, 3),
    specific=st.one_of(st.none(), st.just({"k": "v"})),
    images=st.one_of(st.none(), st.lists(st.binary(max_size=8), max_size=2)),
)
_SAMPLE = st.builds(
    lambda doc, outs, acc, judged: ScoredSample(
        task_name="t", doc=doc, outputs=tuple(outs), metrics={"acc": acc}, judgement=judged
    ),
    _DOC,
    st.one_of(st.lists(st.one_of(_SEED_ERA, _V013), max_size=4), st.lists(_V013, max_size=1)),
    st.floats(0, 1),
    st.one_of(st.none(), st.tuples(st.text(max_size=3), st.text(max_size=3))),
)
_CATEGORIES = st.frozensets(
    st.sampled_from(["multichoice", "generative", "generative_logprob", "perplexity"])
)


def _reference_columns(samples: list[ScoredSample], categories: frozenset[str]) -> dict[str, Any]:
    every = not categories
    choices = every or bool(categories & CHOICE_CATEGORIES)
    gold = every or bool(categories & GOLD_CATEGORIES)
    outs = [s.outputs for s in samples]
    fixed = {
        "choices": [s.doc.choices if choices else [] for s in samples],
        "cont_tokens": pack_tokens(
            [[t for o in out for t in o.continuation_tokens()] for out in outs]
        ),
        "example": [s.doc.query for s in samples],
        "full_prompt": [s.doc.ctx for s in samples],
        "gold": [s.doc.golds() if gold else [] for s in samples],
        "gold_index": [
            ([g] if isinstance(g := s.doc.gold_index, int) else list(g)) if choices else []
            for s in samples
        ],
        "images": [list(s.doc.images) if s.doc.images else None for s in samples],
        "input_tokens": pack_tokens([[o.input_tokens for o in out] for out in outs]),
        "instruction": [s.doc.instruction for s in samples],
        "judge_prompt": [s.judgement[0] if s.judgement else None for s in samples],
        "judgement": [s.judgement[1] if s.judgement else None for s in samples],
        "num_asked_few_shots": [s.doc.num_asked_few_shots for s in samples],
        "num_effective_few_shots": [s.doc.num_effective_few_shots for s in samples],
        "padded": [[o.padded_tokens_count for o in out] for out in outs],
        "truncated": [[o.truncated_tokens_count for o in out] for out in outs],
    }
    want_logits = every or "generative_logprob" in categories
    variable = {
        "metrics": [s.metrics for s in samples],
        "pred_logits": [
            [o.logits for o in out if o.logits is not None] if want_logits else [] for out in outs
        ],
        "predictions": [[p for o in out for p in o.predictions()] for out in outs],
        "specifics": [s.doc.specific for s in samples],
    }
    # through msgpack, as a frame is read back (tuples become lists)
    return msgspec.msgpack.decode(msgspec.msgpack.encode({**variable, **fixed}))  # type: ignore[no-any-return]


def _as_worker_sees(samples: list[ScoredSample]) -> list[ScoredSample]:
    return [msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=ScoredSample) for s in samples]


@settings(max_examples=150, deadline=None)
@given(st.lists(_SAMPLE, max_size=12), _CATEGORIES)
def test_one_pass_columns_equal_the_slow_path(
    samples: list[ScoredSample], categories: frozenset[str]
) -> None:
    decoded = _as_worker_sees(samples)
    assert decode_columns(encode_rows(decoded, categories)) == _reference_columns(
        decoded, categories
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(_SAMPLE, max_size=12), _CATEGORIES)
def test_batch_hashes_and_counters_equal_the_per_sample_ones(
    samples: list[ScoredSample], categories: frozenset[str]
) -> None:
    decoded = _as_worker_sees(samples)
    cols = row_columns(decoded, categories)
    col = cols.column
    per_sample = [sample_hashes(s.doc, s.outputs) for s in decoded]
    batched = batch_hashes(
        col("example"), col("full_prompt"), col("input_tokens"), col("cont_tokens"), cols.single
    )
    assert [list(h) for h in zip(*batched, strict=True)] == [list(h) for h in per_sample]

    one_by_one, from_rows = TaskCounters(), TaskCounters()
    for s in decoded:
        one_by_one.add(s.doc, s.outputs)
    from_rows.add_rows(
        col("padded"), col("truncated"), col("num_asked_few_shots"), col("num_effective_few_shots")
    )
    assert from_rows == one_by_one


_ROWS = st.lists(
    st.one_of(
        st.lists(st.lists(st.integers(-(2**64), 2**64), max_size=4), max_size=3),
        st.lists(st.integers(-(2**64), 2**64), max_size=4),
        st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=2))),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_ROWS)
def test_token_reprs_of_a_batch_are_each_row_s_str(rows: list[Any]) -> None:
    """The batch's JSON joined, spaced and split again is ``str`` of each row (lighteval's
    hashed text); a batch with anything but ints falls back row by row."""
    assert token_reprs(rows) == [str(row).encode() for row in rows]
