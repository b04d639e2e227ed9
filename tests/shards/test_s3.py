"""Sharded runs on a real S3 API: moto's server on 127.0.0.1, driven by s3fs (``-m s3``).

Shard processes stream their journals to ``s3://…``; the merge reads them back from there and
writes one run to S3; a saved run there is queried with SQL (DuckDB through s3fs). Run by scripts/ci/s3.sh, which installs moto[server] and s3fs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from evalstream import MergeError, merge

from _shards import assert_same_run, moto_s3, read_parquet, run_single, shard_items, workload

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.s3

CHILD = Path(__file__).parents[1] / "shard_child.py"
PER_TASK = 48


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for this module; stopped after it."""
    pytest.importorskip("fsspec")
    pytest.importorskip("s3fs")
    with moto_s3() as env:
        yield env["AWS_ENDPOINT_URL"]


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the moto server, as an ``s3://`` URL."""
    import fsspec

    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(name)
    return f"s3://{name}"


def _start(out: str, run: str, index: int, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), out, run, str(index), str(count), str(PER_TASK)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> list[str]:
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0, out
    return out.splitlines()


async def test_four_shard_processes_merge_into_the_single_process_run(
    bucket: str, tmp_path: Path
) -> None:
    out = f"{bucket}/evals"
    children = [_start(out, "job-42", k, 4) for k in range(4)]  # all at once
    lines = [await anyio.to_thread.run_sync(_finish, c) for c in children]
    assert all(said[-1] == "SAVED" for said in lines)
    merged = await merge(out, "job-42")
    assert merged.result.results_path.startswith(f"{out}/results/")
    single = await run_single(f"{bucket}/single", workload(PER_TASK))
    assert_same_run(merged.result, single)
    assert merged.duplicates == {}
    assert (await merge(out, "job-42")).already_merged


async def test_a_killed_shard_is_resumed_and_merged_with_nothing_acknowledged_lost(
    bucket: str,
) -> None:
    out = f"{bucket}/evals"
    work = workload(PER_TASK)
    for k in (0, 2):
        await anyio.to_thread.run_sync(_finish, _start(out, "kill", k, 3))
    victim = _start(out, "kill", 1, 3)
    promised: set[str] = set()
    assert victim.stdout is not None
    for line in victim.stdout:  # kill it mid-run, after its third acknowledged flush
        if line.startswith("DURABLE "):
            promised.update(line.split()[1].split(","))
            if len(promised) >= 24:
                victim.send_signal(signal.SIGKILL)
                break
    victim.wait()
    victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL
    with pytest.raises(MergeError, match="shard 1 is running"):
        await merge(out, "kill")
    # a partial merge now holds every sample the dead shard acknowledged
    partial = await merge(out, "kill", partial=True)
    assert partial.incomplete_shards == [1]
    own = {f"{t}/{d.id}": (t, d.query) for t, d, _, _ in shard_items(work, 1, 3)}
    assert promised <= set(own)
    rows = await anyio.to_thread.run_sync(_examples, partial.result.details_paths)
    assert {own[key] for key in promised} <= rows
    # the shard re-run resumes the dead attempt from S3 and finishes it
    said = await anyio.to_thread.run_sync(_finish, _start(out, "kill", 1, 3))
    resumed = int(said[0].split()[1])
    assert resumed >= len(promised) and said[-1] == "SAVED"
    merged = await merge(out, "kill")
    assert not merged.partial and merged.duplicates == {}
    assert_same_run(merged.result, await run_single(f"{bucket}/single", work))


def _examples(details_paths: dict[str, str]) -> set[tuple[str, str]]:
    """(task, query) of every details row of a run."""
    return {
        (task, example)
        for task, path in details_paths.items()
        for example in read_parquet(path).column("example").to_pylist()
    }


async def test_a_missing_bucket_is_a_storage_error_at_the_call(s3_endpoint: str) -> None:
    from evalstream import EvaluationTracker, ShardInfo, StorageError

    info = ShardInfo(run="nb", index=0, count=1)
    with pytest.raises(StorageError, match=r"could not .* s3://no-such-bucket-here/evals"):
        async with EvaluationTracker("s3://no-such-bucket-here/evals", shard=info):
            pass
    with pytest.raises(MergeError, match="no shards of run 'nb'"):
        await merge("s3://no-such-bucket-here/evals", "nb")


async def test_a_saved_run_on_s3_is_queryable_with_sql_through_s3fs(bucket: str) -> None:
    """``evalstream.query`` over ``s3://``: DuckDB reads the details files through s3fs (the
    fsspec filesystem it is given), and counts every row the run saved."""
    pytest.importorskip("duckdb")
    from evalstream import query

    single = await run_single(f"{bucket}/q", workload(PER_TASK))
    sql = "SELECT task, count(*) AS n FROM samples GROUP BY task"
    rows = await anyio.to_thread.run_sync(query, f"{bucket}/q", sql)
    assert {r["task"]: r["n"] for r in rows.to_pylist()} == single.samples
    paths = await anyio.to_thread.run_sync(query, f"{bucket}/q", "SELECT results_path FROM runs")
    assert paths.column(0).to_pylist() == [single.results_path]
