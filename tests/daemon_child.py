"""A daemon in a child process: one Runtime, several live runs, SIGTERM handled the documented way.

``python tests/daemon_child.py OUTPUT_DIR RUNS`` starts ``RUNS`` trackers under one
``evalstream.Runtime``, each fed by two producers that log until stopped, and prints (flushed):

- ``READY`` once every run has logged a first flushed batch (the parent then sends SIGTERM);
- on SIGTERM, after ``await runtime.shutdown()`` returned: ``LOGGED <workdir> <n>`` per run,
  ``n`` the samples its ``log_sample`` accepted (all of them must be recoverable), then ``DONE``.
"""

from __future__ import annotations

import random
import signal
import sys
from pathlib import Path

import anyio

from evalstream import (
    Doc,
    EvalStreamError,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    Runtime,
    TaskSpec,
)

TASKS = [TaskSpec(name=f"daemon|t{k}|0", categories=["multichoice"]) for k in range(2)]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_one(runtime: Runtime, out: Path, k: int, trackers: list[EvaluationTracker]) -> None:
    async with EvaluationTracker(out, runtime=runtime, batch_size=16, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="daemon/model"))
        await tracker.log_tasks(TASKS)
        trackers.append(tracker)

        async def producer(p: int) -> None:
            rng = random.Random(k * 100 + p)
            i = 0
            while True:
                task = TASKS[i % 2]
                doc = Doc(query=f"q {k} {p} {i}", choices=["A", "B"], gold_index=0, id=f"{p}-{i}")
                try:
                    await tracker.log_sample(
                        task.name, doc, [ModelResponse(result=[rng.random()])], {"acc": i % 2}
                    )
                except EvalStreamError:  # the runtime shut down: stop logging
                    await anyio.sleep_forever()
                i += 1
                if i % 64 == 0:
                    await anyio.sleep(0.001)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer, 0)
            tg.start_soon(producer, 1)


async def main(out: Path, runs: int) -> None:
    trackers: list[EvaluationTracker] = []
    async with Runtime() as runtime, anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            for k in range(runs):
                tg.start_soon(run_one, runtime, out / f"run{k}", k, trackers)
            while len(trackers) < runs or min(t.samples_logged for t in trackers) < 200:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            for tracker in trackers:
                await tracker.flush()
            _say("READY")
            async for _ in signals:  # the pattern the README documents
                await runtime.shutdown("SIGTERM")
                for tracker in trackers:
                    _say(f"LOGGED {tracker.workdir} {tracker.samples_logged}")
                tg.cancel_scope.cancel()
                break
    _say("DONE")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), int(sys.argv[2]), backend=sys.argv[3])
