"""A process whose tracker runs forks: the child is refused at its first call, and holds nothing.

``tests/fork_child.py`` forks with ``os.fork()`` (sync and async trackers); the multiprocessing
test forks the test process itself with the ``fork`` start method.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import pyarrow.parquet as pq
import pytest

from evalstream import EvaluationTracker, ModelInfo, Runtime, SyncEvaluationTracker
from evalstream.durability.owner import held

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.connection import Connection

CHILD = Path(__file__).parent.parent / "fork_child.py"
BEFORE, AFTER = 300, 200  # as in fork_child.py
TIMEOUT = 60.0
"""Seconds any line may take: a child that hangs on the parent's loop never prints one."""
REFUSAL = "belongs to pid"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="fork() is POSIX; the cleanup reads /proc"
)


class Script:
    """``fork_child.py`` running, its stdout read line by line with a deadline."""

    def __init__(self, out: Path, api: str, end: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sys.path, str(CHILD.parent)]))
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), str(out), api, end],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.child = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __exit__(self, *exc: object) -> None:
        """Kill the script and its child if they still run; close the pipes once both are gone."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        cmdline = Path(f"/proc/{self.child}/cmdline") if self.child else None
        if cmdline is not None and CHILD.name.encode() in _read_or_empty(cmdline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self._reader.join(TIMEOUT)  # ends when the child has left too
        self.process.stdout.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # every holder of the pipe, parent and child, has left

    def expect(self, prefix: str) -> str:
        """The next line, which must start with ``prefix``."""
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.process.kill()
            pytest.fail(f"no {prefix!r} line within {TIMEOUT} s: a process hangs")
        assert line is not None and line.startswith(prefix), line
        return line

    def forked(self) -> None:
        """The child's first line: its pid (killed at the end if a test left it running)."""
        self.child = int(self.expect("CHILD").split()[1])

    def release_child(self) -> None:
        """Close the child's stdin (it leaves), and wait until it has (stdout's end)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.expect("BYE")
        assert self.lines.get(timeout=TIMEOUT) is None


Start: TypeAlias = "Callable[[str, str], Script]"


@pytest.fixture
def scripts(tmp_path: Path) -> Iterator[Start]:
    """Start ``fork_child.py API END`` writing under ``tmp_path``; stopped after the test."""
    started: list[Script] = []

    def start(api: str, end: str) -> Script:
        started.append(Script(tmp_path, api, end))
        return started[-1]

    yield start
    for script in started:
        script.__exit__()


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def refusal(script: Script, api: str) -> None:
    """The child's call was refused (the sync child's ``flush()`` too)."""
    script.forked()
    for _ in range(2 if api == "sync" else 1):
        line = script.expect("REFUSED")
        assert line.startswith("REFUSED RunStateError:") and REFUSAL in line, line
        assert "spawn" in line, line


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_forked_child_that_leaves_first_changes_nothing(scripts: Start, api: str) -> None:
    """The child is refused, exits (atexit and finalizers run); the parent saves every sample."""
    script = scripts(api, "early")
    refusal(script, api)
    script.expect("BYE")
    _, path, rows, _ = script.expect("SAVED").split()
    assert int(rows) == BEFORE + AFTER
    assert pq.read_table(path).num_rows == BEFORE + AFTER
    assert script.process.wait(TIMEOUT) == 0


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_child_living_on_holds_no_pipe_of_the_parent(scripts: Start, api: str) -> None:
    """The parent saves and closes its workers at once (a child's copy of their pipes would
    keep them waiting for their end of input until killed, 5 s later)."""
    script = scripts(api, "save")
    refusal(script, api)
    _, path, rows, closed = script.expect("SAVED").split()
    assert int(rows) == BEFORE + AFTER
    assert float(closed) < 4.0, f"closing the runtime took {closed} s"
    assert script.process.wait(TIMEOUT) == 0
    script.release_child()  # the child leaves: atexit and finalizers run
    assert pq.read_table(path).num_rows == BEFORE + AFTER


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_child_outliving_a_killed_parent_does_not_hold_its_run(scripts: Start, api: str) -> None:
    """Once the parent dies, its run is free for recovery, though the forked child lives on."""
    script = scripts(api, "kill")
    refusal(script, api)
    workdir = Path(script.expect("WORKDIR").split(maxsplit=1)[1])
    assert script.process.wait(TIMEOUT) == -9
    assert held(workdir) is False, "the child's copy of the lock keeps the dead run alive"
    script.release_child()
    assert held(workdir) is False


def _child_logs(tracker: Any, api: str, reply: Connection) -> None:
    """In the forked child: one call on the parent's tracker; what it raised goes back."""
    task = TASKS[0]
    doc, outputs, metrics = sample(__import__("random").Random(0), task, 10_000)
    try:
        if api == "sync":
            tracker.details_logger.log(task.name, task, doc, outputs, metrics)
        else:
            anyio.run(tracker.log_sample, task.name, doc, outputs, metrics)
    except Exception as exc:  # noqa: BLE001 - whatever the child got goes back to the test
        reply.send((type(exc).__name__, str(exc)))
    else:
        reply.send(("accepted", ""))


def _fork_and_ask(tracker: Any, api: str) -> tuple[str, str]:
    """Start a child with multiprocessing's ``fork`` method; its answer, with a deadline."""
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe(duplex=False)
    child = context.Process(target=_child_logs, args=(tracker, api, theirs))
    child.start()
    try:
        if not mine.poll(TIMEOUT):
            pytest.fail("the forked child hangs on the parent's tracker")
        answer: tuple[str, str] = mine.recv()
    finally:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
        mine.close()
        theirs.close()
    return answer


def _log(tracker: Any, start: int, stop: int) -> None:
    rng = __import__("random").Random(start)
    task = TASKS[0]
    for i in range(start, stop):
        tracker.details_logger.log(task.name, task, *sample(rng, task, i))


def test_multiprocessing_fork_child_of_a_sync_tracker(tmp_path: Path) -> None:
    """A fork-method child of a running SyncEvaluationTracker is refused; the parent saves all."""
    tracker = SyncEvaluationTracker(str(tmp_path), save_details=True)
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/mp"))
    _log(tracker, 0, BEFORE)
    kind, message = _fork_and_ask(tracker, "sync")
    assert kind == "RunStateError" and REFUSAL in message, (kind, message)
    _log(tracker, BEFORE, BEFORE + AFTER)
    result = tracker.save()
    assert pq.read_table(result.details_paths[TASKS[0].name]).num_rows == BEFORE + AFTER


async def test_multiprocessing_fork_child_of_an_async_tracker(tmp_path: Path) -> None:
    """A fork-method child (started from a worker thread of the running loop) calling the
    parent's EvaluationTracker in a loop of its own is refused; the parent saves every sample."""
    task = TASKS[0]
    rng = __import__("random").Random(1)
    with anyio.fail_after(2 * TIMEOUT):
        async with EvaluationTracker(tmp_path, save_details=True) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/mp"))
            await tracker.log_tasks([task])
            for i in range(BEFORE):
                await tracker.log_sample(task.name, *sample(rng, task, i))
            kind, message = await anyio.to_thread.run_sync(_fork_and_ask, tracker, "async")
            assert kind == "RunStateError" and REFUSAL in message, (kind, message)
            for i in range(BEFORE, BEFORE + AFTER):
                await tracker.log_sample(task.name, *sample(rng, task, i))
            result = await tracker.save()
    assert pq.read_table(result.details_paths[task.name]).num_rows == BEFORE + AFTER
    assert held(tracker.workdir) is False


def _child_runs_its_own(runtime: Runtime, out: str, reply: Connection) -> None:
    """In the forked child: a whole run on a runtime the parent built but never started."""

    async def run() -> int:
        task = TASKS[0]
        rng = __import__("random").Random(2)
        async with runtime, EvaluationTracker(out, save_details=True, runtime=runtime) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/child"))
            await tracker.log_tasks([task])
            for i in range(50):
                await tracker.log_sample(task.name, *sample(rng, task, i))
            result = await tracker.save()
        return pq.read_metadata(result.details_paths[task.name]).num_rows

    try:
        reply.send(("rows", str(anyio.run(run))))
    except Exception as exc:  # noqa: BLE001 - whatever the child got goes back to the test
        reply.send((type(exc).__name__, str(exc)))


def test_a_runtime_built_before_the_fork_is_the_childs_if_only_the_child_starts_it(
    tmp_path: Path,
) -> None:
    """A pre-forking server builds its Runtime at import: each child may start and use it."""
    runtime = Runtime()
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe(duplex=False)
    child = context.Process(target=_child_runs_its_own, args=(runtime, str(tmp_path), theirs))
    child.start()
    try:
        assert mine.poll(TIMEOUT), "the child did not answer"
        assert mine.recv() == ("rows", "50")
    finally:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
        mine.close()
        theirs.close()
    assert child.exitcode == 0
