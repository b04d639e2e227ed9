"""push_to_hub on the tracker, against the loopback Hub with huggingface_hub's real client."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evalstream import ConfigError, EvaluationTracker, ModelInfo, RunInfo
from evalstream.cli.main import main
from evalstream.sinks.retry import RetryPolicy
from evalstream.testing import LoopbackHub

from _workload import TASKS, sample

pytestmark = pytest.mark.usefixtures("hf_env")

ORG = "evals-org"
REPO = f"{ORG}/details_org__m_private"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0.0)


async def _run(
    out: Path, hub: LoopbackHub, n: int = 60, hub_token_override: str | None = None
) -> Any:
    rng = random.Random(n)
    tasks = TASKS[:3]
    with anyio.fail_after(60):
        async with EvaluationTracker(
            out,
            push_to_hub=True,
            hub_results_org=ORG,
            hub_token=hub_token_override or hub.token,
            hub_endpoint=hub.endpoint,
            hub_retry=FAST,
        ) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks(tasks)
            for i in range(n):
                task = tasks[i % 3]
                await tracker.log_sample(task.name, *sample(rng, task, i))
            return await tracker.save()


async def _log_ten_and_save(tracker: EvaluationTracker, *, seed: int) -> Any:
    """Ten samples of one task, then save()."""
    await tracker.log_model_info(ModelInfo(model_name="org/m"))
    await tracker.log_tasks(TASKS[:1])
    rng = random.Random(seed)
    for i in range(10):
        await tracker.log_sample(TASKS[0].name, *sample(rng, TASKS[0], i))
    return await tracker.save()


def _ours(hub: LoopbackHub, repo: str) -> list[Any]:
    return [c for c in hub.commits(repo) if c.summary != "initial commit"]


def _card(hub: LoopbackHub) -> dict[str, Any]:
    text = hub.file_bytes(REPO, "README.md").decode()
    return yaml.safe_load(text.split("---")[1])  # type: ignore[no-any-return]


def test_a_run_lands_in_one_commit_byte_identical(tmp_path: Path) -> None:
    """Results, details and card arrive in one commit; a second run adds splits and moves latest."""
    with LoopbackHub() as hub:
        first = anyio.run(_run, tmp_path, hub)
        outcome = first.output("hub")
        assert outcome is not None and outcome.ok, outcome
        assert len(_ours(hub, REPO)) == 1 and hub.repo_private(REPO)
        date = first.date_id
        assert hub.file_bytes(REPO, f"results_{date}.json") == Path(first.results_path).read_bytes()
        for task, local in first.details_paths.items():
            remote = f"{date}/details_{task}_{date}.parquet"
            assert hub.file_bytes(REPO, remote) == Path(local).read_bytes()
        configs = {c["config_name"]: c for c in _card(hub)["configs"]}
        assert len(configs) == 4 and "results" in configs
        second = anyio.run(_run, tmp_path, hub, 30)
        assert len(_ours(hub, REPO)) == 2
        for config in _card(hub)["configs"]:
            splits = {s["split"]: s["path"] for s in config["data_files"]}
            assert len(splits) == 3, splits
            latest = splits["latest"]
            latest = latest[0] if isinstance(latest, list) else latest
            assert second.date_id in latest


def test_failed_push_keeps_local_files_and_push_later_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A persistent 500 is recorded in the summary; `evalstream push` publishes the run later."""
    with LoopbackHub() as hub:
        hub.inject("POST", r"/commit/", status=500, times=100)
        result = anyio.run(_run, tmp_path, hub)
        outcome = result.output("hub")
        assert outcome is not None and not outcome.ok
        assert "500" in str(outcome.error) and "evalstream push" in outcome.detail["retry"]
        assert result.output("local").ok and Path(result.results_path).exists()  # type: ignore[union-attr]
        assert _ours(hub, REPO) == []
        hub.clear_faults()
        monkeypatch.setenv("HF_TOKEN", hub.token)
        run_dir = result.workdir
        assert main(["push", run_dir, "--org", ORG, "--endpoint", hub.endpoint]) == 0
        assert len(_ours(hub, REPO)) == 1
        assert (
            hub.file_bytes(REPO, f"results_{result.date_id}.json")
            == Path(result.results_path).read_bytes()
        )
        assert hub.token not in capsys.readouterr().out


def test_push_needs_org_and_token_at_construction(tmp_path: Path) -> None:
    """push_to_hub without an org or a token fails before the run, saying how to fix it."""
    with pytest.raises(ConfigError, match="organisation"):
        EvaluationTracker(tmp_path, push_to_hub=True, hub_token="x")
    with pytest.raises(ConfigError, match="token"):
        EvaluationTracker(tmp_path, push_to_hub=True, hub_results_org=ORG)


def test_bad_token_is_reported_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected token gives a clear error; the token appears in no log record or message."""
    secret = "hf_SECRETSECRETSECRET123"
    caplog.set_level(logging.DEBUG)
    with LoopbackHub() as hub:
        result = anyio.run(lambda: _run(tmp_path, hub, hub_token_override=secret))
    outcome = result.output("hub")
    assert outcome is not None and not outcome.ok and "401" in str(outcome.error)
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert secret not in str(outcome) and secret not in repr(result)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(secret.encode() not in p.read_bytes() for p in files)


def test_tensorboard_events_pushed_in_one_commit(tmp_path: Path) -> None:
    """With an org, event files land in {org}/tensorboard_logs under tb/, in one commit."""

    async def run(hub: LoopbackHub) -> Any:
        async with EvaluationTracker(
            tmp_path,
            push_to_tensorboard=True,
            hub_results_org=ORG,
            hub_token=hub.token,
            hub_endpoint=hub.endpoint,
            nanotron_run_info=RunInfo(run="exp", step=7),
        ) as tracker:
            return await _log_ten_and_save(tracker, seed=1)

    with LoopbackHub() as hub:
        result = anyio.run(run, hub)
        outcome = result.output("tensorboard")
        assert outcome is not None and outcome.ok, outcome
        repo = f"{ORG}/tensorboard_logs"
        assert len(_ours(hub, repo)) == 1 and hub.repo_private(repo)
        remote = [f for f in hub.files(repo) if f.startswith("tb/")]
        assert remote and all(f.startswith("tb/exp_eval/0000007_") for f in remote)
        local = Path(outcome.paths[0])
        assert hub.file_bytes(repo, remote[0]) == local.read_bytes()
        acc = EventAccumulator(str(local.parent))
        acc.Reload()
        assert acc.Scalars("eval_mmlu/mmlu_anatomy/acc")[0].step == 7


def test_custom_targets_push_the_saved_files(tmp_path: Path) -> None:
    """push_results_to_hub / push_details_to_hub put the saved bytes where asked, one commit each."""

    async def run(hub: LoopbackHub) -> tuple[Any, list[Any]]:
        async with EvaluationTracker(
            tmp_path,
            hub_results_org=ORG,
            hub_token=hub.token,
            hub_endpoint=hub.endpoint,
            push_to_tensorboard=False,
        ) as tracker:
            assert tracker.publisher is None  # no push asked for: no publisher, no token needed
        async with EvaluationTracker(
            tmp_path,
            push_to_hub=True,
            hub_results_org=ORG,
            hub_token=hub.token,
            hub_endpoint=hub.endpoint,
        ) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks(TASKS[:2])
            rng = random.Random(2)
            for i in range(10):
                await tracker.log_sample(TASKS[i % 2].name, *sample(rng, TASKS[i % 2], i))
            result = await tracker.save()
            outcomes = [
                await tracker.push_results_to_hub(f"{ORG}/custom", "runs/results.json"),
                await tracker.push_details_to_hub(f"{ORG}/custom", "runs/{task_name}.parquet"),
                await tracker.recreate_metadata_card(REPO),
            ]
        return result, outcomes

    with LoopbackHub() as hub:
        result, outcomes = anyio.run(run, hub)
        assert all(o.ok for o in outcomes), outcomes
        custom = f"{ORG}/custom"
        assert len(_ours(hub, custom)) == 2
        assert hub.file_bytes(custom, "runs/results.json") == Path(result.results_path).read_bytes()
        for task, local in result.details_paths.items():
            assert hub.file_bytes(custom, f"runs/{task}.parquet") == Path(local).read_bytes()


def test_dead_hub_is_an_outcome_not_a_crash(tmp_path: Path) -> None:
    """With nothing listening at the endpoint, save() records the failure and keeps local files."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def run() -> Any:
        async with EvaluationTracker(
            tmp_path,
            push_to_hub=True,
            hub_results_org=ORG,
            hub_token="hf_test_token",
            hub_endpoint=f"http://127.0.0.1:{port}",
            hub_retry=FAST,
        ) as tracker:
            return await _log_ten_and_save(tracker, seed=3)

    result = anyio.run(run)
    hub = result.output("hub")
    assert hub is not None and not hub.ok and hub.error
    assert "evalstream push" in hub.detail["retry"]
    assert result.output("local").ok and Path(result.results_path).exists()  # type: ignore[union-attr]
    assert "hf_test_token" not in str(result.outputs)
