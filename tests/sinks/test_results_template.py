"""lighteval 0.13's ``results_path_template``: the results file goes where it says, inside
output_dir only, and recovery and ``save()`` again keep it there."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    TaskSpec,
    UnsafeNameError,
    recover,
)
from evalstream.lighteval.sync import SyncEvaluationTracker

TEMPLATE = "{output_dir}/experiments/{org}_{model}"


async def _run(out: Path, *, save: bool = True, **options: object) -> EvaluationTracker:
    tracker = EvaluationTracker(out, bootstrap_iters=0, results_path_template=TEMPLATE, **options)  # type: ignore[arg-type]
    async with tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/model"))
        await tracker.log_tasks([TaskSpec(name="t|a|0")])
        for i in range(5):
            doc = Doc(query=f"q{i}", choices=["a"], gold_index=0)
            await tracker.log_sample("t|a|0", doc, [ModelResponse(text=["a"])], {"acc": i % 2})
        if save:
            await tracker.save()
        else:
            await tracker.flush()
    return tracker


async def test_results_go_where_the_template_says(tmp_path: Path) -> None:
    tracker = await _run(tmp_path)
    assert tracker.result is not None
    path = Path(tracker.result.results_path)
    assert path.parent == tmp_path / "experiments" / "org_model"
    assert not (tmp_path / "results").exists()


async def test_a_recovered_run_keeps_the_template(tmp_path: Path) -> None:
    tracker = await _run(tmp_path, save=False)
    result = await recover(tracker.workdir)
    assert Path(result.results_path).parent == tmp_path / "experiments" / "org_model"


@pytest.mark.parametrize(
    "template",
    [
        "/etc/{model}",
        "{output_dir}/../{model}",
        "{output_dir}/{secret}",
        "{output_dir}/{",
        "x/{model}",
    ],
)
def test_a_template_outside_output_dir_is_refused_at_construction(
    tmp_path: Path, template: str
) -> None:
    with pytest.raises(UnsafeNameError, match="results_path_template"):
        EvaluationTracker(tmp_path, results_path_template=template)


def test_the_sync_tracker_takes_it(tmp_path: Path) -> None:
    sync = SyncEvaluationTracker(str(tmp_path), results_path_template=TEMPLATE)
    assert sync.tracker.options.results_path_template == TEMPLATE


def test_a_link_in_the_templated_folder_fails_at_log_model_info(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "experiments").symlink_to(elsewhere)

    async def main() -> None:
        async with EvaluationTracker(out, results_path_template=TEMPLATE) as tracker:
            with pytest.raises(UnsafeNameError, match="symbolic link"):
                await tracker.log_model_info(ModelInfo(model_name="org/model"))

    anyio.run(main)
    assert list(elsewhere.iterdir()) == []
