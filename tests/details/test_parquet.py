"""The write pass reusing the schema pass's Arrow arrays writes exactly the parquet the write
pass converting every frame again writes, for varied details (keys gained, types widened,
mixed kinds turned JSON, empty columns)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalstream._messages import ScoredSample
from evalstream._types import Doc, ModelResponse
from evalstream.details.parquet import ColumnError, _infer_schema, _write, segment_to_parquet
from evalstream.details.rows import encode_rows
from evalstream.durability.frames import frame

if TYPE_CHECKING:
    from pathlib import Path

_SCALAR = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, width=32), st.text(max_size=3))
_METRICS = st.dictionaries(st.sampled_from(["acc", "em", "f1"]), _SCALAR, max_size=3)
_SPECIFIC = st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b"]), _SCALAR, max_size=2))
_RESULT = st.one_of(st.just([-1.5]), st.just(["text"]), st.just([0.5, True]))
_SAMPLE = st.builds(
    lambda m, sp, r: ScoredSample(
        task_name="t|0",
        doc=Doc(query="q", choices=["a", "b"], specific=sp),
        outputs=(ModelResponse(result=r, input_tokens=[1, 2], generated_tokens=[3]),),
        metrics=m,
    ),
    _METRICS,
    _SPECIFIC,
    _RESULT,
)


def _read(sink: io.BytesIO) -> Any:
    sink.seek(0)
    return pq.read_table(sink)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(_SAMPLE, min_size=1, max_size=6), min_size=1, max_size=6))
def test_reusing_the_schema_pass_arrays_writes_the_same_parquet(
    tmp_path: Path, batches: list[list[ScoredSample]]
) -> None:
    segment = tmp_path / "s.seg"
    segment.write_bytes(b"".join(frame(encode_rows(b, frozenset())) for b in batches))
    fast = io.BytesIO()
    _, json_fast = segment_to_parquet(segment, fast)
    schema, json_columns = _infer_schema(segment)  # no cache: every frame converted again
    while True:  # segment_to_parquet's retry, as it was before the cache
        slow = io.BytesIO()
        try:
            _write(segment, slow, schema, json_columns)
            break
        except ColumnError as exc:
            json_columns.add(exc.name)
            schema = schema.set(schema.get_field_index(exc.name), pa.field(exc.name, pa.string()))
    assert json_fast == sorted(json_columns)
    assert _read(fast).equals(_read(slow))
