"""A real tracker's live estimates and its comparison against a saved baseline run.

The baseline is recorded and saved by a tracker, found the ways ``evalstream show`` finds a run,
and every new sample is paired with the baseline's on the same doc; ``progress()`` carries the
estimates and the verdicts, and ``examples/early_stop.py`` stops on them.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

import evalstream
from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream._errors import ConfigError
from evalstream.run.baseline import load_baseline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import early_stop

TASKS = [TaskSpec(name="suite|up|0"), TaskSpec(name="suite|same|0")]
DOCS = 600


def _doc(task: str, i: int) -> Doc:
    return Doc(query=f"{task} q{i % (DOCS // 2)}", id=str(i))  # every text twice: repeats pair


def _right(task: str, i: int, model: str) -> float:
    """Baseline right on 50 % of docs; the new model right on 80 % of ``up``, same on ``same``."""
    hard = random.Random(f"{task}{i}").random()
    if model == "new" and task == "suite|up|0":
        return float(hard < 0.8)
    return float(hard < 0.5)


async def _record(out: Path, model: str, **options: object) -> EvaluationTracker:
    """Log every doc of both tasks as ``model``; the baseline is saved, the new run flushed and
    its progress kept in ``seen``."""
    tracker = EvaluationTracker(out, bootstrap_iters=0, batch_size=32, **options)  # type: ignore[arg-type]
    async with tracker:
        await tracker.log_model_info(ModelInfo(model_name=f"org/{model}"))
        await tracker.log_tasks(TASKS)
        for i in range(DOCS):
            for task in TASKS:
                metrics = {"acc": _right(task.name, i, model), "length": 3.0 + i % 7}
                await tracker.log_sample(task.name, _doc(task.name, i), [ModelResponse()], metrics)
        if model == "base":
            await tracker.save()
        else:
            await tracker.flush()
            tracker.seen = tracker.progress()  # type: ignore[attr-defined]
    return tracker


@pytest.mark.parametrize("how", ["results file", "run folder", "run id", "loaded"])
async def test_progress_reaches_a_verdict_against_a_saved_baseline(
    tmp_path: Path, how: str
) -> None:
    """Logged with baseline=, progress() says better where the new model is, equivalent where
    it answers the same, with the estimates of each bounded metric."""
    with anyio.fail_after(60):
        baseline = await _record(tmp_path, "base")
    assert baseline.result is not None
    target: object = {
        "results file": baseline.result.results_path,
        "run folder": str(baseline.workdir),
        "run id": baseline.run_id,
    }.get(how)
    if how == "loaded":  # loaded once, as a daemon comparing many checkpoints would
        target = evalstream.load_baseline(baseline.run_id, output_dir=str(tmp_path))
    with anyio.fail_after(60):
        new = await _record(tmp_path, "new", baseline=target, baseline_margin=0.05)
    progress = new.seen  # type: ignore[attr-defined]
    up, same = progress.baseline["suite|up|0"]["acc"], progress.baseline["suite|same|0"]["acc"]
    assert (up.verdict, up.n) == ("better", DOCS)
    paired = [_right("suite|up|0", i, "new") - _right("suite|up|0", i, "base") for i in range(DOCS)]
    assert up.diff == pytest.approx(sum(paired) / DOCS)  # each doc with its own repeat
    assert 0.0 < up.low <= up.diff <= up.high
    assert (same.verdict, same.diff, same.n) == ("equivalent", 0.0, DOCS)
    assert -0.05 < same.low <= same.high < 0.05
    assert "length" not in progress.baseline["suite|up|0"]  # 3..9: outside [0, 1]
    for task in TASKS:
        estimates = progress.estimates[task.name]
        assert set(estimates) == {"acc"}  # "length" has no sequence
        acc = estimates["acc"]
        mean = sum(_right(task.name, i, "new") for i in range(DOCS)) / DOCS
        assert acc.n == DOCS and acc.mean == pytest.approx(mean)
        assert 0.0 <= acc.low < mean < acc.high <= 1.0
    wire = msgspec.json.decode(msgspec.json.encode(progress))  # what progress_updates() streams
    assert wire["baseline"]["suite|up|0"]["acc"]["verdict"] == "better"


async def test_a_loaded_baseline_pairs_repeats_in_order(tmp_path: Path) -> None:
    """load_baseline numbers a doc text's repeats in file order, as compare pairs them."""
    with anyio.fail_after(60):
        baseline = await _record(tmp_path, "base")
    assert baseline.result is not None
    docs = load_baseline(baseline.result.results_path)
    up = docs.tasks["suite|up|0"]
    assert len(up.index) == DOCS
    assert up.value(("suite|up|0 q3", 1), "acc") == _right("suite|up|0", 3 + DOCS // 2, "base")
    assert up.value(("suite|up|0 q3", 2), "acc") is None


async def test_a_bad_baseline_fails_when_the_run_starts(tmp_path: Path) -> None:
    """A baseline that is not there, or a margin out of range, is a ConfigError at the call."""
    with pytest.raises(ConfigError, match="does not exist"):
        async with EvaluationTracker(tmp_path, baseline=str(tmp_path / "nowhere.json")):
            pass
    with pytest.raises(ConfigError, match="baseline_margin"):
        EvaluationTracker(tmp_path, baseline_margin=-0.1)


async def test_a_resumed_run_counts_the_replayed_samples(tmp_path: Path) -> None:
    """Samples a dead run logged reach the estimates when a resume replays them."""
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=16) as dead:
            await dead.log_model_info(ModelInfo(model_name="org/m"))
            await dead.log_tasks(TASKS[:1])
            for i in range(100):
                await dead.log_sample(TASKS[0].name, _doc("t", i), [ModelResponse()], {"acc": 1})
            await dead.flush()
        async with EvaluationTracker(tmp_path, resume_from=dead.workdir) as alive:
            await alive.flush()
            estimate = alive.progress().estimates[TASKS[0].name]["acc"]
    assert (estimate.n, estimate.mean) == (100, 1.0)


async def test_the_early_stop_example_decides_each_task_and_saves_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/early_stop.py: better, equivalent, worse, each long before its last doc."""
    monkeypatch.setattr(early_stop, "DOCS_PER_TASK", 1500)
    with anyio.fail_after(120):
        await early_stop.main(str(tmp_path), 0.05)
    lines = capsys.readouterr().out.splitlines()
    verdicts = [line.split()[1] for line in lines[:3]]
    assert verdicts == ["better", "equivalent", "worse"]
    assert lines[3].startswith("evaluated ") and "saved" in lines[3]
    spent = int(lines[3].split()[1])
    assert spent < 0.5 * 1500 * 3
