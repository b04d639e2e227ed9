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
from evalstream.durability.runstate import read_status

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


@pytest.mark.parametrize("tensorboard", [False, True])
async def test_the_saved_marker_points_at_the_results_and_the_journal_is_gone(
    tmp_path: Path, tensorboard: bool
) -> None:
    """The local output alone (one hop for the results, the marker, the cleanup) and with a
    second output (the outputs, then the marker and the cleanup) leave the same folder."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, push_to_tensorboard=tensorboard) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            result = await tracker.save()
    assert [o.name for o in result.outputs] == ["local", "tensorboard"][: 1 + tensorboard]
    status = read_status(tracker.workdir)
    assert status is not None
    assert (status.state, status.saving, status.error) == ("saved", None, None)
    assert status.results_path == result.results_path
    assert sorted(p.name for p in tracker.workdir.iterdir()) == ["lock", "run.json", "status.json"]


async def test_a_failed_local_save_keeps_its_intent_and_its_retry_clears_the_error(
    tmp_path: Path,
) -> None:
    """The folded step marks a failed results file ``failed`` with the intent and the journal
    kept; the retry, once the fault is gone, marks it saved with no error left."""
    blocker = tmp_path / "results" / "org" / "m"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where a folder must go")
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            first = await tracker.save()
            failed = read_status(tracker.workdir)
            assert failed is not None and failed.saving is not None
            assert not first.ok and failed.state == "failed" and failed.error
            assert (tracker.workdir / "journal").is_dir()
            blocker.unlink()
            second = await tracker.save()
    assert second.ok
    status = read_status(tracker.workdir)
    assert status is not None
    assert (status.state, status.saving, status.error) == ("saved", None, None)
    assert failed.saving.date_id == second.date_id  # redone under the date it recorded


async def test_a_run_without_samples_never_asks_the_details_workers(tmp_path: Path) -> None:
    """No ``Open``, no ``End`` round trip: such a run saves even with its worker gone, and a
    run that logs a sample opens its channels."""
    with anyio.fail_after(60):
        async with Runtime(details_workers=1) as runtime:
            async with EvaluationTracker(tmp_path, runtime=runtime) as tracker:
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
                await tracker.flush()
                (pid,) = runtime.pool.pids
                exited = os.pidfd_open(pid)  # readable once the process has exited
                os.kill(pid, signal.SIGKILL)  # the pool reaps it at its next start or close
                result = await tracker.save()
            assert result.ok, result.outputs
            assert result.results["summary_tasks"] == {}
            assert tracker._coordinator is not None
            assert not tracker._coordinator.details.opened
            await anyio.wait_readable(exited)  # the next run's start must find it dead
            os.close(exited)

            task = TaskSpec(name="t|a|0")
            async with EvaluationTracker(tmp_path, runtime=runtime) as tracker:
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
                await tracker.log_tasks([task])
                doc = Doc(query="q", choices=["a"], gold_index=0, id="0")
                await tracker.log_sample(task.name, doc, ModelResponse(text=["a"]), {"acc": 1.0})
                result = await tracker.save()
            assert result.samples == {task.name: 1}
            assert tracker._coordinator is not None and tracker._coordinator.details.opened
