"""A Ray driver whose shard task dies once: ``python tests/ray_child.py OUTPUT_DIR RUN SHARDS DOCS
MARKER``, for tests/shards/test_ray.py.

Starts a local Ray cluster (2 CPUs, no dashboard) and runs examples/ray_sharded_eval.py's shard
task for every shard, with the example's task options (``max_retries``); shard 1's first attempt logs
part of its first task, flushes it to the object store, writes MARKER and kills its worker
process (``os._exit``: no save, no cleanup, as a lost node). Ray retries the task; the retry is
the example's own ``record_shard``, which resumes the dead attempt. Then one merge; prints
``MERGED <results path>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import ray
import ray.cloudpickle

from evalstream import EvaluationTracker, ShardInfo, merge

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import ray_sharded_eval as example

ray.cloudpickle.register_pickle_by_value(example)  # the workers get its code with the task


async def _part_then_die(output_dir: str, info: ShardInfo, docs: int, marker: str) -> None:
    """Log five docs of the first task, flush them to the store, then die without a save."""
    async with EvaluationTracker(output_dir, shard=info) as tracker:
        await tracker.log_model_info(example.MODEL)
        await tracker.log_tasks(example.TASKS)
        task = example.TASKS[0]
        every = example.dataset(task, docs)
        for doc in every[info.index * docs // info.count :][:5]:
            outputs, metrics = example.score(task, doc)
            await tracker.log_sample(task.name, doc, outputs, metrics)
        await tracker.flush()
        Path(marker).write_text("5")
        os._exit(1)


def flaky_shard(output_dir: str, run: str, index: int, count: int, docs: int, marker: str) -> Any:
    """Shard 1 dies once, mid-task, after its first flush; every other call is the example's."""
    if index == 1 and not Path(marker).exists():
        anyio.run(_part_then_die, output_dir, ShardInfo(run=run, index=index, count=count), docs,
                  marker)  # fmt: skip
    return example.record_shard(output_dir, run, index, count, docs)


def main(output_dir: str, run: str, shards: int, docs: int, marker: str) -> None:
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        task = ray.remote(**example.RAY_OPTIONS)(flaky_shard)
        refs = [task.remote(output_dir, run, k, shards, docs, marker) for k in range(shards)]
        for summary in ray.get(refs):
            sys.stdout.write(f"shard {summary['index']}: {summary['samples']} samples\n")
    finally:
        ray.shutdown()
    outcome = anyio.run(merge, output_dir, run)
    sys.stdout.write(f"MERGED {outcome.result.results_path}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
