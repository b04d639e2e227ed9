"""A sharded evaluation on Ray: each Ray task records one shard, then one merge makes the run.

    python examples/ray_sharded_eval.py s3://bucket/evals --run job-42 --shards 16
    python examples/ray_sharded_eval.py s3://bucket/evals --run job-42 --address auto  # a cluster

Each Ray task evaluates a contiguous block of every task (shard ``k`` of ``--shards``) and
records it with ``EvaluationTracker(output_dir, shard=ShardInfo(...))``, streaming its journal to
the object store as it goes; the driver waits for every task, then calls ``evalstream.merge``
once. The merged run equals a single-process run of the same samples (``--single`` writes one,
to compare). A task whose worker dies (a node lost, an OOM kill) is retried by Ray
(``max_retries``): the retry records the same shard again, so it resumes from what the dead
attempt had uploaded and skips those docs (``tracker.logged_keys()``). Shards do not talk to
each other and nothing passes through Ray's object store but each shard's small summary.

Every node must reach ``output_dir`` (an ``s3://``/``gs://`` URL, or a shared folder) with its
own credentials: Ray workers inherit the environment of the process that started them (set
``AWS_*`` there, or pass ``runtime_env={"env_vars": ...}`` to ``ray.init``). The "model" here is
a stand-in that scores docs deterministically; a real harness loads its model once per worker.
"""

from __future__ import annotations

import argparse
import os
import random
from typing import TYPE_CHECKING, Any

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, ShardInfo, TaskSpec, merge

if TYPE_CHECKING:
    from evalstream import RunResult

TASKS = [TaskSpec(name=f"demo|task{t}|0", categories=["multichoice"]) for t in range(3)]
MODEL = ModelInfo(model_name="demo/model", model_sha="abc123")
RAY_OPTIONS: dict[str, Any] = {"num_cpus": 1, "max_retries": 3}
"""Each shard task: one CPU; retried up to 3 times if its worker dies (it then resumes)."""


def dataset(task: TaskSpec, docs: int) -> list[Doc]:
    """A task's docs; a real harness loads them."""
    return [
        Doc(query=f"{task.name} question {i}", choices=["A", "B", "C", "D"], gold_index=i % 4,
            id=str(i))
        for i in range(docs)
    ]  # fmt: skip


def score(task: TaskSpec, doc: Doc) -> tuple[list[ModelResponse], dict[str, Any]]:
    """The stand-in model: log-likelihoods that depend only on the doc, and the doc's accuracy."""
    rng = random.Random(f"{task.name}/{doc.id}")
    logits = [rng.uniform(-5, 0) for _ in doc.choices]
    acc = float(max(range(len(logits)), key=logits.__getitem__) == doc.gold_index)
    return [ModelResponse(result=[x]) for x in logits], {"acc": acc}


async def record(output_dir: str, docs: int, shard: ShardInfo | None = None) -> RunResult:
    """Evaluate and record ``shard``'s block of every task (every doc when ``shard`` is None)."""
    index, count = (shard.index, shard.count) if shard is not None else (0, 1)
    async with EvaluationTracker(output_dir, shard=shard) as tracker:
        done = tracker.logged_keys()  # what a dead attempt of this shard already uploaded
        await tracker.log_model_info(MODEL)
        await tracker.log_tasks(TASKS)
        for task in TASKS:
            every = dataset(task, docs)
            mine = every[index * docs // count : (index + 1) * docs // count]
            for doc in mine:
                if (task.name, doc.id) not in done:
                    outputs, metrics = score(task, doc)
                    await tracker.log_sample(task.name, doc, outputs, metrics)
            await tracker.log_num_docs(task.name, len(every), len(mine))
            await tracker.flush()  # this task's block is in the object store now
        return await tracker.save()  # a shard's save uploads the rest and marks it complete


def record_shard(output_dir: str, run: str, index: int, count: int, docs: int) -> dict[str, Any]:
    """The body of one Ray task: one shard, recorded in this worker (its own event loop)."""
    shard = ShardInfo(run=run, index=index, count=count)
    result = anyio.run(record, output_dir, docs, shard)
    return {"index": index, "samples": sum(result.samples.values()), "pid": os.getpid()}


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--run", default="ray-run")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--docs", type=int, default=int(os.environ.get("DOCS_PER_TASK", "500")))
    parser.add_argument("--address", default=None, help="a Ray cluster (default: start one here)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local cluster")
    parser.add_argument("--single", default=None, help="also write a one-process run here")
    args = parser.parse_args()
    if args.address is not None:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    try:
        task = ray.remote(**RAY_OPTIONS)(record_shard)
        refs = [
            task.remote(args.output_dir, args.run, k, args.shards, args.docs)
            for k in range(args.shards)
        ]
        for summary in ray.get(refs):
            print(f"shard {summary['index']}: {summary['samples']} samples in pid {summary['pid']}")
    finally:
        ray.shutdown()
    outcome = anyio.run(merge, args.output_dir, args.run)
    print(f"merged {outcome.shards} shards into {outcome.result.results_path}")
    if args.single is not None:
        single = anyio.run(record, args.single, args.docs)
        print(f"single-process run: {single.results_path}")


if __name__ == "__main__":
    main()
