"""`evalstream ls / show / compare / recover` on real run folders: saved, SIGKILLed, recovered."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import fsspec
import pytest

from evalstream.cli.main import main
from evalstream.stats.rows import Z95

from _runs import TASKS, killed_run, saved_run


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An output folder with runs of skill 0.5 and 0.6 (saved) and a SIGKILLed run."""
    root = tmp_path_factory.mktemp("out")
    a = saved_run(root, 0.5)
    b = saved_run(root, 0.6)
    dead = killed_run(root, 90)
    return {"root": root, "a": a, "b": b, "dead": dead}


def test_ls_lists_saved_and_dead_runs(out: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    """Every run of the folder with model, status, tasks, samples and headline metric."""
    entries = _json(capsys, ["ls", str(out["root"])])
    assert [e["status"] for e in entries] == ["saved", "saved", "dead"]
    a, _, dead = entries
    assert a["results"] == out["a"].results_path and a["run_id"] == Path(out["a"].workdir).name
    assert (a["model"], a["date_id"], a["tasks"], a["samples"]) == (
        "org/model", out["a"].date_id, 3, 1200,
    )  # fmt: skip
    assert a["headline"]["metric"] == "acc"
    assert a["headline"]["value"] == pytest.approx(out["a"].results["results"]["all"]["acc"])
    assert (dead["model"], dead["samples"], dead["tasks"]) == ("org/model", 90, 3)
    assert dead["run_dir"] == str(out["dead"]) and "recover" in dead["note"]
    assert main(["ls", str(out["root"])]) == 0
    text = capsys.readouterr().out
    assert "3 run(s)" in text and "dead" in text and "acc 0." in text


def test_ls_reads_an_fsspec_url(out: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    """An output folder behind an fsspec URL (here the in-memory file system) is listed."""
    fs = fsspec.filesystem("memory")
    rel = Path(out["a"].results_path).relative_to(out["root"])
    fs.pipe(f"/lsdemo/{rel}", Path(out["a"].results_path).read_bytes())
    try:
        (entry,) = _json(capsys, ["ls", "memory://lsdemo"])
        assert entry["status"] == "saved" and entry["samples"] == 1200
        assert entry["results"] == f"memory:///lsdemo/{rel}"
        shown = _json(capsys, ["show", entry["results"]])
        assert shown["model"] == "org/model"
    finally:
        fs.rm("/lsdemo", recursive=True)


def test_show_gives_results_with_stderr_and_ci(
    out: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A results file, a run folder and OUTPUT_DIR --latest all name a run; CIs are ±1.96 se."""
    by_file = _json(capsys, ["show", out["a"].results_path])
    by_folder = _json(capsys, ["show", out["a"].workdir])
    latest = _json(capsys, ["show", str(out["root"]), "--latest"])
    assert by_file["results"] == by_folder["results"]
    assert latest["results_path"] == out["b"].results_path
    rows = {(r["task"], r["metric"]): r for r in by_file["results"]}
    written = out["a"].results["results"]
    for task in [*TASKS, "all"]:
        row = rows[(task, "acc")]
        assert row["value"] == pytest.approx(written[task]["acc"])
        assert row["stderr"] == pytest.approx(written[task]["acc_stderr"])
        assert row["ci_low"] == pytest.approx(row["value"] - Z95 * row["stderr"])
        assert row["ci_high"] == pytest.approx(row["value"] + Z95 * row["stderr"])
    assert by_file["config"]["model_name"] == "org/model"
    assert "hashes" in by_file["summary"]
    assert main(["show", out["a"].results_path]) == 0
    text = capsys.readouterr().out
    assert "95 % CI" in text and "suite|bench:alpha|0" in text and "config" in text


def test_show_says_what_a_path_is(out: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    """An output folder without --latest, a dead run, a missing path: each gets a clear error."""
    assert main(["show", str(out["root"])]) == 2
    assert "pass --latest" in capsys.readouterr().err
    assert main(["show", str(out["dead"])]) == 2
    assert "evalstream recover" in capsys.readouterr().err
    assert main(["show", str(out["root"] / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_recover_finds_dead_runs_in_an_output_folder(
    out: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recover OUTPUT_DIR` recovers each dead run once; ls then says recovered, show works."""
    root = tmp_path / "out"
    shutil.copytree(out["root"], root, symlinks=True)
    dead = root / ".evalstream" / out["dead"].name
    settings = json.loads((dead / "run.json").read_text())
    settings["output_dir"] = str(root)  # the copy recovers into itself
    (dead / "run.json").write_text(json.dumps(settings))
    assert main(["recover", str(root)]) == 0
    said = capsys.readouterr().out
    assert f"run {dead.name} (dead)" in said and "recovered 90 samples" in said
    entries = _json(capsys, ["ls", str(root)])
    assert [e["status"] for e in entries] == ["saved", "saved", "recovered"]
    recovered = entries[-1]
    assert recovered["run_id"] == dead.name and recovered["samples"] == 90
    assert recovered["note"].startswith("partial")
    shown = _json(capsys, ["show", str(dead)])
    assert shown["evalstream"]["partial"] is True
    assert shown["results_path"] == recovered["results"]
    assert main(["recover", str(root)]) == 0
    assert "no dead runs to recover" in capsys.readouterr().out
    assert main(["recover", str(dead)]) == 2
    assert "already recovered into" in capsys.readouterr().err


def test_ls_says_when_a_results_file_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A run folder whose results file was deleted says so; other folders are not runs."""
    run = saved_run(tmp_path, 0.5, docs=10)
    (tmp_path / ".evalstream" / "shards" / "RUN" / "00000-of-00002").mkdir(parents=True)
    Path(run.results_path).unlink()
    (entry,) = _json(capsys, ["ls", str(tmp_path)])
    assert (
        entry["status"] == "saved" and entry["note"] == f"results file {run.results_path} is gone"
    )
    assert main(["show", run.workdir]) == 2
    assert "gone" in capsys.readouterr().err


def test_recover_says_what_is_true(out: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    """A saved run folder was saved (nothing to recover); a missing path does not exist."""
    assert main(["recover", out["a"].workdir]) == 2
    err = capsys.readouterr().err
    assert "already saved" in err and out["a"].results_path in err and "holds no" not in err
    assert main(["recover", str(out["root"] / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


async def test_ls_shows_a_live_run_as_running(tmp_path: Path) -> None:
    """A run whose process is alive (this one) is `running`, counted from its journal."""
    from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
    from evalstream.runs.catalog import list_runs

    async with EvaluationTracker(tmp_path, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/live"))
        await tracker.log_tasks([TaskSpec(name="t|0", version=1)])
        for i in range(7):
            doc = Doc(query=f"q{i}", choices=["A"], gold_index=0, id=str(i))
            await tracker.log_sample("t|0", doc, [ModelResponse(result=[0.0])], {"acc": 1.0})
        await tracker.flush()
        (entry,) = list_runs(str(tmp_path))
        assert (entry.status, entry.model, entry.samples) == ("running", "org/live", 7)
        assert entry.note == f"the live run, pid {os.getpid()} on {socket.gethostname()}"
        await tracker.save()
    (entry,) = list_runs(str(tmp_path))
    assert entry.status == "saved" and entry.samples == 7


def test_recover_reports_its_progress(tmp_path: Path) -> None:
    """recover(on_progress=...) counts journal bytes up to the journal's size."""
    import anyio

    from evalstream.run.recover import recover

    run_dir = killed_run(tmp_path, 40)
    size = sum(p.stat().st_size for p in (run_dir / "journal").glob("*.wal"))
    seen: list[tuple[int, int]] = []
    anyio.run(lambda: recover(run_dir, on_progress=lambda done, total: seen.append((done, total))))
    assert seen and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_run_ids_ls_prints_name_runs(
    out: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`show ID --output-dir OUT`, `compare ID_A ID_B` in OUT: the ids of `ls` name the runs."""
    a, b, _ = _json(capsys, ["ls", str(out["root"])])
    by_id = _json(capsys, ["show", a["run_id"], "--output-dir", str(out["root"])])
    assert by_id["results_path"] == out["a"].results_path
    by_path = _json(capsys, ["compare", out["a"].results_path, out["b"].results_path])
    monkeypatch.chdir(out["root"])  # a run id of the current folder
    assert _json(capsys, ["compare", a["run_id"], b["run_id"]]) == by_path
    assert main(["show", "20990101T000000-1-abcdef"]) == 2
    err = capsys.readouterr().err
    assert "nor is it a run id of the current folder" in err and "evalstream ls ." in err
    assert main(["show", str(out["root"])]) == 2  # the hint names a run id that works
    assert f"e.g. {b['run_id']} --output-dir {out['root']}" in capsys.readouterr().err


def test_compare_latest_is_the_newest_run_against_the_one_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare OUTPUT_DIR --latest`: the newest run against the newest before it of the same
    model (another model's run in between is skipped); one run of the model is an error."""
    first = saved_run(tmp_path, 0.5, docs=20, model="org/x")
    saved_run(tmp_path, 0.6, docs=20, model="org/y")
    newest = saved_run(tmp_path, 0.7, docs=20, model="org/x")
    pair = _json(capsys, ["compare", str(tmp_path), "--latest"])
    assert (pair["a"], pair["b"]) == (first.results_path, newest.results_path)
    assert main(["compare", str(tmp_path)]) == 2
    assert "or one OUTPUT_DIR with --latest" in capsys.readouterr().err
    saved_run(tmp_path, 0.7, docs=20, model="org/z")
    assert main(["compare", str(tmp_path), "--latest"]) == 2
    assert "holds one saved run of org/z" in capsys.readouterr().err
    both = _json(capsys, ["compare", str(tmp_path), str(tmp_path), "--latest"])
    assert both["a"] == both["b"]  # each OUTPUT_DIR stands for its newest run
