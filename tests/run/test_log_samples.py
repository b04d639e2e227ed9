"""``log_samples``: one task's batch, checked item by item, all or none, with log_sample's contract."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream import (
    Doc,
    EvalStreamError,
    EvaluationTracker,
    InvalidSampleError,
    MetricValueError,
    ModelInfo,
    ModelResponse,
    UnknownTaskError,
)
from evalstream._messages import ScoredSample
from evalstream.run.coerce import converted
from evalstream.run.intake import prepare_sample

from _workload import TASKS, sample

if TYPE_CHECKING:
    from evalstream import RunResult

TASK = TASKS[0]


def _batch(n: int, seed: int = 0) -> tuple[list[Doc], list[list[ModelResponse]], list[Any]]:
    rng = random.Random(seed)
    docs, outs, metrics = [], [], []
    for i in range(n):
        doc, out, metric = sample(rng, TASK, i)
        docs.append(doc)
        outs.append(out)
        metrics.append(metric)
    return docs, outs, metrics


async def _run(tmp: Path, batched: bool, n: int = 40, **options: Any) -> RunResult:
    async with EvaluationTracker(tmp, batch_size=16, bootstrap_iters=0, **options) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TASK])
        docs, outs, metrics = _batch(n)
        if batched:
            await tracker.log_samples(TASK.name, docs[:7], outs[:7], metrics[:7])
            await tracker.log_samples(TASK.name, docs[7:], outs[7:], metrics[7:])
        else:
            for doc, out, metric in zip(docs, outs, metrics, strict=True):
                await tracker.log_sample(TASK.name, doc, out, metric)
        assert tracker.samples_logged == n
        return await tracker.save()


def _saved(result: RunResult) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = pq.read_table(result.details_paths[TASK.name]).to_pylist()
    results = json.loads(Path(result.results_path).read_text())["results"][TASK.name]
    return rows, results


async def test_a_batch_saves_what_the_same_samples_one_by_one_save(tmp_path: Path) -> None:
    """Rows and aggregated metrics are those of log_sample called per item."""
    with anyio.fail_after(60):
        one = _saved(await _run(tmp_path / "one", batched=False))
        many = _saved(await _run(tmp_path / "many", batched=True))
    assert many == one
    assert len(many[0]) == 40


@pytest.mark.parametrize(
    ("index", "bad", "error", "field"),
    [
        (3, {"metrics": {"acc": "x", "f1": 1.0}}, MetricValueError, "acc"),
        (5, {"outputs": [ModelResponse(input_tokens=[1, 2.5])]}, InvalidSampleError, "tokens"),
        (6, {"doc": {"query": "q", "nope": 1}}, InvalidSampleError, "nope"),
        (2, {"metrics": {"": 1.0}}, MetricValueError, "empty"),
    ],
)
async def test_a_bad_item_names_its_index_and_logs_nothing(
    tmp_path: Path, index: int, bad: dict[str, Any], error: type[Exception], field: str
) -> None:
    """The error is the one log_sample raises, prefixed with the item's index; no item of the
    batch is logged, and the kinds it would have fixed are not fixed."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4, bootstrap_iters=0) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            docs, outs, metrics = _batch(8)
            metrics = [{**m, "f1": 1.0} for m in metrics]  # "f1": a kind the batch would fix
            columns: dict[str, list[Any]] = {"doc": docs, "outputs": outs, "metrics": metrics}
            for key, value in bad.items():
                columns[key][index] = value
            with pytest.raises(error, match=rf"^log_samples item {index}: .*{field}"):
                await tracker.log_samples(TASK.name, docs, outs, metrics)
            assert tracker.samples_logged == 0
            docs, outs, _ = _batch(1, seed=1)
            await tracker.log_sample(TASK.name, docs[0], outs[0], {"acc": 1.0, "f1": [1, 2]})
            result = await tracker.save()
    assert len(pq.read_table(result.details_paths[TASK.name])) == 1


async def test_kinds_must_agree_inside_one_batch(tmp_path: Path) -> None:
    """A metric that is a number at item 0 and a corpus input at item 2 is refused at item 2."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            docs, outs, _ = _batch(3)
            metrics: list[dict[str, Any]] = [{"m": 1.0}, {"m": 0.0}, {"m": [1, 2]}]
            with pytest.raises(MetricValueError, match=r"^log_samples item 2: .*'m'"):
                await tracker.log_samples(TASK.name, docs, outs, metrics)
            with pytest.raises(MetricValueError, match=r"^log_samples item 1: .*collides"):
                await tracker.log_samples(
                    TASK.name, docs[:2], outs[:2], [{"p": 1.0}, {"p_stderr": 1.0}]
                )


async def test_columns_must_match(tmp_path: Path) -> None:
    """Columns of different lengths, a mapping for a column and an undeclared task are refused."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path) as tracker:
            await tracker.log_tasks([TASK])
            docs, outs, metrics = _batch(3)
            with pytest.raises(InvalidSampleError, match="differ in length"):
                await tracker.log_samples(TASK.name, docs, outs[:2], metrics)
            with pytest.raises(InvalidSampleError, match="judgements is a dict"):
                await tracker.log_samples(TASK.name, docs, outs, metrics, {"a": "b"})  # type: ignore[arg-type]
            with pytest.raises(UnknownTaskError):
                await tracker.log_samples("nope|x|0", docs, outs, metrics)
            assert tracker.samples_logged == 0


async def test_a_big_batch_ships_in_frames_of_batch_size(tmp_path: Path) -> None:
    """100 items with batch_size 16 make 7 journal frames, not one of 100 samples."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=16) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            before = tracker.journal_stats().appended
            await tracker.log_samples(TASK.name, *_batch(100))
            await tracker.flush()
            assert tracker.journal_stats().appended - before == 7
            await tracker.save()


async def test_durable_returns_once_the_whole_batch_is_fsynced(tmp_path: Path) -> None:
    """With durable=True every item is inside the fsynced prefix when the call returns."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, durable=True, batch_size=8) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            await tracker.log_samples(TASK.name, *_batch(20))
            stats = tracker.journal_stats()
            assert stats.synced == stats.appended
            await tracker.save()


async def test_a_cancelled_batch_is_logged_and_its_retry_counts_once(tmp_path: Path) -> None:
    """Cancelled once past validation, the batch is recorded; the retry of the same batch is
    skipped item by item, so each doc is saved once."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4, bootstrap_iters=0) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            docs, outs, metrics = _batch(10)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await tracker.log_samples(TASK.name, docs, outs, metrics)
            assert scope.cancelled_caught
            await tracker.log_samples(TASK.name, docs, outs, metrics)  # the retry
            assert tracker.samples_logged == 10
            result = await tracker.save()
    ids = pq.read_table(result.details_paths[TASK.name])["example"].to_pylist()
    assert len(ids) == len(set(ids)) == 10


def test_only_converted_values_skip_the_decode_check() -> None:
    """Our own Structs are built unchecked: any of them in a sample means it is decoded."""
    ours, response = Doc(query="q"), ModelResponse(result=[1.0])
    as_map = {"query": "q"}
    assert not converted(ours, [response])
    assert not converted(as_map, [{"result": [1.0]}, response])
    assert not converted(as_map, response)
    assert converted(as_map, [{"result": [1.0]}])
    assert converted(as_map, {"result": [1.0]})
    assert converted(as_map, None)
    assert converted(msgspec.structs.asdict(ours), ())


_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.floats()), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), st.integers(), max_size=2),
)
_DOC_FIELDS = ("choices", "gold_index", "specific", "id", "stop_sequences", "images", "num_samples")
_RESPONSE_FIELDS = ("input_tokens", "generated_tokens", "text", "logprobs", "output_tokens")
_READ_BACK = msgspec.msgpack.Decoder(ScoredSample)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.fixed_dictionaries(
        {"query": st.text(max_size=5)}, optional=dict.fromkeys(_DOC_FIELDS, _ANY)
    ),
    response=st.fixed_dictionaries({}, optional=dict.fromkeys(_RESPONSE_FIELDS, _ANY)),
)
def test_a_converted_sample_that_is_accepted_reads_back(
    doc: dict[str, Any], response: dict[str, Any]
) -> None:
    """Mappings skip the decode check (msgspec converted them with their types): whatever is
    accepted still decodes as the journal and the details worker will read it."""
    try:
        _, encoded = prepare_sample({TASK.name: TASK}, TASK.name, doc, [response], {"acc": 1.0})
    except EvalStreamError:
        return
    _READ_BACK.decode(encoded)
