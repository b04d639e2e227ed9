"""A caller's own deadline never costs another caller a sample, and a retry never counts twice.

Servers wrap each request in a timeout: many producers log concurrently, some calls under a
random ``move_on_after``, and a call that raised the cancellation is retried once with the same
doc. The contract under test: a ``log_sample`` that got past validation has recorded its sample
(whether it returned or raised the cancellation), and logging the same (task, doc, scope) again
after a cancelled call is skipped once. So the saved run holds every doc exactly once, in the
details parquet and in what the metrics actor aggregated.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream import RunResult

TASKS = ("cancel|a|0", "cancel|b|0")
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


def _check_once(
    tracker: EvaluationTracker,
    result: RunResult,
    expected: set[Key],
    values: dict[str, list[float]],
) -> None:
    """The run holds ``expected`` exactly once, in the details and the metrics, and is ok."""
    details, metrics = _saved(tracker, result)
    assert result.ok, result.outputs
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
