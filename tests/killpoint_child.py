"""Child of test_kill_points: one step of a run's life, killed where EVALSTREAM_KILL_AT says.

Usage: ``killpoint_child.py MODE OUT [ARG]``:

- ``save OUT LAYOUT``: a whole run (every sample), then ``save()``;
- ``save-tb OUT LAYOUT``: the same with TensorBoard as a second output (the save's general path:
  the outputs concurrently, then the marker; ``save`` alone folds the local output and the
  marker into one step);
- ``die OUT LAYOUT``: the first ``HALF`` samples, flushed, then SIGKILL (a dead run to recover
  or resume);
- ``nomodel OUT``: like ``die``, in a run that never logged its model;
- ``live OUT``: a run that prints ``WORKDIR <path>`` and stays alive until stdin closes;
- ``recover RUN_DIR``: ``recover(RUN_DIR)``;
- ``resume OUT DEAD_DIR LAYOUT``: a run resumed from the dead one, logging every sample again (the
  dead run's are skipped), then ``save()``;
- ``shard OUT INDEX``: shard INDEX of two of run ``k`` (a contiguous half of each task), saved;
- ``merge OUT``: ``merge(OUT, "k")``.

Every sample is a pure function of (task, i): the parent knows the acknowledged set.
"""

from __future__ import annotations

import os
import signal
import sys

import anyio

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    ShardInfo,
    TaskSpec,
    merge,
    recover,
)

MODEL = "kill/model"
TASKS = [TaskSpec(name=f"kill|t{k}|0") for k in range(2)]
PER_TASK = 24
HALF = PER_TASK // 2


def items(start: int = 0, stop: int = PER_TASK) -> list[tuple[str, int]]:
    """(task, i) in logging order: the tasks interleaved."""
    return [(t.name, i) for i in range(start, stop) for t in TASKS]


def query(task: str, i: int) -> str:
    return f"{task}/{i}"


async def log(tracker: EvaluationTracker, todo: list[tuple[str, int]]) -> None:
    for task, i in todo:
        doc = Doc(query=query(task, i), choices=["a", "b"], gold_index=i % 2, id=str(i))
        await tracker.log_sample(
            task, doc, [ModelResponse(text=["a"])], {"acc": i % 2, "score": float(i * i)}
        )


async def start(tracker: EvaluationTracker, effective: int = PER_TASK) -> None:
    await tracker.log_model_info(ModelInfo(model_name=MODEL))
    await tracker.log_tasks(TASKS)
    for task in TASKS:
        await tracker.log_num_docs(task.name, PER_TASK, effective)


async def main(mode: str, out: str, arg: str, layout: str) -> None:
    if mode in ("nomodel", "live"):
        async with EvaluationTracker(out, bootstrap_iters=10) as tracker:
            await tracker.log_tasks(TASKS)
            await log(tracker, items(0, HALF))
            await tracker.flush()
            if mode == "nomodel":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.stdout.write(f"WORKDIR {tracker.workdir}\n")
            sys.stdout.flush()
            await anyio.to_thread.run_sync(sys.stdin.read)
    elif mode in ("save", "save-tb", "die"):
        async with EvaluationTracker(
            out,
            bootstrap_iters=10,
            details_layout=arg,  # type: ignore[arg-type]
            push_to_tensorboard=mode == "save-tb",
        ) as tracker:
            await start(tracker)
            if mode == "die":
                await log(tracker, items(0, HALF))
                await tracker.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            await log(tracker, items())
            await tracker.save()
    elif mode == "recover":
        await recover(out)
    elif mode == "resume":
        async with EvaluationTracker(
            out,
            bootstrap_iters=10,
            resume_from=arg,
            details_layout=layout,  # type: ignore[arg-type]
        ) as tracker:
            await log(tracker, items())
            await tracker.save()
    elif mode == "shard":
        index = int(arg)
        info = ShardInfo(run="k", index=index, count=2)
        half = PER_TASK // 2
        async with EvaluationTracker(out, bootstrap_iters=10, shard=info) as tracker:
            await start(tracker, half)
            await log(tracker, items(index * half, (index + 1) * half))
            await tracker.save()
    elif mode == "merge":
        await merge(out, "k")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    args = [*sys.argv[1:], "", ""]
    anyio.run(main, *args[:4])
