"""examples/ray_sharded_eval.py for real: a local Ray cluster (2 CPUs, no dashboard) whose tasks
each record one shard into moto's S3 server, then one merge (``-m s3``, scripts/ci/s3.sh).

The merged run must be the one-process run of the same samples: the same results, stderr,
hashes, configs and every details row.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evalstream import merge

from _shards import assert_same_run, moto_s3

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.s3
fsspec = pytest.importorskip("fsspec")

EXAMPLE = Path(__file__).parents[2] / "examples" / "ray_sharded_eval.py"
CHILD = Path(__file__).parents[1] / "ray_child.py"
DOCS = 30


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, and the environment that points s3fs at it."""
    pytest.importorskip("s3fs")
    pytest.importorskip("ray")
    with moto_s3() as env:
        yield env


def _example() -> Any:
    """The example as a module, for its one-process run (the same docs and model)."""
    spec = importlib.util.spec_from_file_location("ray_sharded_eval", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A Ray driver process, with Ray's session files in a short temporary folder (its socket
    paths must stay under the OS's limit) that is removed after it; it is the driver's HOME
    too, so the token Ray makes for its local cluster (``~/.ray/auth_token``) goes there."""
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = os.environ | env | {"RAY_TMPDIR": ray_tmp, "HOME": ray_tmp}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


async def test_ray_tasks_record_shards_that_merge_into_the_one_process_run(
    s3_env: dict[str, str],
) -> None:
    """3 shards as Ray tasks on 2 CPUs, merged once: equal to one process, row for row."""
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("ray-shards")
    out = "s3://ray-shards/evals"
    command = [sys.executable, str(EXAMPLE), out, "--run", "ray-job", "--shards", "3"]
    command += ["--docs", str(DOCS), "--num-cpus", "2"]
    done = await anyio.to_thread.run_sync(_run, command, s3_env)
    assert done.returncode == 0, done.stderr[-3000:]
    shard_lines = [line for line in done.stdout.splitlines() if line.startswith("shard ")]
    assert len(shard_lines) == 3 and "merged 3 shards into s3://ray-shards/evals/" in done.stdout
    pids = {line.rsplit(" ", 1)[1] for line in shard_lines}
    assert str(os.getpid()) not in pids  # recorded in Ray's workers, not here
    merged = await merge(out, "ray-job")  # the merge is done: this returns it
    assert merged.already_merged and merged.shards == 3 and merged.duplicates == {}
    single = await _example().record("s3://ray-shards/single", DOCS)
    assert sum(single.samples.values()) == 3 * DOCS
    assert_same_run(merged.result, single)


async def test_a_shard_whose_worker_died_is_retried_by_ray_and_resumed(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    """Shard 1's worker dies after its first flush; Ray's retry resumes that attempt (the dead
    one is marked resumed), and the merge still equals the one-process run."""
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("ray-retry")
    out, marker = "s3://ray-retry/evals", tmp_path / "died"
    command = [sys.executable, str(CHILD), out, "retry-job", "3", str(DOCS), str(marker)]
    done = await anyio.to_thread.run_sync(_run, command, s3_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.read_text() == "5"  # the first attempt did die, after flushing 5 samples
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    manifests = fs.glob("ray-retry/evals/.evalstream/shards/retry-job/*1-of-*/*/shard.json")
    states = sorted(json.loads(fs.cat_file(m))["state"] for m in manifests)
    assert states == ["complete", "resumed"], states
    merged = await merge(out, "retry-job")
    assert merged.already_merged and merged.duplicates == {}
    single = await _example().record("s3://ray-retry/single", DOCS)
    assert_same_run(merged.result, single)
