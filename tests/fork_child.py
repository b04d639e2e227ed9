"""A tracker's process forks a child that tries the tracker: ``python tests/fork_child.py OUT API END``.

``API`` is ``sync`` (a SyncEvaluationTracker: its loop thread does not exist in the child) or
``async`` (an EvaluationTracker; ``os.fork()`` from inside the running loop, the child calling
``log_sample`` from the coroutine it finds itself in). The parent logs ``BEFORE`` samples,
forks, and the child logs one more. The child prints ``CHILD <pid>``, then ``REFUSED <type>: <message>`` (or
``ACCEPTED`` if the call went through; the sync child tries ``flush()`` too, and prints a second
line), and the parent goes on once it has. Then, by ``END``:

- ``early``: the child leaves at once (``sys.exit``: atexit handlers and finalizers run; an
  async child uses ``os._exit``, as an asyncio child must); the parent waits for it, logs
  ``AFTER`` more samples and saves;
- ``save``: the child waits for its stdin to close, then leaves the same way; the parent logs
  ``AFTER`` more, saves and closes its runtime while the child lives;
- ``kill``: the child waits likewise; the parent prints ``WORKDIR <run folder>`` and SIGKILLs
  itself, its run live.

The parent prints ``SAVED <details file> <rows> <seconds to close the runtime>`` after a save;
the child prints ``BYE`` as it leaves.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import anyio
import pyarrow.parquet as pq

from evalstream import (
    EvaluationTracker,
    ModelInfo,
    Runtime,
    SyncEvaluationTracker,
    TaskSpec,
)

from _workload import sample

TASK = TaskSpec(name="fork|task|0", categories=["multichoice"])
BEFORE, AFTER = 300, 200


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def made(i: int) -> tuple[Any, ...]:
    import random

    return sample(random.Random(i), TASK, i)


def child_leaves(api: str, end: str, reported: int) -> None:
    """Tell the parent the child has reported; wait if asked to outlive the parent; leave."""
    os.write(reported, b".")
    if end != "early":
        sys.stdin.read()
    say("BYE")
    if api == "async":
        os._exit(0)
    sys.exit(0)


def refused(call: Any) -> None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the child reports whatever it got
        say(f"REFUSED {type(exc).__name__}: {exc}")
    else:
        say("ACCEPTED")


def parent_ends(end: str, workdir: str, tracker_save: Any, runtime_close: Any) -> None:
    if end == "kill":
        say(f"WORKDIR {workdir}")
        os.kill(os.getpid(), signal.SIGKILL)
    result = tracker_save()
    began = time.perf_counter()
    runtime_close()
    closed = time.perf_counter() - began
    path = result.details_paths[TASK.name]
    say(f"SAVED {path} {pq.read_metadata(path).num_rows} {closed:.3f}")


def run_sync(out: str, end: str) -> None:
    runtime = Runtime()
    tracker = SyncEvaluationTracker(out, save_details=True, runtime=runtime)
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/fork"))
    for i in range(BEFORE):
        tracker.details_logger.log(TASK.name, TASK, *made(i))
    tracker.flush()
    heard, reported = os.pipe()
    pid = os.fork()
    if pid == 0:
        say(f"CHILD {os.getpid()}")
        refused(lambda: tracker.details_logger.log(TASK.name, TASK, *made(BEFORE)))
        refused(tracker.flush)
        tracker.close()  # does nothing in the child
        child_leaves("sync", end, reported)
    os.read(heard, 1)
    if end == "early":
        os.waitpid(pid, 0)
    for i in range(BEFORE, BEFORE + AFTER):
        tracker.details_logger.log(TASK.name, TASK, *made(i))
    parent_ends(end, str(tracker.tracker.workdir), tracker.save, runtime.pool.close)


async def run_async(out: str, end: str) -> None:
    runtime = Runtime()
    async with runtime:
        async with EvaluationTracker(out, save_details=True, runtime=runtime) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/fork"))
            await tracker.log_tasks([TASK])
            for i in range(BEFORE):
                await tracker.log_sample(TASK.name, *made(i))
            await tracker.flush()
            heard, reported = os.pipe()
            pid = os.fork()
            if pid == 0:
                say(f"CHILD {os.getpid()}")
                try:
                    await tracker.log_sample(TASK.name, *made(BEFORE))
                except Exception as exc:  # noqa: BLE001 - the child reports whatever it got
                    say(f"REFUSED {type(exc).__name__}: {exc}")
                else:
                    say("ACCEPTED")
                child_leaves("async", end, reported)
            await anyio.to_thread.run_sync(os.read, heard, 1)
            if end == "early":
                await anyio.to_thread.run_sync(os.waitpid, pid, 0)
            for i in range(BEFORE, BEFORE + AFTER):
                await tracker.log_sample(TASK.name, *made(i))
            if end == "kill":
                parent_ends(end, str(tracker.workdir), None, None)
            result = await tracker.save()
        began = time.perf_counter()
    closed = time.perf_counter() - began
    path = result.details_paths[TASK.name]
    say(f"SAVED {path} {pq.read_metadata(path).num_rows} {closed:.3f}")


if __name__ == "__main__":
    out, api, end = sys.argv[1:4]
    if api == "sync":
        run_sync(out, end)
    else:
        anyio.run(run_async, out, end)
