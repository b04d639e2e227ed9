"""The parquet a details worker writes while the run goes is the table the two-pass conversion
of the same segment writes: when every batch keeps the first batch's schema (the live file is
kept), and when one does not (it is abandoned and the segment converted at the end)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._messages import ENCODER, SampleBatch, ScoredSample, TasksDeclared, TaskSpec
from evalstream._types import Doc, ModelResponse
from evalstream.details import worker as details_worker
from evalstream.details.lighteval_layout import lighteval_rows, response_row
from evalstream.details.live_parquet import struct_array
from evalstream.details.parquet import segment_to_parquet
from evalstream.details.protocol import Output
from evalstream.details.worker import Worker

_PARTS: dict[str, int] = {}
"""Part files per task of the last ``_run``, before they were joined."""
_TOKENS = st.lists(st.integers(0, 50_000), max_size=8)


def _sample(
    task: str, acc: Any, extra: dict[str, Any], tokens: list[int], v013: bool
) -> ScoredSample:
    images = [repr(tokens[-3:]).encode()] if len(tokens) % 2 else None
    doc = Doc(
        query="q", ctx="ctx q", choices=[" A", " B"], gold_index=1, specific=extra or None,
        images=images,
    )  # fmt: skip
    if v013:
        outs: tuple[ModelResponse, ...] = (
            ModelResponse(text=["A"], input_tokens=tokens, output_tokens=[tokens[:1]]),
        )
    else:
        outs = tuple(
            ModelResponse(
                result=[-0.5 * k], input_tokens=tokens if k == 0 else [], generated_tokens=[k]
            )
            for k in range(2)
        )
    return ScoredSample(task_name=task, doc=doc, outputs=outs, metrics={"acc": acc})


def _run(
    batches: list[list[ScoredSample]], categories: list[str], layout: str = "flat"
) -> tuple[dict[str, bool], dict[str, Any]]:
    """Feed ``batches`` to a worker, convert; (task -> live file kept, task -> (live, 2-pass))."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        worker = Worker(root / "work", keep_rows=True, layout=layout)
        worker.hold_rows = 0  # one ingest per batch: the batches are the schema changes tested
        tasks = sorted({s.task_name for b in batches for s in b})
        worker.message(
            ENCODER.encode(
                TasksDeclared(tasks=[TaskSpec(name=t, categories=categories) for t in tasks])
            )
        )
        for batch in batches:
            worker.guarded(ENCODER.encode(SampleBatch(samples=batch)))
        worker.sync()
        worker.close()
        kept = {n: t.live is not None and not t.live.abandoned for n, t in worker.tasks.items()}
        _PARTS.clear()
        _PARTS.update({n: len(t.live.parts) for n, t in worker.tasks.items() if t.live})
        written = worker.convert(Output(root=str(root / "out"), model_name="org/m", date_id="d"))
        assert written.error is None
        tables = {}
        for name, rel in written.paths.items():
            slow = root / f"slow-{len(tables)}.parquet"
            segment_to_parquet(worker.tasks[name].segment, slow, layout)
            tables[name] = (pq.read_table(root / "out" / rel), pq.read_table(slow))
        assert not list((root / "work").rglob("*.parquet"))  # moved into place or deleted
    return kept, tables


_STABLE = st.lists(
    st.lists(
        st.builds(
            _sample,
            st.sampled_from(["a|0", "b|0"]),
            st.floats(0, 1),
            st.just({}),
            _TOKENS.map(lambda t: [7, *t]),
            st.just(False),
        ),
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None)
@given(_STABLE, st.sampled_from([[], ["multichoice"], ["generative_logprob"]]))
def test_a_stable_schema_is_written_live_and_equals_the_two_passes(
    batches: list[list[ScoredSample]], categories: list[str]
) -> None:
    kept, tables = _run(batches, categories)
    assert all(kept.values())
    for live, slow in tables.values():
        assert live.equals(slow)
        features = live.schema.metadata[b"huggingface"]  # images decode in datasets
        assert features == slow.schema.metadata[b"huggingface"]


_VARYING = st.lists(
    st.lists(
        st.builds(
            _sample,
            st.just("t|0"),
            st.one_of(st.floats(0, 1), st.integers(0, 1), st.just("x")),
            st.one_of(st.just({}), st.just({"k": "v"}), st.just({"k": 1})),
            _TOKENS.map(lambda t: [7, *t]),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(_VARYING)
def test_a_changing_schema_falls_back_to_the_same_table(batches: list[list[ScoredSample]]) -> None:
    _, tables = _run(batches, [])
    for live, slow in tables.values():
        assert live.equals(slow)


def test_a_schema_change_abandons_the_live_file() -> None:
    first = [_sample("t|0", 0.5, {}, [1, 2], False)]
    kept, tables = _run([first, [_sample("t|0", "yes", {}, [1], False)]], [])
    assert kept == {"t|0": False}
    live, slow = tables["t|0"]
    assert live.equals(slow) and live.num_rows == 2


def test_pending_rows_stay_bounded_across_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(details_worker, "LIVE_PENDING_ROWS", 3)
    batches = [
        [_sample(t, 0.5, {}, [1, k], False) for k in range(2)] for t in ("a|0", "b|0", "c|0")
    ] * 2
    kept, tables = _run(batches, [])
    assert all(kept.values())
    for live, slow in tables.values():
        assert live.equals(slow)
        assert live.num_rows == 4


def test_suspended_files_join_their_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(details_worker, "LIVE_PENDING_ROWS", 0)  # every batch is written
    monkeypatch.setattr(details_worker, "LIVE_OPEN_FILES", 1)  # and every other task suspended
    tasks = ("a|0", "b|0")
    batches = [[_sample(t, 0.25 * k, {}, [k, 9], False)] for k in range(3) for t in tasks]
    kept, tables = _run(batches, [])
    assert all(kept.values())
    assert _PARTS == {"a|0": 3, "b|0": 3}
    for live, slow in tables.values():
        assert live.equals(slow)
        assert live.column("metrics").to_pylist() == [{"acc": 0.25 * k} for k in range(3)]


def test_the_bound_writes_a_finished_tasks_group_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the bound, the group a task is still filling stays whole: the stalest is written."""
    monkeypatch.setattr(details_worker, "LIVE_PENDING_ROWS", 3)
    with tempfile.TemporaryDirectory() as tmp:
        worker = Worker(Path(tmp), keep_rows=True)
        worker.hold_rows = 0
        a = [_sample("a|0", 0.5, {}, [1], False)]
        b = [_sample("b|0", 0.5, {}, [1, k], False) for k in range(3)]
        for batch in (a, b):
            worker.guarded(ENCODER.encode(SampleBatch(samples=batch)))
        live_a, live_b = (worker.tasks[n].live for n in ("a|0", "b|0"))
        assert live_a is not None and live_b is not None
        assert (live_a.group_rows, live_a.rows, live_b.group_rows) == (0, 1, 3)
        worker.close()
        worker.drop_live()


@settings(max_examples=25, deadline=None)
@given(_STABLE, st.sampled_from([[], ["multichoice"]]))
def test_the_lighteval_layout_is_written_live_and_equals_the_two_passes(
    batches: list[list[ScoredSample]], categories: list[str]
) -> None:
    """0.13's struct columns are streamed too: ``save()`` only closes and moves the file."""
    kept, tables = _run(batches, categories, "lighteval")
    assert all(kept.values())
    for live, slow in tables.values():
        assert live.column_names == ["doc", "metric", "model_response"]
        assert live.equals(slow)
        assert live.schema.metadata == slow.schema.metadata


@settings(max_examples=40, deadline=None)
@given(_VARYING)
def test_a_changing_lighteval_schema_falls_back_to_the_same_table(
    batches: list[list[ScoredSample]],
) -> None:
    _, tables = _run(batches, [], "lighteval")
    for live, slow in tables.values():
        assert live.equals(slow)
        assert live.schema.metadata == slow.schema.metadata


def test_a_lighteval_schema_change_abandons_the_live_file() -> None:
    """A ``specific`` that turns from a string to a number: the file cannot keep its type."""
    first = [_sample("t|0", 0.5, {"k": "v"}, [1, 2], True)]
    kept, tables = _run([first, [_sample("t|0", 0.5, {"k": 1}, [1], True)]], [], "lighteval")
    assert kept == {"t|0": False}
    live, slow = tables["t|0"]
    assert live.equals(slow) and live.num_rows == 2


def test_seed_era_results_fold_into_one_013_response() -> None:
    """The one-logprob fast path folds as the general one: ints become floats, booleans
    argmax flags, a pair both, and the continuation tokens stay one list per response."""
    doc = Doc(query="q", ctx="ctx q", choices=[" A", " B"], gold_index=0)
    results: list[Any] = [[-0.25], [-1.0, -2.0], [3], [True], (-0.5, True), ["yes"], -4.0]
    outputs = [ModelResponse(result=r, generated_tokens=[k]) for k, r in enumerate(results)]
    row = response_row(doc, outputs)
    assert row["logprobs"] == [-0.25, -1.0, -2.0, 3.0, -0.5, -4.0]
    assert row["argmax_logits_eq_gold"] == [True, True]
    assert row["text"] == ["yes"]
    assert row["output_tokens"] == [[k] for k in range(len(results))]
    assert row["input"] == "ctx q" and row["input_tokens"] == []


@settings(max_examples=60, deadline=None)
@given(_VARYING)
def test_struct_columns_built_per_field_equal_arrow_s_inference(
    batches: list[list[ScoredSample]],
) -> None:
    """``struct_array`` (one array per field) is ``pa.array`` of the dict rows: same type, same
    values, and the same parquet bytes; rows Arrow cannot type fail both ways."""
    for batch in batches:
        docs, _, responses = lighteval_rows(batch)
        for rows in (docs, responses):
            try:
                inferred = pa.array(rows)
            except (pa.ArrowException, TypeError):
                with pytest.raises((pa.ArrowException, TypeError)):
                    struct_array(rows)
                continue
            built = struct_array(rows)
            assert built.type == inferred.type and built.equals(inferred)
            assert _parquet_bytes(built) == _parquet_bytes(inferred)


def _parquet_bytes(array: pa.Array) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"c": array}), sink, compression="zstd")
    return sink.getvalue()
