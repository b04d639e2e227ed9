"""Child of test_cancellation: tracked runs whose caller's scope fires at a random point.

Usage: ``cancel_child.py OUT SEED RUNS``. Each run logs from four producers inside
``anyio.move_on_after(delay)`` around the ``async with`` (then ``save()`` if the producers
finish first), records every sample whose ``log_sample`` returned, then reads the status
marker, recovers the run if it was not saved, and prints one JSON line: the state, how many
samples were acknowledged, and how many of those are missing from the saved or recovered
details.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import anyio
import pyarrow.parquet as pq

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec, recover
from evalstream.durability.runstate import read_status

TASK = TaskSpec(name="lb|cancel|0")
PER_PRODUCER = 1500


async def one(out: Path, rng: random.Random) -> dict[str, object]:
    acked: set[str] = set()
    batch_size = rng.choice([1, 7, 64, 256])
    durable = rng.random() < 0.15
    delay = rng.uniform(0.0, 0.35)
    tracker: EvaluationTracker | None = None

    async def produce(p: int) -> None:
        assert tracker is not None
        for i in range(PER_PRODUCER):
            key = f"{p}-{i}"
            await tracker.log_sample(
                TASK.name, Doc(query=key, id=key), [ModelResponse(result=[-1.0])], {"acc": i % 2}
            )
            acked.add(key)

    with anyio.move_on_after(delay) as scope:
        tracker = EvaluationTracker(out, batch_size=batch_size, durable=durable, bootstrap_iters=0)
        async with tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            async with anyio.create_task_group() as tg:
                for p in range(4):
                    tg.start_soon(produce, p)
            await tracker.save()
    status = read_status(tracker.workdir) if tracker.workdir.exists() else None
    state = status.state if status is not None else "none"
    if state == "saved":
        assert tracker.result is not None
        paths = tracker.result.details_paths
    elif state == "none":
        paths = {}
    else:
        paths = (await recover(tracker.workdir, model_name="org/m")).details_paths
    found: set[str] = set()
    if TASK.name in paths:
        found = set(pq.read_table(paths[TASK.name], columns=["example"])["example"].to_pylist())
    return {
        "state": state,
        "fired": scope.cancelled_caught,
        "acked": len(acked),
        "missing": len(acked - found),
        "extra": len(found - acked),
        "batch_size": batch_size,
        "durable": durable,
    }


async def main(out: Path, seed: int, runs: int) -> None:
    rng = random.Random(seed)
    for n in range(runs):
        report = await one(out / f"run{n}", rng)
        sys.stdout.write(json.dumps({"seed": seed, "run": n, **report}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
