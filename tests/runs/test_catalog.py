"""What `ls` and `show` say about a run folder's contents: incomplete tasks, partial results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.cli.main import main
from evalstream.runs.catalog import Incomplete, incomplete_tasks, list_runs

if TYPE_CHECKING:
    import pytest


async def _short_run(out: Path) -> str:
    """Task a: 1 of its 135 docs logged; task b: all 3 of 3."""
    async with EvaluationTracker(out, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TaskSpec(name="s|a|0", version=1), TaskSpec(name="s|b|0")])
        for task, n in (("s|a|0", 1), ("s|b|0", 3)):
            for i in range(n):
                doc = Doc(query=f"q{i}", choices=["A", "B"], gold_index=0, id=str(i))
                await tracker.log_sample(task, doc, [ModelResponse(result=[0.0])], {"acc": 1.0})
        await tracker.log_num_docs("s|a|0", 135, 135)
        await tracker.log_num_docs("s|b|0", 3, 3)
        return (await tracker.save()).results_path


def test_a_saved_run_with_an_incomplete_task_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls` notes the incomplete task with its counts; `show` names it; nothing else is flagged."""
    results = anyio.run(_short_run, tmp_path)
    (entry,) = list_runs(str(tmp_path))
    assert entry.status == "saved"
    assert entry.note == "1 incomplete task(s): s|a|0 1/135"
    data = json.loads(Path(results).read_text())
    assert incomplete_tasks(data) == [Incomplete("s|a|0", 1, 135)]
    assert main(["show", results]) == 0
    said = capsys.readouterr().out
    assert "INCOMPLETE: s|a|0 logged 1 samples of 135 docs" in said and "s|b|0 logged" not in said
    assert "PARTIAL" not in said


def test_a_run_folder_whose_status_cannot_be_read_is_listed_as_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn status.json: `ls` lists the run `damaged` naming the file; `show` says so too."""
    anyio.run(_short_run, tmp_path)
    (folder,) = tmp_path.glob(".evalstream/*/status.json")
    folder.write_text('{"state": "sav')
    entry, results = sorted(list_runs(str(tmp_path)), key=lambda e: e.status)
    assert (entry.status, results.status) == ("damaged", "saved")  # the results stay listed
    assert entry.note.startswith(f"{folder} cannot be read: ")
    assert main(["show", str(folder.parent)]) == 2
    assert f"is damaged: {folder} cannot be read" in capsys.readouterr().err
