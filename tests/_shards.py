"""Shared by the shard tests: a deterministic split workload, shard and single-process logging,
and the comparison of a merged run with the same samples logged by one process."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from evalstream import EvaluationTracker, ModelInfo

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import Iterator

    from evalstream import Doc, ModelResponse, RunResult, ShardInfo

MODEL = "org/sharded-model"
Item = tuple[str, "Doc", list["ModelResponse"], dict[str, Any]]


def workload(per_task: int, seed: int = 7) -> dict[str, list[Item]]:
    """``per_task`` samples of every task, a pure function of ``seed``."""
    rng = random.Random(seed)
    return {
        task.name: [(task.name, *sample(rng, task, i)) for i in range(per_task)] for task in TASKS
    }


def block(items: list[Item], index: int, count: int) -> list[Item]:
    """Shard ``index``'s contiguous block of ``items`` (as accelerate splits a dataset)."""
    n = len(items)
    return items[index * n // count : (index + 1) * n // count]


def shard_items(work: dict[str, list[Item]], index: int, count: int) -> list[Item]:
    """What shard ``index`` of ``count`` evaluates: its block of every task, tasks interleaved."""
    blocks = [block(items, index, count) for items in work.values()]
    return [item for row in zip(*blocks, strict=False) for item in row] + [
        item for b in blocks for item in b[min(map(len, blocks)) :]
    ]


async def log_items(tracker: EvaluationTracker, items: list[Item]) -> None:
    """Log ``items`` in order."""
    for task, doc, outputs, metrics in items:
        await tracker.log_sample(task, doc, outputs, metrics)


async def open_run(tracker: EvaluationTracker, work: dict[str, list[Item]], shards: int) -> None:
    """The run's configuration calls, with each shard's own document counts."""
    await tracker.log_args_info(num_fewshot_seeds=1, job_id="7")
    await tracker.log_model_info(ModelInfo(model_name=MODEL, model_sha="abc"))
    await tracker.log_tasks(TASKS)


async def log_counts(
    tracker: EvaluationTracker, work: dict[str, list[Item]], index: int, count: int
) -> None:
    """Each task's size and the docs this shard evaluated."""
    for name, items in work.items():
        await tracker.log_num_docs(name, len(items), len(block(items, index, count)))


async def run_shard(
    out: str, info: ShardInfo, work: dict[str, list[Item]], **options: Any
) -> RunResult:
    """One shard, logged and saved."""
    async with EvaluationTracker(out, shard=info, **options) as tracker:
        await open_run(tracker, work, info.count)
        await log_items(tracker, shard_items(work, info.index, info.count))
        await log_counts(tracker, work, info.index, info.count)
        return await tracker.save()


async def run_single(out: str, work: dict[str, list[Item]], **options: Any) -> RunResult:
    """The same samples logged by one process, each task in order."""
    async with EvaluationTracker(out, **options) as tracker:
        await open_run(tracker, work, 1)
        await log_items(tracker, [item for items in work.values() for item in items])
        await log_counts(tracker, work, 0, 1)
        return await tracker.save()


def read_parquet(path: str) -> Any:
    """A details parquet file as a pyarrow table (a local path or an fsspec URL)."""
    if "://" in path:
        import fsspec

        with fsspec.open(path, "rb") as handle:
            return pq.read_table(handle)
    return pq.read_table(Path(path))


def assert_same_run(merged: RunResult, single: RunResult) -> None:
    """Means, stderr, hashes, counters, configs and every details row are identical."""
    a, b = merged.results, single.results
    assert a["results"] == b["results"]
    assert a["summary_tasks"] == b["summary_tasks"]
    assert a["summary_general"] == b["summary_general"]
    assert a["config_tasks"] == b["config_tasks"]
    assert a["versions"] == b["versions"]
    for key in ("model_name", "model_sha", "num_fewshot_seeds", "job_id"):
        assert a["config_general"][key] == b["config_general"][key]
    assert merged.samples == single.samples
    assert sorted(merged.details_paths) == sorted(single.details_paths)
    for task, path in merged.details_paths.items():
        got, want = read_parquet(path), read_parquet(single.details_paths[task])
        assert got.num_rows == want.num_rows > 0
        assert got.equals(want), task


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, and the environment that points s3fs at it
    (``os.environ`` for child processes, fsspec's config for this one); all undone after."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "FSSPEC_S3_ENDPOINT_URL": url,  # read by the child processes' fsspec at import
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = url
    try:
        yield env
    finally:
        fsspec.config.conf.get("s3", {}).pop("endpoint_url", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
