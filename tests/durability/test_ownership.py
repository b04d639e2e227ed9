"""One owner per run: the live run, a recover, a resume hold the run's lock; liveness is read
from the lock (not pids and clocks); paths are absolute; ``recover OUTPUT_DIR`` recovers every
run it can and reports the others."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalstream import RunBusyError, RunStateError
from evalstream.durability.owner import claim
from evalstream.runs.catalog import list_runs

CHILD = Path(__file__).parents[1] / "killpoint_child.py"


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVALSTREAM_KILL_AT"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def die(out: Path, mode: str = "die", cwd: Path | None = None) -> Path:
    """A dead run (SIGKILLed after HALF samples, flushed) in ``out``; its run folder."""
    base = (cwd / out) if cwd is not None else out
    before = set(base.glob(".evalstream/*"))
    done = run([sys.executable, str(CHILD), mode, str(out), "flat"], cwd=cwd)
    assert done.returncode == -9, done.stderr[-2000:]
    (folder,) = set(base.glob(".evalstream/*")) - before
    return folder


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "evalstream.cli.main", *args], cwd=cwd)


def results(out: Path) -> list[Path]:
    return sorted(out.glob("results/**/results_*.json"))


def test_a_second_recover_is_refused_naming_the_holder(tmp_path: Path) -> None:
    dead = die(tmp_path / "out")
    with claim(dead, "recover"):  # as a recover in another process holds it
        done = cli("recover", str(dead))
        assert done.returncode != 0
        assert f"held by recover, pid {os.getpid()}" in done.stderr + done.stdout
        assert results(tmp_path / "out") == []
    assert cli("recover", str(dead)).returncode == 0
    assert len(results(tmp_path / "out")) == 1


def test_two_recovers_at_once_write_one_results_file(tmp_path: Path) -> None:
    dead = die(tmp_path / "out")
    env = {k: v for k, v in os.environ.items() if k != "EVALSTREAM_KILL_AT"}
    argv = [sys.executable, "-m", "evalstream.cli.main", "recover", str(dead)]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        p.communicate(timeout=120)
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0, codes
    assert len(results(tmp_path / "out")) == 1


@pytest.mark.parametrize("step", [2.0, 3600.0, -3600.0])
def test_a_stepped_clock_never_makes_a_live_run_dead(tmp_path: Path, step: float) -> None:
    """The marker's start time off by a clock step (what a step between the run's start and
    the check does to pid-and-start-time liveness): the run is alive while its process is."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "EVALSTREAM_KILL_AT"}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "live", str(out)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("WORKDIR "), line
        folder = Path(line.split(" ", 1)[1].strip())
        status = json.loads((folder / "status.json").read_text())
        status["start_time"] -= step
        (folder / "status.json").write_text(json.dumps(status))
        (entry,) = list_runs(str(out))
        assert entry.status == "running", entry
        done = cli("recover", str(out))
        assert "no dead runs" in done.stdout, done.stdout + done.stderr
        with pytest.raises(RunBusyError, match="held by the live run"):
            claim(folder, "recover")
    finally:
        assert proc.stdin is not None
        proc.communicate(timeout=60)
    (entry,) = list_runs(str(out))
    assert entry.status != "running"


def test_relative_output_dir_is_recorded_absolute_and_a_moved_run_recovers_in_place(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    folder = die(Path("out"), cwd=work)
    settings = json.loads((folder / "run.json").read_text())
    assert settings["output_dir"] == str(work / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("recover", str(folder), cwd=elsewhere).returncode == 0
    assert len(results(work / "out")) == 1 and list(elsewhere.iterdir()) == []
    # a run folder moved with its output folder recovers where it now is
    moved_from = die(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert (
        cli("recover", str(tmp_path / "b" / moved_from.relative_to(tmp_path / "a"))).returncode == 0
    )
    assert len(results(tmp_path / "b")) == 1 and not (tmp_path / "a").exists()


def test_recover_output_dir_recovers_every_run_it_can_and_reports_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    die(out, "nomodel")
    good = die(out)
    folders = sorted(out.glob(".evalstream/*"))
    for attempt in range(3):
        done = cli("recover", str(out))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "never logged its model" in done.stdout
        assert "1 of 2 run(s) not recovered" in done.stdout or attempt > 0
        assert sorted(out.glob(".evalstream/*")) == folders  # no run folder is added
    assert json.loads((good / "status.json").read_text())["state"] == "recovered"
    assert len(results(out)) == 1
    with pytest.raises(RunStateError, match="already recovered"):
        claim_dead_state(good)


def claim_dead_state(folder: Path) -> None:
    from evalstream.durability.resume import claim_dead

    lock = claim_dead(folder, "recover").lock
    lock.release()


def test_a_dead_shard_attempt_is_never_recovered_as_a_run(tmp_path: Path) -> None:
    """A shard attempt killed in save() is finished by its re-run (which marks the dead
    attempt's folder resumed) and merge; ``recover OUTPUT_DIR`` never makes it a run."""
    out = tmp_path / "out"
    env = {**os.environ, "EVALSTREAM_KILL_AT": "save.ended"}
    for index in ("0", "1"):
        done = subprocess.run(
            [sys.executable, str(CHILD), "shard", str(out), index],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == -9, done.stderr[-2000:]
    done = cli("recover", str(out))
    assert "a dead shard attempt" in done.stdout and results(out) == [], done.stdout
    assert run([sys.executable, str(CHILD), "shard", str(out), "0"]).returncode == 0
    states = [json.loads(p.read_text()) for p in out.glob(".evalstream/*/status.json")]
    assert sorted(s["state"] for s in states) == ["resumed", "running", "saved"]
    assert [p.name for p in out.glob(".evalstream/*/predecessor")] == []
    assert run([sys.executable, str(CHILD), "shard", str(out), "1"]).returncode == 0
    assert run([sys.executable, str(CHILD), "merge", str(out)]).returncode == 0
    assert cli("recover", str(out)).returncode == 0
    assert len(results(out)) == 1
    assert {e.status for e in list_runs(str(out))} <= {"resumed", "saved"}
