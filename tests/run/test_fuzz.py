"""Hostile input, generated: every log_sample returns or raises an EvalStreamError, save()
then succeeds, its results count exactly the accepted samples, and every parquet file opens.

Bounded (15 runs of up to a dozen samples) so the suite stays fast;
``EVALSTREAM_FUZZ_EXAMPLES=200`` searches longer.
"""

from __future__ import annotations

import decimal
import os
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalstream import (
    Doc,
    EvalStreamError,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    TaskSpec,
)

if TYPE_CHECKING:
    from pathlib import Path

TASKS = [TaskSpec(name="lb|fuzz|0"), TaskSpec(name="lb|fuzz:gen|0", categories=["generative"])]

odd_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "é" * 3, "\U0001f600", "|:/.."]),
)


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
free_form = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
        max_leaves=8,
    ),
    st.integers(min_value=0, max_value=160).map(_nest),
)
metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.integers(min_value=-1000, max_value=1000).map(np.int64),
    st.booleans().map(np.bool_),
    st.decimals(allow_nan=False).map(decimal.Decimal),
    st.tuples(st.floats(), st.floats()),
    odd_text,
    st.none(),
    st.lists(st.floats(), max_size=2),
)
metrics = st.one_of(
    st.dictionaries(st.sampled_from(["acc", "em", "f1"]), metric_values, max_size=3),
    st.dictionaries(st.integers(0, 3), st.floats(), max_size=1),
    st.lists(st.floats(), max_size=2),
    st.none(),
)
token_lists = st.lists(
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(), st.floats()),
    max_size=4,
)
responses = st.builds(
    ModelResponse,
    result=free_form,
    input_tokens=token_lists,
    generated_tokens=token_lists,
    truncated_tokens_count=st.integers(min_value=-1, max_value=3),
    padded_tokens_count=st.integers(min_value=0, max_value=3),
    logits=st.none() | st.lists(st.floats(allow_nan=True), max_size=3),
)
outputs = st.one_of(st.lists(responses, max_size=3), responses, st.none())
docs = st.builds(
    Doc,
    query=odd_text,
    choices=st.lists(odd_text, max_size=4),
    gold_index=st.integers(-2, 5) | st.lists(st.integers(-2, 5), max_size=3) | st.integers(),
    specific=st.none() | st.dictionaries(odd_text, free_form, max_size=3),
    ctx=odd_text,
    instruction=odd_text,
    num_asked_few_shots=st.integers(min_value=-1, max_value=5),
    id=odd_text,
)
samples = st.lists(
    st.tuples(
        st.sampled_from(TASKS), docs, outputs, metrics, st.none() | st.tuples(odd_text, odd_text)
    ),
    min_size=1,
    max_size=12,
)


async def _run(out: Path, batch: list[tuple[Any, ...]], layout: str) -> None:
    accepted: dict[str, int] = {}
    with anyio.fail_after(60):
        result = await _log_and_save(out, batch, accepted, layout)
    assert result.outputs[0].ok, result.outputs
    assert result.samples == accepted
    for task, path in result.details_paths.items():
        table = pq.read_table(path)  # every file opens, whole
        assert table.num_rows == accepted[task]
        table.to_pylist()


async def _log_and_save(
    out: Path, batch: list[tuple[Any, ...]], accepted: dict[str, int], layout: Any
) -> Any:
    async with EvaluationTracker(
        out, batch_size=4, bootstrap_iters=10, details_layout=layout
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/fuzz"))
        await tracker.log_tasks(TASKS)
        for task, doc, outs, values, judgement in batch:
            try:
                await tracker.log_sample(task.name, doc, outs, values, judgement)
            except EvalStreamError:
                continue  # refused at the call: fine, as long as it is ours
            accepted[task.name] = accepted.get(task.name, 0) + 1
        return await tracker.save()


@settings(
    max_examples=int(os.environ.get("EVALSTREAM_FUZZ_EXAMPLES", "15")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=samples, layout=st.sampled_from(["flat", "lighteval"]))
def test_hostile_samples_are_refused_or_stored(
    tmp_path_factory: Any, batch: list[Any], layout: str
) -> None:
    """Arbitrary docs, responses and metrics, in both details layouts: refused with our error,
    or saved and readable."""
    out = tmp_path_factory.mktemp("fuzz")
    anyio.run(_run, out, batch, layout)
