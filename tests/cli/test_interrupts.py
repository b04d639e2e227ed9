"""Commands cut short, in real subprocesses: a reader that closes the pipe, SIGINT and SIGTERM."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from _terminal import read_terminal
from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

CLI = [sys.executable, "-m", "evalstream.cli.main"]
TASKS = [f"suite|task{k:03d}|0" for k in range(120)]


async def _run(out: Path, model: str, tasks: list[str]) -> str:
    async with EvaluationTracker(out, bootstrap_iters=0, save_details=False) as tracker:
        await tracker.log_model_info(ModelInfo(model_name=model))
        await tracker.log_tasks([TaskSpec(name=t, version=1) for t in tasks])
        for task in tasks:
            for i in range(3):
                doc = Doc(query=f"{task} {i}?", choices=["A", "B"], gold_index=0, id=str(i))
                outputs = [ModelResponse(result=[-0.5]), ModelResponse(result=[-1.0])]
                await tracker.log_sample(task, doc, outputs, {"acc": float(i % 2)})
        return (await tracker.save()).results_path


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two saved runs of 120 tasks (tables of hundreds of lines), then 30 one-task runs (``ls``
    lists them in more than 8 KiB)."""
    root = tmp_path_factory.mktemp("big")
    a = anyio.run(_run, root / "out", "org/a", TASKS)
    b = anyio.run(_run, root / "out", "org/b", TASKS)
    for k in range(30):
        anyio.run(_run, root / "out", f"org/tiny{k}", TASKS[:1])
    return {"out": root / "out", "a": a, "b": b}


def _head(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``evalstream ARGV | head -1``: read one line, close the pipe, wait for the exit.

    The pipe's buffer is shrunk to one page so the command is still writing when it closes.
    """
    child = subprocess.Popen(
        [*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    fcntl.fcntl(child.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    first = child.stdout.readline()
    child.stdout.close()
    err = child.stderr.read()
    child.stderr.close()
    return subprocess.CompletedProcess(argv, child.wait(timeout=120), first, err)


@pytest.mark.parametrize("command", ["show", "compare", "ls --json"])
def test_a_closed_pipe_ends_the_command_quietly(big: dict[str, Any], command: str) -> None:
    """`show | head -1`, `compare | head -1`, `ls --json | head -1`: exit 0, nothing on stderr."""
    argv = {
        "show": ["show", big["a"]],
        "compare": ["compare", big["a"], big["b"], "--iters", "10"],
        "ls --json": ["ls", str(big["out"]), "--json"],
    }[command]
    if command == "ls --json":
        listing = subprocess.run([*CLI, *argv], capture_output=True, text=True, check=True)
        assert len(listing.stdout) > 8192  # more than the pipe and Python's buffer hold
    done = _head(argv)
    assert done.stdout.strip()
    assert (done.returncode, done.stderr) == (0, "")


def _interrupt_demo(out: Path, signum: int) -> tuple[int, str]:
    """Start `demo` with stderr on a terminal, send ``signum`` once 300 samples are logged;
    return its exit code and everything it drew on the terminal."""
    primary, secondary = os.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    argv = [*CLI, "demo", "--samples", "400000", "--output-dir", str(out)]
    child = subprocess.Popen(
        argv, stderr=secondary, stdout=subprocess.DEVNULL, env=env, start_new_session=True
    )
    os.close(secondary)
    sent = False

    def signal_once_logging(seen: str) -> None:
        nonlocal sent
        counts = [int(n) for n in re.findall(r"(\d+)/400000", seen)]
        if not sent and counts and max(counts) >= 300:
            child.send_signal(signum)
            sent = True

    seen = read_terminal(primary, signal_once_logging)
    assert sent, seen
    return child.wait(timeout=60), seen


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_ends_the_demo_with_one_line(tmp_path: Path, signum: int, code: int) -> None:
    """SIGINT / SIGTERM: the run is marked cancelled, the cursor shown again, and one line says
    how many samples were kept where and how to continue; `recover` then gets every one."""
    out = tmp_path / "out"
    returncode, seen = _interrupt_demo(out, signum)
    assert returncode == code, seen
    assert seen.rfind("\x1b[?25h") > seen.rfind("\x1b[?25l") >= 0  # the cursor is back
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)
    said = [line for line in text.splitlines() if line.startswith("evalstream:")]
    assert "Traceback" not in seen and len(said) == 1, seen
    name = signal.Signals(signum).name
    match = re.fullmatch(
        rf"evalstream: interrupted \({name}\): (\d+) samples journaled in (\S+) \(run "
        rf"cancelled\); continue with `evalstream recover {re.escape(str(out))}`",
        said[0].strip(),
    )
    assert match, said
    run_dir = Path(match[2])
    assert json.loads((run_dir / "status.json").read_text())["state"] == "cancelled"
    recovered = subprocess.run(
        [*CLI, "recover", str(out)], capture_output=True, text=True, check=True
    )
    assert f"recovered {match[1]} samples" in recovered.stdout
