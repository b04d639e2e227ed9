"""push_to_tensorboard on the tracker: scalars written during save(), read back by TensorBoard."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evalstream import EvaluationTracker, ModelInfo, RunInfo

from _workload import TASKS, sample


async def test_save_writes_tensorboard_scalars_at_the_run_step(tmp_path: Path) -> None:
    """Each task metric lands as a scalar at the run info's step, prefixed by the step."""
    rng = random.Random(4)
    tasks = TASKS[:2]
    with anyio.fail_after(60):
        async with EvaluationTracker(
            tmp_path, push_to_tensorboard=True, nanotron_run_info=RunInfo(run="exp", step=1200)
        ) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks(tasks)
            for i in range(100):
                task = tasks[i % 2]
                await tracker.log_sample(task.name, *sample(rng, task, i))
            result = await tracker.save()
    outcome = result.output("tensorboard")
    assert outcome is not None and outcome.ok, outcome
    files = [Path(p) for p in outcome.paths]
    assert files and all(f.name.startswith("0001200_") for f in files)
    assert all(f.parent == tmp_path / "tb" / "exp_eval" for f in files)
    acc = EventAccumulator(str(files[0].parent), size_guidance={"scalars": 0})
    acc.Reload()
    value = result.results["results"]["lb|mmlu:anatomy|5"]["acc"]
    events = acc.Scalars("eval_mmlu/mmlu_anatomy/acc")
    assert [e.step for e in events] == [1200]
    assert events[0].value == pytest.approx(np.float32(value))


async def test_live_scalars_show_progress_before_save(tmp_path: Path) -> None:
    """With live_scalars_every, running means reach TensorBoard while the run goes on."""
    rng = random.Random(5)
    task = TASKS[0]
    with anyio.fail_after(60):
        async with EvaluationTracker(
            tmp_path,
            batch_size=10,
            live_scalars_every=20,
            nanotron_run_info=RunInfo(run="live", step=3),
        ) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([task])
            accs = []
            for i in range(100):
                doc, outputs, metrics = sample(rng, task, i)
                accs.append(metrics["acc"])
                await tracker.log_sample(task.name, doc, outputs, metrics)
            await tracker.flush()
            logdir = tmp_path / "tb" / "live_eval_live" / "step_0000003"
            acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
            acc.Reload()
            tag = next(t for t in acc.Tags()["scalars"] if t.endswith("/acc"))
            events = acc.Scalars(tag)
            assert [e.step for e in events] == [20, 40, 60, 80, 100]
            assert events[1].value == pytest.approx(np.float32(sum(accs[:40]) / 40))
            await tracker.save()
