"""Crash tests in the manner of SQLite's: every step of save, recover, resume and merge that
writes is a named kill point (``durability/killpoints.py``); each is killed in turn in a child
process, the run is then finished as a user would (``evalstream recover OUTPUT_DIR``, or the
merge run again), and the invariants are checked: exactly one results file and one details
folder per evaluation, every acknowledged sample in them exactly once (details rows and metric
values), and every run folder saved, recovered, resumed or abandoned, none left dead. A second
recover changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import killpoint_child as child
from evalstream.durability.killpoints import POINTS

CHILD = Path(__file__).parents[1] / "killpoint_child.py"
SRC = Path(__file__).parents[2] / "src" / "evalstream"
SETTLED = {"saved", "recovered", "resumed", "abandoned"}
EVERY = child.items()
HALF = child.items(0, child.HALF)

SAVE = ["save.ended", "save.intent", "save.details", "save.outputs", "save.marked"]
SCENARIOS = [
    *[("save", p, layout) for p in SAVE for layout in ("flat", "lighteval")],
    *[("save-tb", p, "flat") for p in ["save.details", "save.outputs", "save.marked"]],
    *[("recover", p, "flat") for p in ["recover.claimed", "recover.replayed", "recover.intent"]],
    *[("recover", p, "lighteval") for p in [*SAVE, "recover.saved"]],
    *[("resume", p, "flat") for p in ["resume.replaying@5", "resume.replayed", "resume.marked"]],
    *[("resume", p, "lighteval") for p in SAVE[1:4]],
    *[("merge", p, "flat") for p in ["merge.replayed", "merge.intent", *SAVE[1:4], "merge.saved"]],
]


def run_child(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVALSTREAM_KILL_AT"}
    if kill_at is not None:
        env["EVALSTREAM_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, str(CHILD), *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def killed(done: subprocess.CompletedProcess[str], point: str | None) -> None:
    """The child died by SIGKILL: at ``point`` (so the point was reached), or by itself."""
    assert done.returncode == -signal.SIGKILL, f"{point} not reached: {done.stderr[-2000:]}"


def cli_recover(out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVALSTREAM_KILL_AT"}
    return subprocess.run(
        [sys.executable, "-m", "evalstream.cli.main", "recover", str(out)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dead run per layout (half the samples), and the two saved shards of run ``k``."""
    base = tmp_path_factory.mktemp("templates")
    made = {}
    for layout in ("flat", "lighteval"):
        out = base / f"dead-{layout}"
        done = run_child("die", str(out), layout)
        killed(done, None)
        made[layout] = out
    shards = base / "shards"
    for index in ("0", "1"):
        assert run_child("shard", str(shards), index).returncode == 0
    made["shards"] = shards
    return made


def queries(table: object, layout: str) -> list[str]:
    if layout == "flat":
        return table.column("example").to_pylist()  # type: ignore[attr-defined, no-any-return]
    return [d["query"] for d in table.column("doc").to_pylist()]  # type: ignore[attr-defined]


def check(out: Path, expected: list[tuple[str, int]], layout: str) -> None:
    """The invariants: one results file and one details folder, every sample exactly once."""
    results = sorted(out.glob("results/**/results_*.json"))
    assert len(results) == 1, results
    date_id = results[0].stem.removeprefix("results_")
    folders = sorted((out / "details" / child.MODEL).iterdir())
    assert [f.name for f in folders] == [date_id], folders
    rows: Counter[str] = Counter()
    for path in folders[0].glob("*.parquet"):
        rows.update(queries(pq.read_table(path), layout))
    want = Counter(child.query(t, i) for t, i in expected)
    assert rows == want, (sorted(rows - want)[:5], sorted(want - rows)[:5])
    final = json.loads(results[0].read_text())["results"]
    for task in child.TASKS:
        values = [i * i for t, i in expected if t == task.name]
        assert final[task.name]["score"] == pytest.approx(sum(values) / len(values))
    for status in out.glob(".evalstream/*/status.json"):
        state = json.loads(status.read_text())["state"]
        assert state in SETTLED, (status, state)


def test_every_kill_point_is_enumerated_and_tried() -> None:
    """Each ``reached("...")`` in the code is a registered point, and each is tried here."""
    used = set()
    for path in SRC.rglob("*.py"):
        used.update(re.findall(r'reached\("([a-z.]+)"\)', path.read_text()))
    assert used == set(POINTS)
    tried = {point.split("@")[0] for _, point, _ in SCENARIOS}
    assert tried == set(POINTS)


@pytest.mark.parametrize(("command", "point", "layout"), SCENARIOS)
def test_killed_at_each_point_then_finished_leaves_one_whole_run(
    tmp_path: Path, templates: dict[str, Path], command: str, point: str, layout: str
) -> None:
    out = tmp_path / "out"
    expected = EVERY
    if command in ("save", "save-tb"):
        killed(run_child(command, str(out), layout, kill_at=point), point)
        # a save that wrote its results file is completed as it was (not redone as partial)
        finished = point in ("save.outputs", "save.marked")
        (marker,) = out.glob(".evalstream/*/status.json")
    elif command == "merge":
        shutil.copytree(templates["shards"], out)
        killed(run_child("merge", str(out), kill_at=point), point)
        again = run_child("merge", str(out))
        assert again.returncode == 0, again.stderr[-3000:]
    else:
        shutil.copytree(templates[layout], out)
        (dead,) = (p.parent for p in out.glob(".evalstream/*/status.json"))
        if command == "recover":
            expected = HALF
            killed(run_child("recover", str(dead), kill_at=point), point)
        else:
            # killed before the hand-over, the dead run is the run; after it, the new one
            handed_over = not point.startswith(("resume.replaying", "resume.replayed"))
            expected = EVERY if point.startswith("save.") else HALF
            killed(run_child("resume", str(out), str(dead), layout, kill_at=point), point)
            assert handed_over == (
                json.loads((dead / "status.json").read_text())["state"] == "resumed"
            )
    done = cli_recover(out)
    assert done.returncode == 0, done.stdout + done.stderr
    check(out, expected, layout)
    if command in ("save", "save-tb"):
        state = json.loads(marker.read_text())["state"]
        assert state == ("saved" if finished else "recovered"), state
        (results,) = out.glob("results/**/results_*.json")
        assert ("evalstream" in json.loads(results.read_text())) != finished
    snapshot = sorted(p.relative_to(out) for p in out.rglob("*") if ".evalstream" not in p.parts)
    again = cli_recover(out)
    assert again.returncode == 0 and "no dead runs" in again.stdout, again.stdout + again.stderr
    assert (
        sorted(p.relative_to(out) for p in out.rglob("*") if ".evalstream" not in p.parts)
        == snapshot
    )


@pytest.mark.parametrize("point", ["save.intent", "save.details", "save.outputs"])
def test_resuming_a_run_killed_in_its_save_leaves_one_run(tmp_path: Path, point: str) -> None:
    """A save killed before its results file is redone by the resumed run under its date (no
    orphan details folder); one killed after it was complete: resume refuses, marks it saved."""
    out = tmp_path / "out"
    killed(run_child("save", str(out), "lighteval", kill_at=point), point)
    (dead,) = (p.parent for p in out.glob(".evalstream/*/status.json"))
    done = run_child("resume", str(out), str(dead), "lighteval")
    if point == "save.outputs":
        assert done.returncode != 0 and "had finished its save" in done.stderr, done.stderr
        assert json.loads((dead / "status.json").read_text())["state"] == "saved"
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    assert cli_recover(out).returncode == 0
    check(out, EVERY, "lighteval")
