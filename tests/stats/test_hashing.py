"""The per-sample hashes equal lighteval's definitions: xxh64 of the UTF-8 of ``query``, ``ctx``
and of ``str()`` of the token lists, computed here the slow way. The fast path renders token lists
through msgspec's JSON encoder (``token_repr``), which must give exactly ``str()``'s bytes."""

from __future__ import annotations

from typing import Any

import msgspec
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._messages import ScoredSample
from evalstream._types import Doc, ModelResponse
from evalstream.stats.hashing import sample_hashes, token_repr

_TOKEN = st.one_of(
    st.integers(min_value=0, max_value=200_000),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
_TOKENS = st.lists(_TOKEN, max_size=12)
_SEED_ERA = st.lists(
    st.builds(
        ModelResponse, result=st.just([-1.0]), input_tokens=_TOKENS, generated_tokens=_TOKENS
    ),
    min_size=1,
    max_size=5,
)
_V013 = st.builds(
    lambda i, o: [ModelResponse(text=["x"], input_tokens=i, output_tokens=o)],
    _TOKENS,
    st.lists(_TOKENS, max_size=4),
)
_SAMPLE = st.tuples(
    st.builds(Doc, query=st.text(max_size=30), ctx=st.text(max_size=30)),
    st.one_of(_SEED_ERA, _V013, st.just([])),
)


def _reference(doc: Doc, outs: list[ModelResponse]) -> list[int]:
    h = xxhash.xxh64_intdigest
    if len(outs) == 1 and outs[0].is_v013:
        tokens: Any = outs[0].input_tokens
        conts: Any = list(outs[0].output_tokens)
    else:
        tokens = [o.input_tokens for o in outs]
        conts = [o.generated_tokens for o in outs]
    return [
        h(doc.query.encode()),
        h(doc.ctx.encode()),
        h(str(tokens).encode()),
        h(str(conts).encode()),
    ]


@settings(max_examples=80, deadline=None)
@given(st.lists(_SAMPLE, max_size=30))
def test_sample_hashes_equal_the_reference_form(
    samples: list[tuple[Doc, list[ModelResponse]]],
) -> None:
    # as the details worker sees them: decoded from the journal's bytes
    decoded = [
        msgspec.msgpack.decode(
            msgspec.msgpack.encode(
                ScoredSample(task_name="t", doc=d, outputs=tuple(o), metrics={})
            ),
            type=ScoredSample,
        )
        for d, o in samples
    ]
    for (doc, outs), sample in zip(samples, decoded, strict=True):
        assert list(sample_hashes(sample.doc, sample.outputs)) == _reference(doc, outs)


@given(st.lists(st.one_of(_TOKENS, st.lists(_TOKENS, max_size=3)), max_size=6))
def test_token_repr_is_str(tokens: list[Any]) -> None:
    assert token_repr(tokens) == str(tokens).encode()


def test_token_lists_that_are_not_ints_fall_back_to_str() -> None:
    for value in ([1.5, 2], ["a", 1], [[3], [True]], [None]):
        assert token_repr(value) == str(value).encode()  # type: ignore[arg-type]
