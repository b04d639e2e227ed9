"""A parent that dies while its details worker converts: ``python tests/orphan_child.py OUT MODE``.

Starts one real details worker through the pool, from the main thread (``MODE`` ``main``) or
from a thread that ends once the worker is up (``thread``: the kernel's parent-death signal,
tied to that thread, must not be armed there, so only the worker's own watch on its parent
process can notice the parent's death). It gives the worker one lighteval-layout task of ``ROWS`` wide samples,
which the end of the run converts in two passes (about a second: the last sample's extra
``specific`` key changes the schema, so the live file is given up and does not shortcut it), and
ends the run with an ``Output`` under ``OUT``. Prints, one line each, flushed:

- ``WORKER <pid>`` once the worker holds every row (a flush was answered);
- ``ENDING`` once the ``End`` frame is on the worker's stdin.

Then it waits for the SIGKILL of ``tests/details/test_orphan.py``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import anyio

from evalstream import Doc, ModelResponse, TaskSpec
from evalstream._messages import ENCODER, SampleBatch, ScoredSample, TasksDeclared
from evalstream.details.pool import WorkerPool
from evalstream.details.protocol import End, Output, State

TASK = TaskSpec(name="orphan|wide|0", categories=["generative"])
ROWS = 12 * 1024
BATCH = 256
WIDTH = 40
"""Keys of each sample's ``specific`` and metrics: Arrow infers and converts nested dicts
slowly, so the conversion is long against the transfer."""
MODEL = "orphan/model"
DATE_ID = "2026-01-01T00-00-00"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def scored(i: int) -> ScoredSample:
    """Sample ``i``: a doc with a wide ``specific`` dict, and as many metric values."""
    doc = Doc(
        query=f"question {i}",
        choices=["A", "B"],
        gold_index=0,
        id=str(i),
        specific={
            f"field{k}": [i, k, float(k)] for k in range(WIDTH + (i == ROWS - 1))
        },  # the last sample's extra key abandons the live file: the end converts in two passes
    )
    output = ModelResponse(result=[f"answer {i}"], input_tokens=[1, 2, 3], generated_tokens=[4])
    return ScoredSample(
        task_name=TASK.name,
        doc=doc,
        outputs=(output,),
        metrics={f"m{k}": float(k) for k in range(WIDTH)},
    )


class Spawner(threading.Thread):
    """A thread that starts the pool, waits until the worker is up, then ends."""

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__()
        self.pool = pool
        self.ready = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        self.pool.start()
        self.ready.set()
        self.release.wait()


async def child(out: str, mode: str) -> None:
    """Feed the worker every row, then end the run with an output and wait to be killed.

    In ``thread`` mode the spawning thread ends only once the worker has answered (it is past
    its start, where it arms whatever it arms): a worker tied to that thread would die there,
    and the flush after it would fail.
    """
    pool = WorkerPool(1, nice=0)
    spawner = Spawner(pool)
    if mode == "main":
        pool.start()
    else:
        spawner.start()
        await anyio.to_thread.run_sync(spawner.ready.wait)
    (channel,) = pool.channels(1)
    await channel.open(Path(out) / "work", keep_rows=True, shard=0, layout="lighteval")
    await channel.message(ENCODER.encode(TasksDeclared(tasks=(TASK,))))
    assert isinstance(await channel.flush(), State)
    if mode != "main":
        spawner.release.set()
        await anyio.to_thread.run_sync(spawner.join)
    for start in range(0, ROWS, BATCH):
        batch = SampleBatch(samples=tuple(scored(i) for i in range(start, start + BATCH)))
        await channel.message(ENCODER.encode(batch))
    flushed = await channel.flush()
    assert isinstance(flushed, State) and flushed.error is None, flushed
    assert flushed.tasks[TASK.name].samples == ROWS, flushed
    _say(f"WORKER {channel.pid}")
    output = Output(root=out, model_name=MODEL, date_id=DATE_ID)
    request = channel.worker.request_id()
    await channel.worker.send(End(channel=channel.number, request=request, output=output))
    _say("ENDING")
    await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(child, sys.argv[1], sys.argv[2])
