"""The packed token columns equal what a plain per-list loop packs, and read back as logged."""

from __future__ import annotations

from array import array
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream.details.rows import pack_tokens, unpack_tokens

_TOKEN = st.one_of(
    st.integers(min_value=0, max_value=60_000),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
_ROWS = st.lists(st.lists(st.lists(_TOKEN, max_size=10), max_size=5), max_size=20)


def _reference(per_row: list[list[list[Any]]]) -> list[Any]:
    """The packing, list by list in Python (what the fast path replaced)."""
    values, inner, outer = array("q"), array("i", [0]), array("i", [0])
    try:
        for outputs in per_row:
            for tokens in outputs:
                values.extend(tokens)
                inner.append(len(values))
            outer.append(len(inner) - 1)
    except (TypeError, OverflowError):
        return ["lists", per_row]
    return ["packed", outer.tobytes(), inner.tobytes(), values.tobytes()]


@settings(max_examples=200, deadline=None)
@given(_ROWS)
def test_packed_bytes_equal_the_reference_loop(per_row: list[list[list[int]]]) -> None:
    packed = pack_tokens(per_row)
    assert packed == _reference(per_row)
    assert unpack_tokens(packed) == per_row


@given(_ROWS, st.sampled_from([1.5, 2**64, None, "7"]))
def test_a_value_that_is_not_an_int64_keeps_plain_lists(per_row: list[Any], bad: Any) -> None:
    rows = [*per_row, [[1, bad]]]
    assert pack_tokens(rows) == ["lists", rows] == _reference(rows)
