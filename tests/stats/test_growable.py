"""The chunked digest column holds exactly what was appended, in order, across chunk edges."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream.stats.hashing import GrowableU64

_DIGEST = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_DIGEST, max_size=9), max_size=12), st.sampled_from([1, 3, 8]))
def test_extend_and_append_keep_every_value_in_order(batches: list[list[int]], chunk: int) -> None:
    column = GrowableU64(chunk)  # small chunks: batches cross their edges
    expected: list[int] = []
    for k, batch in enumerate(batches):
        if k % 2:
            for value in batch:
                column.append(value)
        else:
            column.extend(batch)
        expected.extend(batch)
    assert len(column) == len(expected)
    assert column.values.tolist() == expected
    assert str(column.values.dtype) == "uint64"
