"""compare on a task whose details store its metrics as ``{name, value}`` pairs (more than 256
metric names, details/wide.py): paired on the same docs like any other task."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.runs.compare import compare_runs
from evalstream.runs.loading import resolve_run

if TYPE_CHECKING:
    from pathlib import Path

TASK = "wide|t|0"


async def _run(out: Path, shift: int, layout: str) -> str:
    tracker = EvaluationTracker(out, bootstrap_iters=0, details_layout=layout)  # type: ignore[arg-type]
    async with tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TaskSpec(name=TASK)])
        for i in range(40):
            metrics: dict[str, float] = {"acc": float((i + shift) % 2)}
            metrics.update({f"m{i}_{k}": float(k) for k in range(10)})  # 400 names in all
            doc = Doc(query=f"q{i}", choices=["a", "b"], gold_index=0)
            await tracker.log_sample(TASK, doc, [ModelResponse(text=["a"])], metrics)
        return (await tracker.save()).results_path


@pytest.mark.parametrize("layout", ["flat", "lighteval"])
def test_compare_reads_wide_metrics(tmp_path: Path, layout: str) -> None:
    a = anyio.run(_run, tmp_path / "a", 0, layout)
    b = anyio.run(_run, tmp_path / "b", 1, layout)
    rows = compare_runs(resolve_run(a), resolve_run(b), iters=200)
    acc = next(r for r in rows if r.task == TASK and r.metric == "acc")
    assert acc.paired is not None and acc.paired.n == 40, acc
    assert acc.paired.mean_a == 0.5 and acc.paired.test == "McNemar exact"
