"""A details worker dies with its parent (issue 23): SIGKILL the parent in the middle of the end
of run's parquet conversion, and the worker is gone at once, having written no parquet file.

The parent is ``tests/orphan_child.py``; it spawns its worker from the main thread (the kernel's
parent-death signal covers it) or from a thread that has ended (only the worker's watch on its
parent process does, and the worker must have outlived that thread to get this far).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from evalstream.details.parent_watch import DEATHSIG_ENV, PARENT_ENV
from evalstream.details.worker import worker_env

CHILD = Path(__file__).parent.parent / "orphan_child.py"
GONE_WITHIN = 2.0
"""Seconds the worker may outlive its parent (it has about a second of conversion left)."""

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process states from /proc"
)


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not: it waits only to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def written(out: Path) -> list[str]:
    """The parquet files under ``out/details`` (a ``.tmp-*`` file is not one: never renamed)."""
    return sorted(p.name for p in (out / "details").rglob("*.parquet"))


async def converting(out: Path) -> None:
    """Return once the worker has begun writing the task's file (its temporary exists)."""
    while not any((out / "details").rglob(".tmp-*")):  # noqa: ASYNC110 - a file, no event
        await anyio.sleep(0.005)


@pytest.mark.parametrize("spawner", ["main", "thread"])
async def test_a_worker_stops_without_writing_when_its_parent_is_killed(
    tmp_path: Path, spawner: str
) -> None:
    out = tmp_path / "out"
    worker = 0
    err = tmp_path / "child.err"
    try:
        with err.open("wb") as errors, anyio.fail_after(120):
            process = await anyio.open_process(
                [sys.executable, str(CHILD), str(out), spawner],
                stdout=subprocess.PIPE,
                stderr=errors,
            )
            async with process:
                assert process.stdout is not None
                reader = BufferedByteReceiveStream(process.stdout)
                try:
                    line = (await reader.receive_until(b"\n", 1 << 10)).decode()
                    worker = int(line.removeprefix("WORKER "))
                    assert (await reader.receive_until(b"\n", 1 << 10)) == b"ENDING"
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    pytest.fail(f"the parent failed: {err.read_text()}")
                await converting(out)
                process.kill()
                assert await process.wait() == -signal.SIGKILL
        with anyio.move_on_after(GONE_WITHIN):
            while running(worker):  # noqa: ASYNC110 - another process's end: no event
                await anyio.sleep(0.01)
        assert not running(worker), f"the worker still runs {GONE_WITHIN} s after its parent died"
        assert written(out) == [], "the worker wrote parquet after its parent died"
    finally:
        if worker and running(worker):
            os.kill(worker, signal.SIGKILL)


def test_only_a_spawn_from_the_main_thread_arms_the_kernels_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signal follows the spawning thread: from any other thread it would kill a healthy
    worker when that thread ends. An inherited value never speaks for a spawn."""
    monkeypatch.setenv(DEATHSIG_ENV, "1")
    monkeypatch.setenv(PARENT_ENV, "1")
    envs: list[dict[str, str]] = []
    spawner = threading.Thread(target=lambda: envs.append(worker_env()))
    spawner.start()
    spawner.join()
    envs.append(worker_env())
    assert [(e[DEATHSIG_ENV], e[PARENT_ENV]) for e in envs] == [
        ("0", str(os.getpid())),
        ("1", str(os.getpid())),
    ]
