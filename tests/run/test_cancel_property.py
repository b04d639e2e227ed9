"""A caller's own deadline never costs another caller a sample, and a retry never counts twice.

Servers wrap each request in a timeout: many producers log concurrently, some calls under a
random ``move_on_after``, and a call that raised the cancellation is retried once with the same
doc. The contract under test: a ``log_sample`` that got past validation has recorded its sample
(whether it returned or raised the cancellation), and logging the same (task, doc, scope) again
after a cancelled call is skipped once. So the saved run holds every doc exactly once, in the
details parquet and in what the metrics actor aggregated.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pyarrow.parquet as pq
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream._messages import ScoredSample
from evalstream.run.cancelled import CancelledSamples

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream import RunResult

TASKS = ("cancel|a|0", "cancel|b|0")
PRODUCERS = 64
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "small-batches": {"batch_size": 8, "inbox_capacity": 1},
    "durable": {"durable": True},
    "durable-small-batches": {"durable": True, "batch_size": 8, "inbox_capacity": 1},
}
DOCS = {"defaults": 400, "small-batches": 60, "durable": 40, "durable-small-batches": 40}
"""Docs per producer: defaults need full 256-sample batches to meet a full inbox."""

Key = tuple[str, str]


def _doc(p: int, i: int) -> tuple[str, Doc, dict[str, float]]:
    """Producer ``p``'s doc ``i``: its task, the doc (the query is its id) and a unique value."""
    name = f"{p}-{i}"
    return TASKS[(p + i) % 2], Doc(query=name, choices=["A", "B"], id=name), {"v": p * 1e4 + i}


OUTPUTS = [ModelResponse(result=[0.0], input_tokens=[1, 2])]


async def _log(tracker: EvaluationTracker, p: int, i: int, deadline: float | None) -> bool:
    """Log producer ``p``'s doc ``i``, under ``deadline`` seconds if given: True if it raised
    the cancellation (the deadline caught the call inside, not after it returned)."""
    task, doc, metrics = _doc(p, i)
    if deadline is None:
        await tracker.log_sample(task, doc, OUTPUTS, metrics)
        return False
    with anyio.move_on_after(deadline) as scope:
        await tracker.log_sample(task, doc, OUTPUTS, metrics)
    return scope.cancelled_caught


async def _log_many(
    tracker: EvaluationTracker, p: int, indices: list[int], deadline: float | None
) -> bool:
    """``log_samples`` of producer ``p``'s docs ``indices`` (one task), as ``_log`` does one."""
    logged = [_doc(p, i) for i in indices]
    task, docs, metrics = logged[0][0], [d for _, d, _ in logged], [m for _, _, m in logged]
    call = tracker.log_samples(task, docs, [OUTPUTS] * len(docs), metrics)
    if deadline is None:
        await call
        return False
    with anyio.move_on_after(deadline) as scope:
        await call
    return scope.cancelled_caught


async def _start(tracker: EvaluationTracker) -> None:
    await tracker.log_model_info(ModelInfo(model_name="org/model"))
    await tracker.log_tasks([TaskSpec(name=t, version=1) for t in TASKS])


def _saved(tracker: EvaluationTracker, result: RunResult) -> tuple[Counter[Key], Counter[Key]]:
    """Every (task, doc id) in the details parquet, and in the metrics actor's values."""
    details: Counter[Key] = Counter()
    for task, path in result.details_paths.items():
        details.update((task, q) for q in pq.read_table(path)["example"].to_pylist())
    assert tracker._coordinator is not None
    metrics: Counter[Key] = Counter()
    for task, values in tracker._coordinator.metrics.values().items():
        metrics.update((task, f"{int(v) // 10_000}-{int(v) % 10_000}") for v in values["v"])
    return details, metrics


def _per_task(counts: Counter[Key]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (task, _), n in counts.items():
        out[task] = out.get(task, 0) + n
    return out


def _check_once(
    tracker: EvaluationTracker,
    result: RunResult,
    expected: set[Key],
    values: dict[str, list[float]],
) -> None:
    """The run holds ``expected`` exactly once, in the details and the metrics, and is ok;
    the batcher's count of what it handed to the journal matches what the actors hold."""
    details, metrics = _saved(tracker, result)
    assert result.ok, result.outputs
    meter = tracker._batch.meter
    assert meter.unrouted(_per_task(metrics)) == {}
    assert meter.unrouted(_per_task(details), "details") == {}
    for name, counts in (("details", details), ("metrics", metrics)):
        twice = sorted(k for k, n in counts.items() if n > 1)
        assert not twice, f"{name}: {len(twice)} counted twice: {twice[:5]}"
    assert set(details) == expected, (
        f"details: {len(expected - set(details))} missing, {len(set(details) - expected)} extra"
    )
    assert set(metrics) == expected, (
        f"metrics: {len(expected - set(metrics))} missing, {len(set(metrics) - expected)} extra"
    )
    assert sum(details.values()) == sum(metrics.values()) == len(expected)
    for task, vs in values.items():
        assert result.results["results"][task]["v"] == pytest.approx(sum(vs) / len(vs))


@pytest.mark.parametrize(
    ("config", "batches"),
    [(c, False) for c in sorted(CONFIGS)] + [("defaults", True), ("durable-small-batches", True)],
)
async def test_random_deadlines_keep_every_sample_once(
    tmp_path: Path, config: str, batches: bool
) -> None:
    """64 producers, ~30% of calls under a random 0-20 ms deadline, a cancelled call retried
    once (the retry under a deadline too, sometimes): every doc is saved exactly once.
    ``batches``: every other producer logs 1-6 docs a call through ``log_samples``."""
    docs = DOCS[config]
    cancelled = 0

    async def batch_producer(p: int) -> None:
        nonlocal cancelled
        rng = random.Random(p)
        for start in range(0, docs, 6):
            chunk = range(start, min(docs, start + rng.randint(1, 6)))
            rest = range(chunk.stop, min(docs, start + 6))  # the chunk's tail: one by one
            for parity in (0, 1):  # a call holds one task's docs
                indices = [i for i in chunk if (p + i) % 2 == parity]
                deadline = rng.uniform(0, 0.02) if rng.random() < 0.3 else None
                if indices and await _log_many(tracker, p, indices, deadline):
                    cancelled += 1
                    await _log_many(tracker, p, indices, deadline and rng.uniform(0, 0.02))
            for i in rest:
                await _log(tracker, p, i, None)

    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, bootstrap_iters=0, **CONFIGS[config]) as tracker:
            await _start(tracker)

            async def producer(p: int) -> None:
                nonlocal cancelled
                rng = random.Random(p)
                for i in range(docs):
                    deadline = rng.uniform(0, 0.02) if rng.random() < 0.3 else None
                    if await _log(tracker, p, i, deadline):
                        cancelled += 1
                        await _log(tracker, p, i, deadline and rng.uniform(0, 0.02))

            async with anyio.create_task_group() as tg:
                for p in range(PRODUCERS):
                    tg.start_soon(batch_producer if batches and p % 2 else producer, p)
            result = await tracker.save()
        keys = [(_doc(p, i)[0], f"{p}-{i}") for p in range(PRODUCERS) for i in range(docs)]
        values: dict[str, list[float]] = {}
        for p in range(PRODUCERS):
            for i in range(docs):
                task, _, metrics = _doc(p, i)
                values.setdefault(task, []).append(metrics["v"])
        _check_once(tracker, result, set(keys), values)
    assert cancelled > 0, "no call was cancelled inside: the test proves nothing"


async def _blocked_metrics(tracker: EvaluationTracker, gate: anyio.Event) -> None:
    """Make the metrics actor wait on ``gate`` before each live batch: its inbox fills."""
    assert tracker._coordinator is not None
    metrics = tracker._coordinator.metrics
    handle = metrics.handle_scores

    async def held(scores: Any) -> None:
        await gate.wait()
        await handle(scores)

    metrics.handle_scores = held  # type: ignore[method-assign]


async def _cancel_while_routing(tracker: EvaluationTracker, p: int, i: int) -> bool:
    """Log doc ``(p, i)`` while the metrics inbox is full, under a 50 ms deadline; the gate
    opens 100 ms later. True if the call raised the cancellation."""
    gate = anyio.Event()
    await _blocked_metrics(tracker, gate)
    raised = False

    async def call() -> None:
        nonlocal raised
        raised = await _log(tracker, p, i, 0.05)

    async with anyio.create_task_group() as tg:
        await _log(tracker, 0, 0, None)  # the actor takes it and waits on the gate
        await _log(tracker, 0, 1, None)  # fills the inbox (capacity 1)
        tg.start_soon(call)
        await anyio.sleep(0.1)
        gate.set()
    return raised


async def test_cancelled_call_keeps_its_sample(tmp_path: Path) -> None:
    """The contract: a call cancelled while its batch waits on a full inbox (and then on the
    fsync) raised, yet its sample is saved, once, with nobody retrying it."""
    with anyio.fail_after(30):
        async with EvaluationTracker(
            tmp_path, bootstrap_iters=0, durable=True, batch_size=1, inbox_capacity=1
        ) as tracker:
            await _start(tracker)
            assert await _cancel_while_routing(tracker, 1, 0)
            result = await tracker.save()
    logged = [_doc(0, 0), _doc(0, 1), _doc(1, 0)]
    values: dict[str, list[float]] = {}
    for task, _, metrics in logged:
        values.setdefault(task, []).append(metrics["v"])
    _check_once(tracker, result, {(task, doc.id) for task, doc, _ in logged}, values)


@pytest.mark.parametrize("durable", [False, True])
async def test_cancelled_then_retried_sample_counts_once(tmp_path: Path, durable: bool) -> None:
    """A call cancelled inside ``log_sample`` (here: before it could ever wait), retried with the
    same doc and cancelled again, then retried to the end, leaves one row and one metric value."""
    with anyio.fail_after(30):
        async with EvaluationTracker(
            tmp_path, bootstrap_iters=0, durable=durable, batch_size=1
        ) as tracker:
            await _start(tracker)
            task, doc, metrics = _doc(0, 0)
            for _ in range(2):  # the call, then its retry: both raise the cancellation
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await tracker.log_sample(task, doc, OUTPUTS, metrics)
                assert scope.cancelled_caught
            await tracker.log_sample(task, doc, OUTPUTS, metrics)  # the retry that returns
            assert tracker.samples_logged == 1
            other, doc1, metrics1 = _doc(0, 1)
            await tracker.log_sample(other, doc1, OUTPUTS, metrics1)
            result = await tracker.save()
    _check_once(tracker, result, {(task, "0-0"), (other, "0-1")}, {task: [0.0], other: [1.0]})


def test_a_retry_is_skipped_once_per_cancelled_call() -> None:
    """Keys are counted and scope-aware: two cancelled logs of a doc skip two retries, a
    details-only log of it is not a retry, and a skipped key is forgotten."""
    both = ScoredSample(task_name="t", doc=Doc(query="q", id="7"), outputs=[], metrics={})
    details = msgspec.structs.replace(both, scope="details")
    by_query = msgspec.structs.replace(both, doc=Doc(query="q"))
    cancelled = CancelledSamples()
    assert not cancelled.retried(both)
    cancelled.remember([both, both, by_query])
    assert len(cancelled) == 3
    assert not cancelled.retried(details)
    assert [cancelled.retried(both) for _ in range(3)] == [True, True, False]
    assert cancelled.retried(msgspec.structs.replace(by_query, metrics={"acc": 1.0}))
    assert len(cancelled) == 0
