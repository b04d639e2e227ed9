"""A sharded evaluation: every rank (or job) records its shard, then one merge makes the run.

Data-parallel ranks of one job (torchrun, ``accelerate launch``: both set RANK and WORLD_SIZE)::

    torchrun --nproc-per-node 8 examples/sharded_eval.py s3://bucket/evals --run job-42

N independent jobs (a Slurm array, a batch queue, separate machines), then one merge::

    python examples/sharded_eval.py s3://bucket/evals --run job-42 --index 3 --count 16
    evalstream merge s3://bucket/evals --run job-42 --wait 3600

Without a launcher and without --index it runs every shard one after the other in this process
and merges them (a local demonstration: ``python examples/sharded_eval.py /tmp/evals``).
Each shard evaluates a contiguous block of every task (as accelerate's
``split_between_processes`` does), so the merged run equals a single-process run sample for
sample. A shard that dies is re-run with the same arguments: it resumes what it had uploaded.
The "model" here is a stand-in that scores docs deterministically.
"""

from __future__ import annotations

import argparse
import os
import random

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, ShardInfo, TaskSpec, merge

TASKS = [TaskSpec(name=f"demo|task{t}|0", categories=["multichoice"]) for t in range(3)]
DOCS_PER_TASK = int(os.environ.get("DOCS_PER_TASK", "500"))


def dataset(task: TaskSpec) -> list[Doc]:
    """A task's docs; a real harness loads them."""
    return [
        Doc(query=f"{task.name} question {i}", choices=["A", "B", "C", "D"], gold_index=i % 4,
            id=str(i))
        for i in range(DOCS_PER_TASK)
    ]  # fmt: skip


def my_block(docs: list[Doc], index: int, count: int) -> list[Doc]:
    """Shard ``index``'s contiguous block of ``docs``."""
    n = len(docs)
    return docs[index * n // count : (index + 1) * n // count]


async def run_shard(output_dir: str, info: ShardInfo) -> None:
    """Evaluate and record one shard; resumed from the object store if it died before."""
    async with EvaluationTracker(output_dir, shard=info) as tracker:
        done = tracker.logged_keys()  # samples an earlier, dead attempt of this shard holds
        await tracker.log_model_info(ModelInfo(model_name="demo/model"))
        await tracker.log_tasks(TASKS)
        for task in TASKS:
            docs = dataset(task)
            mine = my_block(docs, info.index, info.count)
            for doc in mine:
                if (task.name, doc.id) in done:
                    continue
                rng = random.Random(f"{task.name}/{doc.id}")  # the stand-in model
                logits = [rng.uniform(-5, 0) for _ in doc.choices]
                acc = float(max(range(4), key=logits.__getitem__) == doc.gold_index)
                outputs = [ModelResponse(result=[x]) for x in logits]
                await tracker.log_sample(task.name, doc, outputs, {"acc": acc})
            await tracker.log_num_docs(task.name, len(docs), len(mine))
            await tracker.flush()  # this task's samples are in the object store now
        await tracker.save()  # uploads the rest and marks the shard complete


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--run", default="demo-run")
    parser.add_argument("--index", type=int, default=None)
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    if args.index is not None:  # one of N independent jobs
        await run_shard(
            args.output_dir, ShardInfo(run=args.run, index=args.index, count=args.count)
        )
    elif "RANK" in os.environ:  # a rank of torchrun / accelerate launch
        info = ShardInfo.from_env(args.run)
        await run_shard(args.output_dir, info)
        if info.index == 0:  # rank 0 merges once every rank's shard is complete
            outcome = await merge(args.output_dir, args.run, wait=3600)
            print(f"merged {outcome.shards} shards into {outcome.result.results_path}")
    else:  # a local demonstration: every shard here, then the merge
        for k in range(4):
            await run_shard(args.output_dir, ShardInfo(run=args.run, index=k, count=4))
        outcome = await merge(args.output_dir, args.run)
        print(f"merged {outcome.shards} shards into {outcome.result.results_path}")
        print({task: row["acc"] for task, row in outcome.result.results["results"].items()})


if __name__ == "__main__":
    anyio.run(main)
