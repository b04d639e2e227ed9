"""A sharded run in `ls`, `show` and `recover`: one line through its life (a shard dies, a partial
merge, the shard re-run, the merge again), never its attempts' folders as runs of their own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from evalstream import ShardInfo
from evalstream.cli.main import main

from _shards import run_shard, workload

if TYPE_CHECKING:
    import pytest

CHILD = Path(__file__).parents[1] / "shard_child.py"
RUN = "job-7"
PER_TASK = 24


def _ls(out: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["ls", str(out), "--json"]) == 0
    entries: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return entries


def _shard_child(out: Path, index: int, *, kill: bool) -> None:
    """Shard ``index`` in a child process; SIGKILLed after its first durable flush if ``kill``."""
    argv = [sys.executable, str(CHILD), str(out), RUN, str(index), "2", str(PER_TASK)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if kill and line.startswith("DURABLE"):
            child.send_signal(signal.SIGKILL)
            break
    child.stdout.close()
    assert child.wait(timeout=120) == (-signal.SIGKILL if kill else 0)


def test_a_sharded_run_is_one_line_with_its_shards_and_its_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shard 0 dies, shard 1 completes: one `sharded` line says so and how to go on; `show`
    and `recover` of an attempt folder explain; after the merges, one `saved` line."""
    out = tmp_path / "out"
    _shard_child(out, 0, kill=True)
    anyio.run(lambda: run_shard(str(out), ShardInfo(run=RUN, index=1, count=2), workload(PER_TASK)))
    merge = f"`evalstream merge {out} --run {RUN}`"
    (entry,) = _ls(out, capsys)
    assert (entry["run_id"], entry["status"], entry["shard"]) == (RUN, "sharded", "2 shards")
    assert entry["model"] == "org/sharded-model" and entry["tasks"] == 5
    assert entry["note"] == (
        f"2 shards: 1 complete, 1 dead (#0); not merged: run shard(s) #0 again (a dead shard "
        f"attempt resumes), then {merge} (or --partial now)"
    )
    shards = {
        json.loads(p.read_text())["shard"]: p.parent for p in out.glob(".evalstream/*/status.json")
    }
    assert sorted(shards) == [f"{RUN} 0/2", f"{RUN} 1/2"]
    dead = shards[f"{RUN} 0/2"]
    for argv in (["show", str(dead)], ["recover", str(dead)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"is an attempt at shard 0 of 2 of the sharded run {RUN}" in err, argv
    assert main(["show", RUN, "--output-dir", str(out)]) == 2
    assert "is a sharded run with no merged results" in capsys.readouterr().err
    assert main(["recover", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"run {RUN} (sharded, 2 shards): 2 shards: 1 complete, 1 dead (#0)" in said

    assert main(["merge", str(out), "--run", RUN, "--partial"]) == 0
    (entry,) = _ls(out, capsys)
    assert entry["status"] == "saved" and entry["results"] and entry["headline"]
    assert entry["note"].startswith(
        "2 shards: 1 complete, 1 dead (#0); merged without them: run shard(s) #0 again"
    )

    _shard_child(out, 0, kill=False)  # resumes the dead attempt and completes
    (entry,) = _ls(out, capsys)
    assert entry["status"] == "sharded"
    assert entry["note"].startswith(  # then the partial results' incomplete tasks
        f"2 shards: 2 complete; merged when shards #0 were unfinished: merge again: {merge}; "
    )
    assert main(["merge", str(out), "--run", RUN]) == 0
    entries = _ls(out, capsys)
    assert sorted((e["run_id"] or "", e["status"]) for e in entries) == [
        ("", "saved"),
        (RUN, "saved"),
    ]
    merged, earlier = sorted(entries, key=lambda e: e["run_id"] is None)
    assert earlier["note"].startswith(f"a merge of sharded run {RUN}; partial")
    assert merged["note"] == "2 shards: 2 complete; merged"
    assert merged["samples"] == 5 * PER_TASK
    shown = json.loads(_show(out, capsys))
    assert shown["results_path"] == merged["results"]


def _show(out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["show", RUN, "--output-dir", str(out), "--json"]) == 0
    return capsys.readouterr().out
