"""Sharded runs on a local (or network) folder: shards merged into one run, exactly as one
process would have recorded it; duplicates, mismatches, unfinished shards and resumes."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import msgspec
import pytest

from evalstream import (
    ConfigError,
    EvaluationTracker,
    MergeError,
    ModelInfo,
    RunResult,
    RunStateError,
    ShardInfo,
    ShardMismatchError,
    merge,
)
from evalstream.durability.runstate import read_status

from _shards import (
    MODEL,
    assert_same_run,
    block,
    log_counts,
    log_items,
    open_run,
    read_parquet,
    run_shard,
    run_single,
    shard_items,
    workload,
)
from _workload import TASKS

WORK = workload(per_task=41)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """WORK logged by one process: what every merge of WORK must equal."""
    return anyio.run(run_single, str(tmp_path_factory.mktemp("single")), WORK)


async def test_four_shards_merge_into_the_single_process_run(
    tmp_path: Path, single: RunResult
) -> None:
    out = str(tmp_path / "shared")
    for k in range(4):
        result = await run_shard(out, ShardInfo(run="job-42", index=k, count=4), WORK)
        assert result.results == {} and result.results_path == ""
        assert result.output("shard") is not None
    assert not (tmp_path / "shared" / "results").exists()  # shards write no results
    merged = await merge(out, "job-42")
    assert_same_run(merged.result, single)
    section = merged.result.results["evalstream"]
    assert section["partial"] is False and section["incomplete_tasks"] == []
    assert section["merged"]["duplicates"] == {} and merged.duplicates == {}
    assert all(t["samples"] == t["expected"] == 41 for t in section["tasks"].values())


async def test_a_saved_shard_is_marked_saved_locally(tmp_path: Path) -> None:
    """A shard's save() marks its local run folder saved (never a dead run recover would take)
    and drops the local journal it uploaded."""
    result = await run_shard(str(tmp_path), ShardInfo(run="s", index=0, count=2), WORK)
    shard = result.output("shard")
    assert shard is not None and shard.ok
    status = read_status(Path(result.workdir))
    assert status is not None and status.state == "saved", status
    assert not (Path(result.workdir) / "journal").exists()


async def test_merging_again_is_a_no_op(tmp_path: Path) -> None:
    out = str(tmp_path)
    for k in range(2):
        await run_shard(out, ShardInfo(run="r", index=k, count=2), WORK)
    first = await merge(out, "r")
    again = await merge(out, "r")
    assert again.already_merged and not first.already_merged
    assert again.result.results_path == first.result.results_path
    assert again.result.results == first.result.results
    assert len(list((tmp_path / "results").rglob("*.json"))) == 1


async def test_the_merge_keeps_the_shards_details_layout(tmp_path: Path) -> None:
    """Shards recorded in lighteval's layout merge into a run in lighteval's layout."""
    out = str(tmp_path)
    for k in range(2):
        await run_shard(out, ShardInfo(run="l", index=k, count=2), WORK, details_layout="lighteval")
    merged = await merge(out, "l")
    for path in merged.result.details_paths.values():
        assert read_parquet(path).column_names == ["doc", "metric", "model_response"], path


async def test_a_sample_on_two_shards_counts_once_and_is_reported(
    tmp_path: Path, single: RunResult
) -> None:
    out = str(tmp_path / "shared")
    task = "lb|gsm8k|5"
    extra = block(WORK[task], 0, 2)[-3:]  # shard 1 evaluates shard 0's last three docs again
    for k in range(2):
        async with EvaluationTracker(out, shard=ShardInfo(run="d", index=k, count=2)) as t:
            await open_run(t, WORK, 2)
            await log_items(t, (extra if k else []) + shard_items(WORK, k, 2))
            await log_counts(t, WORK, k, 2)
            await t.save()
    merged = await merge(out, "d")
    assert merged.duplicates == {task: 3}
    assert merged.result.results["evalstream"]["merged"]["duplicates"] == {task: 3}
    assert_same_run(merged.result, single)


async def test_shards_of_different_models_are_refused_before_any_output(tmp_path: Path) -> None:
    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="m", index=0, count=2), WORK)
    async with EvaluationTracker(out, shard=ShardInfo(run="m", index=1, count=2)) as t:
        await open_run(t, WORK, 2)
        await t.log_model_info(ModelInfo(model_name=MODEL, model_sha="other"))
        await log_items(t, shard_items(WORK, 1, 2))
        await t.save()
    before = set((tmp_path / ".evalstream").iterdir())
    with pytest.raises(ShardMismatchError, match=r"shard 1 logged a different model \(model_sha\)"):
        await merge(out, "m")
    assert not (tmp_path / "results").exists() and not (tmp_path / "details").exists()
    # the merge left no run folder, and of its own working folder only the lock file
    assert set((tmp_path / ".evalstream").iterdir()) - before == {tmp_path / ".evalstream/merges"}
    assert [p.name for p in (tmp_path / ".evalstream/merges/m").iterdir()] == ["lock"]


async def test_shards_of_different_task_configs_are_refused(tmp_path: Path) -> None:
    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="c", index=0, count=2), WORK)
    async with EvaluationTracker(out, shard=ShardInfo(run="c", index=1, count=2)) as t:
        await open_run(t, WORK, 2)
        changed = msgspec.structs.replace(TASKS[0], config={"k": 2})
        await t.log_tasks([changed])
        await t.save()
    with pytest.raises(ShardMismatchError, match=r"declares task 'lb\|mmlu:anatomy\|5'.*config"):
        await merge(out, "c")


async def test_an_unfinished_shard_is_refused_unless_partial(tmp_path: Path) -> None:
    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="p", index=0, count=3), WORK)
    async with EvaluationTracker(out, shard=ShardInfo(run="p", index=1, count=3)) as t:
        await open_run(t, WORK, 3)
        await log_items(t, shard_items(WORK, 1, 3)[:10])
        await t.flush()  # exits without save(): the attempt is cancelled, its samples kept
    with pytest.raises(MergeError, match=r"shard 1 is cancelled.*shard 2 has no attempt"):
        await merge(out, "p")
    merged = await merge(out, "p", partial=True)
    assert merged.partial and merged.incomplete_shards == [1] and merged.missing_shards == [2]
    section = merged.result.results["evalstream"]
    assert section["partial"] is True
    assert sum(merged.result.samples.values()) == len(shard_items(WORK, 0, 3)) + 10
    assert set(section["incomplete_tasks"]) == set(WORK)


async def test_a_dead_shard_is_resumed_by_its_next_attempt(
    tmp_path: Path, single: RunResult
) -> None:
    out = str(tmp_path / "shared")
    info = ShardInfo(run="res", index=1, count=2)
    await run_shard(out, ShardInfo(run="res", index=0, count=2), WORK)
    items = shard_items(WORK, 1, 2)
    async with EvaluationTracker(out, shard=info) as t:
        await open_run(t, WORK, 2)
        await log_items(t, items[:30])
        await t.flush()
    async with EvaluationTracker(out, shard=info) as t:  # the shard re-run: it resumes
        done = t.logged_keys()
        assert len(done) == 30
        await log_items(t, [i for i in items if (i[0], i[1].id) not in done])
        await log_counts(t, WORK, 1, 2)
        await t.save()
    with pytest.raises(RunStateError, match="already complete"):
        async with EvaluationTracker(out, shard=info):
            pass
    merged = await merge(out, "res")
    assert merged.duplicates == {}
    assert_same_run(merged.result, single)


def test_shard_info_is_checked_at_the_call() -> None:
    with pytest.raises(ConfigError, match="index"):
        ShardInfo(run="a", index=4, count=4)
    with pytest.raises(ConfigError, match="run id"):
        ShardInfo(run="../x", index=0, count=1)
    assert ShardInfo.from_env("a", {"RANK": "3", "WORLD_SIZE": "8"}) == ShardInfo(
        run="a", index=3, count=8
    )
    with pytest.raises(ConfigError, match="RANK and WORLD_SIZE"):
        ShardInfo.from_env("a", {})


async def test_a_shard_count_that_differs_from_the_run_is_refused(tmp_path: Path) -> None:
    await run_shard(str(tmp_path), ShardInfo(run="n", index=0, count=2), WORK)
    with pytest.raises(ConfigError, match="same count"):
        async with EvaluationTracker(str(tmp_path), shard=ShardInfo(run="n", index=1, count=3)):
            pass


async def test_the_merge_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalstream.cli.main import main

    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="cli", index=0, count=2), WORK)
    assert await anyio.to_thread.run_sync(main, ["merge", out, "--run", "cli"]) == 2
    assert "shard 1 has no attempt yet" in capsys.readouterr().err
    await run_shard(out, ShardInfo(run="cli", index=1, count=2), WORK)
    assert await anyio.to_thread.run_sync(main, ["merge", out, "--run", "cli"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("merged 2 shards of run cli: 205 samples into ")
    assert await anyio.to_thread.run_sync(main, ["merge", out, "--run", "cli"]) == 0
    assert capsys.readouterr().out.startswith("already merged 2 shards")


def test_the_attempt_holding_a_shard_skips_one_that_died_while_resuming() -> None:
    from evalstream.durability.runstate import RunSettings
    from evalstream.shards.manifest import ShardManifest, holder

    def attempt(name: str, state: str, resumed_from: str | None = None) -> ShardManifest:
        return ShardManifest(
            run="r", index=0, count=1, attempt=name, state=state, host="h", pid=1,  # type: ignore[arg-type]
            start_time=0, updated=0, settings=RunSettings(output_dir=""), resumed_from=resumed_from,
        )  # fmt: skip

    a, b = attempt("a", "running"), attempt("b", "running", resumed_from="a")
    assert holder([a, b]) == a  # b died before its replay of a was uploaded: a holds the samples
    a_done = msgspec.structs.replace(a, state="resumed")
    assert holder([a_done, b]) == b
    c = attempt("c", "complete", resumed_from="b")
    assert holder([a_done, b, c]) == c
    assert holder([]) is None


async def test_flush_returns_once_the_samples_are_in_the_shared_folder(tmp_path: Path) -> None:
    from evalstream._messages import SampleBatch
    from evalstream.run.merge import read_chunk
    from evalstream.shards.manifest import chunks_of, run_attempts
    from evalstream.shards.objects import ObjectFolder

    def uploaded() -> list[str]:
        folder = ObjectFolder(str(tmp_path))
        attempts, files = run_attempts(folder, "f")
        return [
            s.doc.id
            for rel in chunks_of(files, attempts[-1])
            for m in read_chunk(folder, rel)
            if isinstance(m, SampleBatch)
            for s in m.samples
        ]

    items = shard_items(WORK, 0, 1)
    info = ShardInfo(run="f", index=0, count=1, upload_interval=3600)  # no background upload
    async with EvaluationTracker(str(tmp_path), shard=info) as t:
        await open_run(t, WORK, 1)
        await log_items(t, items[:10])
        await t.flush()
        assert uploaded() == [i[1].id for i in items[:10]]
        await log_items(t, items[10:13])
        assert len(uploaded()) == 10  # not acknowledged yet: nothing promised
        await t.flush()
        assert uploaded() == [i[1].id for i in items[:13]]
    async with EvaluationTracker(str(tmp_path / "d"), shard=info, durable=True) as t:
        await open_run(t, WORK, 1)
        await log_items(t, items[:3])  # durable: each returned log_sample is uploaded
        folder = ObjectFolder(str(tmp_path / "d"))
        attempts, files = run_attempts(folder, "f")
        ids = [s.doc.id for rel in chunks_of(files, attempts[-1])
               for m in read_chunk(folder, rel) if isinstance(m, SampleBatch) for s in m.samples]  # fmt: skip
        assert ids == [i[1].id for i in items[:3]]


async def test_merge_waits_for_a_shard_still_recording(tmp_path: Path) -> None:
    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="w", index=0, count=2), WORK)
    merged = []

    async def merger() -> None:
        merged.append(await merge(out, "w", wait=60, push_to_tensorboard=True))

    async with anyio.create_task_group() as tg:
        tg.start_soon(merger)
        await anyio.sleep(0.5)
        assert not merged
        await run_shard(out, ShardInfo(run="w", index=1, count=2), WORK)
    result = merged[0].result
    assert not merged[0].partial and sum(result.samples.values()) == 5 * 41
    tensorboard = result.output("tensorboard")
    assert tensorboard is not None and tensorboard.ok  # the usual outputs


async def test_a_lost_or_damaged_chunk_is_reported_not_merged(tmp_path: Path) -> None:
    from evalstream import JournalCorruptError

    out = str(tmp_path)
    for k in range(2):
        await run_shard(out, ShardInfo(run="l", index=k, count=2, upload_interval=3600), WORK)
    chunks = sorted((tmp_path / ".evalstream/shards/l").glob("00001-of-00002/*/journal/*.wal"))
    data = chunks[0].read_bytes()
    chunks[0].write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
    with pytest.raises(JournalCorruptError, match=r"00000000\.wal: damaged frame at byte offset"):
        await merge(out, "l")
    chunks[0].unlink()
    with pytest.raises(MergeError, match="the folder lost objects"):
        await merge(out, "l")
    assert not (tmp_path / "results").exists()


@pytest.mark.usefixtures("hf_env")
def test_the_merged_run_is_pushed_to_the_hub(tmp_path: Path) -> None:
    from evalstream.testing import LoopbackHub

    out = str(tmp_path)
    for k in range(2):
        anyio.run(run_shard, out, ShardInfo(run="hub", index=k, count=2), WORK)
    with LoopbackHub() as hub:
        options = {"hub_token": hub.token, "hub_endpoint": hub.endpoint}
        push = {"push_to_hub": True, "hub_results_org": "evals-org", **options}
        merged = anyio.run(lambda: merge(out, "hub", **push))
        pushed = merged.result.output("hub")
        assert pushed is not None and pushed.ok, pushed
        repo = "evals-org/details_org__sharded-model_private"
        date = merged.result.date_id
        results = Path(merged.result.results_path).read_bytes()
        assert hub.file_bytes(repo, f"results_{date}.json") == results
    assert hub.token not in results.decode()


def test_the_example_runs_its_shards_and_merges_them(tmp_path: Path) -> None:
    import subprocess
    import sys

    example = Path(__file__).parents[2] / "examples" / "sharded_eval.py"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["DOCS_PER_TASK"] = "40"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "merged 4 shards into" in done.stdout


async def test_a_merge_whose_results_were_deleted_is_redone(tmp_path: Path) -> None:
    out = str(tmp_path)
    await run_shard(out, ShardInfo(run="gone", index=0, count=1), WORK)
    first = await merge(out, "gone")
    Path(first.result.results_path).unlink()
    again = await merge(out, "gone")
    assert not again.already_merged and Path(again.result.results_path).exists()
    assert again.result.results["results"] == first.result.results["results"]
