"""A truncated or wrong-shaped results file beside good runs: every command names it and goes
on (``ls`` lists it ``damaged``; show, compare and report over the folder skip it); given as
the one file, a command says what is wrong with it, never a traceback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from evalstream.cli.main import main
from evalstream.runs.catalog import list_runs

from _runs import saved_run

if TYPE_CHECKING:
    from pathlib import Path

DAMAGED = {
    "2026-01-01T00-00-00": '{"config_general": {"model_na',  # cut short
    "2026-01-02T00-00-00": "[1, 2, 3]",  # not an object
    "2026-01-03T00-00-00": '{"results": 5}',  # a section of the wrong shape
    "2026-01-04T00-00-00": '{"results": {"t|0": [0.5]}}',  # a task row of the wrong shape
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    good = saved_run(tmp_path, skill=0.6)
    models = tmp_path / "results" / good.model_name
    for date, text in DAMAGED.items():
        (models / f"results_{date}.json").write_text(text)
    return tmp_path


def test_ls_lists_each_damaged_file_and_the_good_run(folder: Path) -> None:
    entries = list_runs(str(folder))
    damaged = [e for e in entries if e.status == "damaged"]
    assert sorted(e.date_id for e in damaged) == sorted(DAMAGED)
    assert all("is not a" in e.note and "results_" in e.note for e in damaged)
    assert [e.status for e in entries if e.status != "damaged"] == ["saved"]


def test_commands_over_the_folder_skip_them(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", str(folder)]) == 0
    assert main(["ls", "--json", str(folder)]) == 0
    assert main(["show", str(folder), "--latest"]) == 0
    assert main(["report", str(folder), "-o", str(tmp_path / "r.html")]) == 0
    assert "Traceback" not in capsys.readouterr().out
    assert main(["query", str(folder), "select count(*) as n from results", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] > 0


@pytest.mark.parametrize("date", sorted(DAMAGED))
def test_one_damaged_file_given_is_named(
    folder: Path, date: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next(folder.glob(f"results/**/results_{date}.json"))
    assert main(["show", str(path)]) == 2
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a" in err and "Traceback" not in err
