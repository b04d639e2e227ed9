"""A run's fixed cost in a daemon (issue 28): what a run with nothing to record does not pay.

An empty run (``async with``, ``log_model_info``, ``save()``) in a long-lived process pays its
fsyncs (docs/design/durability.md) and, besides them, a thread hop per blocking step: these
tests pin that it pays no hop for nothing (no baseline, no values to aggregate, no details to
compile), one hop for its results file, the saved marker and the journal's cleanup, and no
round trip to the details worker when it never sent the worker anything.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, Runtime, TaskSpec

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function this process runs in a worker thread, in order."""
    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


async def _empty_run(runtime: Runtime, out: Path) -> EvaluationTracker:
    async with EvaluationTracker(out, runtime=runtime) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        result = await tracker.save()
    assert result.ok
    return tracker


async def test_an_empty_run_hops_only_for_its_files(tmp_path: Path, hops: list[str]) -> None:
    """The start's one step, the journal's writes, the save intent, and the results file with
    the saved marker and the cleanup: nothing else goes to a thread."""
    with anyio.fail_after(60):
        async with Runtime() as runtime:
            await _empty_run(runtime, tmp_path)
            del hops[:]
            await _empty_run(runtime, tmp_path)
            seen = Counter(hops)
    journal = seen.pop("Journal._write_sync")
    assert 1 <= journal <= 2  # the model info alone, or with the end of run; the fsync with it
    assert seen == {
        "RunFolder.prepare": 1,
        "RunFolder.set_status.<locals>.write": 2,  # the intent; the results file, saved, cleanup
    }


async def test_a_run_without_samples_never_asks_the_details_workers(tmp_path: Path) -> None:
    """No ``Open``, no ``End`` round trip: such a run saves even with its worker gone, and a
    run that logs a sample opens its channels."""
    with anyio.fail_after(60):
        async with Runtime(details_workers=1) as runtime:
            async with EvaluationTracker(tmp_path, runtime=runtime) as tracker:
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
                await tracker.flush()
                (pid,) = runtime.pool.pids
                os.kill(pid, signal.SIGKILL)  # the pool reaps it at its next start or close
                result = await tracker.save()
            assert result.ok, result.outputs
            assert result.results["summary_tasks"] == {}
            assert tracker._coordinator is not None
            assert not tracker._coordinator.details.opened

            task = TaskSpec(name="t|a|0")
            async with EvaluationTracker(tmp_path, runtime=runtime) as tracker:
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
                await tracker.log_tasks([task])
                doc = Doc(query="q", choices=["a"], gold_index=0, id="0")
                await tracker.log_sample(task.name, doc, ModelResponse(text=["a"]), {"acc": 1.0})
                result = await tracker.save()
            assert result.samples == {task.name: 1}
            assert tracker._coordinator is not None and tracker._coordinator.details.opened
