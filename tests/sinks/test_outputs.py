"""The outputs' registry: a new output is one module and one registration, and save() runs
every registered output concurrently, each after the outputs it names."""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import ClassVar

import anyio
import pytest

import _memory_output
from evalstream import EvaluationTracker, ModelInfo, OutputOutcome, RunResult
from evalstream._options import Options
from evalstream.details.protocol import DetailsWritten
from evalstream.sinks import outputs
from evalstream.sinks.outputs import SavedRun, outcome, write_outputs

from _workload import TASKS, sample


@pytest.fixture
def memory_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(outputs.REGISTRY, "memory", "_memory_output")
    _memory_output.SEEN.clear()


async def _save(out: Path, *, save_details: bool = True) -> RunResult:
    rng = random.Random(3)
    async with EvaluationTracker(out, save_details, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks(TASKS[:2])
        for i in range(20):
            task = TASKS[i % 2]
            await tracker.log_sample(task.name, *sample(rng, task, i))
        return await tracker.save()


async def test_a_registered_output_runs_after_local_with_its_outcome(
    tmp_path: Path, memory_registered: None
) -> None:
    """save() builds the registered output from the options and gives it the local outcome."""
    with anyio.fail_after(60):
        result = await _save(tmp_path)
    kept, local = result.output("memory"), result.output("local")
    assert kept is not None and kept.ok and local is not None
    assert kept.detail == {
        "tasks": sorted(t.name for t in TASKS[:2]),
        "local_results": local.detail["results"],
    }
    ((run, before),) = _memory_output.SEEN
    assert run.results_json == Path(result.results_path).read_bytes()
    assert set(before) == {"local"}


async def test_the_options_an_output_owns_can_switch_it_off(
    tmp_path: Path, memory_registered: None
) -> None:
    """A build() that returns None leaves the output out of the run (and of RunResult)."""
    with anyio.fail_after(60):
        result = await _save(tmp_path, save_details=False)
    assert result.output("memory") is None and not _memory_output.SEEN
    assert [o.name for o in result.outputs] == ["local"]


class _Slow:
    name: ClassVar[str] = "first"
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def write(self, run: SavedRun, before: object) -> OutputOutcome:
        self.log.append("first starts")
        await anyio.sleep(0.05)
        self.log.append("first ends")
        return outcome(self.name, ok=False, error="the destination is down")


class _Waiter:
    name: ClassVar[str] = "second"
    after: ClassVar[tuple[str, ...]] = ("first",)

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def write(self, run: SavedRun, before: dict[str, OutputOutcome]) -> OutputOutcome:
        self.log.append(f"second sees {sorted(before)}")
        return outcome(self.name, ok=before["first"].ok)


class _Free:
    name: ClassVar[str] = "free"
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def write(self, run: SavedRun, before: object) -> OutputOutcome:
        self.log.append("free runs")
        return outcome(self.name)


async def test_write_outputs_orders_by_after_and_keeps_failures_as_data() -> None:
    """An output waits for the ones it names (not for others); a failure is an outcome."""
    log: list[str] = []
    run = SavedRun(
        model_name="m",
        date_id="d",
        results={},
        results_json=b"{}",
        details=DetailsWritten(paths={}, warnings=[]),
    )
    with anyio.fail_after(10):
        got = await write_outputs([_Waiter(log), _Slow(log), _Free(log)], run)
    assert [o.name for o in got] == ["second", "first", "free"]
    assert [o.ok for o in got] == [False, False, True]
    assert log.index("second sees ['first']") > log.index("first ends")
    assert log.index("free runs") < log.index("first ends")  # free did not wait


def test_each_registered_output_owns_its_own_options() -> None:
    """Every output names the tracker options it owns; they are Options fields, and no two
    outputs own the same one (an option configures one destination)."""
    owners: dict[str, str] = {}
    for name, module in outputs.REGISTRY.items():
        (cls,) = [
            v
            for v in vars(importlib.import_module(module)).values()
            if isinstance(v, type) and getattr(v, "name", None) == name and hasattr(v, "owns")
        ]
        for option in cls.owns:
            assert option in Options.__struct_fields__, f"{name} owns {option!r}: not an option"
            assert option not in owners, f"{option} is owned by {owners.get(option)} and {name}"
            owners[option] = name
    assert owners["push_to_hub"] == "hub" and owners["push_to_tensorboard"] == "tensorboard"
    assert owners["use_wandb"] == "wandb"
