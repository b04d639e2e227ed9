"""use_wandb with the real clients (``-m trackers``): trackio's local store and W&B offline.

What the run logged is read back by each tracker's own reader: trackio's ``SQLiteStorage``
(the SQLite database it keeps per project), and W&B's run file read record by record into
wandb's own protobuf ``Record`` messages. Run by scripts/ci/trackers.sh, which installs both
clients into .venv-trackers. trackio is picked when both are installed; a W&B test makes
trackio unimportable (``sys.modules["trackio"] = None``), as on a machine without it.
"""

from __future__ import annotations

import json
import math
import random
import socket
import struct
import sys
import uuid
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    RunInfo,
    RunResult,
    SyncEvaluationTracker,
    TaskSpec,
)

from _workload import TASKS, sample

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.trackers
HOME_VARS = ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")
USER_VARS = ("WANDB_DIR", "WANDB_RUN_ID", "WANDB_API_KEY", "WANDB_SPACE_ID", "TRACKIO_SPACE_ID")


@pytest.fixture(scope="module", autouse=True)
def tracker_homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """trackio's store and W&B's own folders in a temporary folder, set before trackio is
    imported (it reads TRACKIO_DIR once); the caller's W&B settings kept out."""
    home = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRACKIO_DIR", str(home / "trackio"))
        for name in HOME_VARS:
            env.setenv(name, str(home / name.lower()))
        for name in USER_VARS:
            env.delenv(name, raising=False)
        env.setenv("WANDB_MODE", "offline")
        yield home


@pytest.fixture(params=["trackio", "wandb"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """One tracker and a project of this test's own."""
    if request.param == "wandb":
        monkeypatch.setitem(sys.modules, "trackio", None)
    monkeypatch.setenv("WANDB_PROJECT", f"evals-{uuid.uuid4().hex[:8]}")
    return str(request.param)


# -- the readers ---------------------------------------------------------------------------------


def trackio_logs(project: str, run: str) -> list[dict[str, Any]]:
    """Every log of ``run``, from trackio's own store (its SQLite database)."""
    from trackio import utils
    from trackio.sqlite_storage import SQLiteStorage

    assert Path(utils.TRACKIO_DIR).parent.name.startswith("trackers")  # the test's store
    return SQLiteStorage.get_logs(project, run)


def wandb_records(folder: Path) -> list[Any]:
    """Every record of a W&B offline run folder, as wandb's protobuf ``Record``.

    The ``.wandb`` file is a 7-byte header (``:W&B``, a magic number, a version), then 32 KiB
    blocks of chunks, each chunk a CRC-32 of its type and data, a length and a type (whole,
    first, middle, last); a block's tail shorter than a chunk header is padding.
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero-filled rest of a block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"corrupt chunk at {pos}"
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_logged(folder: Path) -> dict[str, Any]:
    """The run's one logged step, nested as it was logged (``{task: {metric: value}}``)."""
    (history,) = [
        r.history for r in wandb_records(folder) if r.WhichOneof("record_type") == "history"
    ]
    logged: dict[str, Any] = {}
    for item in history.item:
        keys = list(item.nested_key) or [item.key]
        into = logged
        for key in keys[:-1]:
            into = into.setdefault(key, {})
        into[keys[-1]] = json.loads(item.value_json)
    return logged


def run_folders(out: Path) -> list[Path]:
    """W&B's offline run folders under the output folder, oldest first."""
    return sorted((out / "wandb").glob("offline-run-*"))


# -- what is checked -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """NaN as the trackers store it (the string 'NaN') and as json reads it, made comparable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value == "NaN" or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    return value


def expected_results(result: RunResult) -> dict[str, Any]:
    """The saved results file's rows under lighteval's push_to_wandb keys."""
    saved = json.loads(Path(result.results_path).read_text())
    return {task.replace(":", "/"): _plain(row) for task, row in saved["results"].items()}


def logged_of(backend: str, result: RunResult, out: Path, name: str) -> dict[str, Any]:
    """What the tracker holds for the run's one step: results rows and details tables."""
    outcome = result.output("wandb")
    assert outcome is not None and outcome.ok, outcome
    assert outcome.detail["backend"] == backend and outcome.detail["run"] == name
    if backend == "trackio":
        (log,) = trackio_logs(outcome.detail["project"], name)
        return log
    (folder,) = run_folders(out)
    assert outcome.detail["where"] == str(folder)  # inside output_dir
    return wandb_logged(folder)


def check_logged(backend: str, result: RunResult, out: Path, name: str) -> dict[str, Any]:
    """Results equal to the saved file's (keys and values); one table row per sample."""
    logged = logged_of(backend, result, out, name)
    want = expected_results(result)
    assert {k: _plain(logged[k]) for k in want} == want
    tables = {k for k in logged if k.startswith("details/")}
    assert tables == {"details/" + t.replace(":", "/") for t in result.samples}
    for task, samples in result.samples.items():
        table = logged["details/" + task.replace(":", "/")]
        if backend == "trackio":
            rows = table["_value"]
        else:
            (folder,) = run_folders(out)
            rows = json.loads((folder / "files" / table["path"]).read_text())["data"]
            assert table["nrows"] == samples
        assert len(rows) == samples > 0
    return logged


async def _evaluate(out: Path, run_info: RunInfo | None = None, n: int = 40) -> RunResult:
    rng = random.Random(11)
    with anyio.fail_after(120):
        async with EvaluationTracker(out, use_wandb=True, nanotron_run_info=run_info) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m", model_sha="abc"))
            await tracker.log_tasks(TASKS[:2])
            for i in range(n):
                await tracker.log_sample(TASKS[i % 2].name, *sample(rng, TASKS[i % 2], i))
            return await tracker.save()


# -- the tests -----------------------------------------------------------------------------------


async def test_the_run_reaches_the_tracker(tmp_path: Path, backend: str) -> None:
    """lighteval's results keys and values, and each task's details as a table."""
    result = await _evaluate(tmp_path)
    assert result.ok, result.outputs
    logged = check_logged(backend, result, tmp_path, f"org/m {result.date_id}")
    assert "checkpoint_step" not in logged  # one evaluation, the tracker's own step
    if backend == "wandb":  # what was logged and nothing else: no console, machine, metrics
        kinds = {r.WhichOneof("record_type") for r in wandb_records(run_folders(tmp_path)[0])}
        assert kinds.isdisjoint({"output_raw", "output", "environment", "stats"}), kinds
    outcome = result.output("wandb")
    assert outcome is not None and outcome.detail["tables"] == result.samples


async def test_checkpoints_are_steps_of_one_tracker_run(tmp_path: Path, backend: str) -> None:
    """Two checkpoints of a training run, evaluated out of order, are two steps of one run."""
    first = await _evaluate(tmp_path / "a", RunInfo(run="exp", step=2000))
    second = await _evaluate(tmp_path / "b", RunInfo(run="exp", step=1000), n=20)
    outcomes = [r.output("wandb") for r in (first, second)]
    assert all(o is not None and o.ok and o.detail["run"] == "exp" for o in outcomes), outcomes
    if backend == "trackio":
        project = outcomes[0].detail["project"]  # type: ignore[union-attr]
        from trackio.sqlite_storage import SQLiteStorage

        assert SQLiteStorage.get_runs(project) == ["exp"]
        logs = {log["step"]: log for log in trackio_logs(project, "exp")}
        assert sorted(logs) == [1000, 2000]
        for step, result in ((2000, first), (1000, second)):
            want = expected_results(result)
            assert {k: _plain(logs[step][k]) for k in want} == want
        return
    folders = [*run_folders(tmp_path / "a"), *run_folders(tmp_path / "b")]
    runs = [
        next(r.run for r in wandb_records(f) if r.WhichOneof("record_type") == "run")
        for f in folders
    ]
    assert len({r.run_id for r in runs}) == 1 and {r.display_name for r in runs} == {"exp"}
    for folder, step, result in ((folders[0], 2000, first), (folders[1], 1000, second)):
        logged = wandb_logged(folder)
        assert logged["checkpoint_step"] == step
        want = expected_results(result)
        assert {k: _plain(logged[k]) for k in want} == want
        metrics = [
            r.metric for r in wandb_records(folder) if r.WhichOneof("record_type") == "metric"
        ]
        assert any(m.glob_name == "*" and m.step_metric == "checkpoint_step" for m in metrics)


async def test_runs_saved_at_once_are_tracker_runs_of_their_own(
    tmp_path: Path, backend: str
) -> None:
    """Two runs of one process saving together: each logged whole, in its own tracker run."""
    results: dict[str, RunResult] = {}

    async def one(name: str) -> None:
        results[name] = await _evaluate(tmp_path / name, RunInfo(run=name, step=7))

    async with anyio.create_task_group() as tg:
        for name in ("left", "right"):
            tg.start_soon(one, name)
    for name, result in results.items():
        outcome = result.output("wandb")
        assert outcome is not None and outcome.ok and outcome.detail["run"] == name, outcome
        if backend == "trackio":
            (logged,) = trackio_logs(outcome.detail["project"], name)
            assert logged["step"] == 7
        else:
            (folder,) = run_folders(tmp_path / name)
            logged = wandb_logged(folder)
            assert logged["checkpoint_step"] == 7
        want = expected_results(result)
        assert {k: _plain(logged[k]) for k in want} == want


def test_the_sync_tracker_logs_as_lighteval_does(tmp_path: Path, backend: str) -> None:
    """lighteval's drop-in, ``use_wandb=True``: the same results and tables."""
    tasks = {"custom|addition|0": TaskSpec(name="custom|addition|0", categories=["generative"])}
    with SyncEvaluationTracker(output_dir=str(tmp_path), use_wandb=True) as tracker:
        tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/sync"))
        tracker.task_config_logger.log(tasks)
        for i in range(25):
            doc = Doc(query=f"2 + {i} =", choices=[str(2 + i)], gold_index=0, id=str(i))
            response = ModelResponse(text=[str(2 + i)], input_tokens=[1, i], output_tokens=[[i]])
            metrics = {"em": float(i % 3 != 0)}
            tracker.metrics_logger.log("custom|addition|0", metrics)
            tracker.details_logger.log("custom|addition|0", doc, response, metrics)
        tracker.metrics_logger.aggregate(task_dict=tasks, bootstrap_iters=100)
        result = tracker.save()
    assert result.ok, result.outputs
    check_logged(backend, result, tmp_path, f"org/sync {result.date_id}")


async def test_the_callers_own_trackio_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training loop's trackio run, current where the tracker saves, is neither finished nor
    given the evaluation's config: the evaluation is a run of its own."""
    import trackio

    monkeypatch.setenv("WANDB_PROJECT", "evals-beside-training")
    training = trackio.init(project="training", name="train", config={"lr": 0.1}, embed=False)
    try:
        trackio.log({"loss": 1.0})
        result = await _evaluate(tmp_path, n=10)
        trackio.log({"loss": 0.5})
        assert trackio.config is training.config and trackio.config["lr"] == 0.1
        # what trackio prints when it finishes a run: once, for the evaluation's own
        assert capsys.readouterr().out.count("Run finished") == 1
    finally:
        trackio.finish()
    outcome = result.output("wandb")
    assert outcome is not None and outcome.ok, outcome
    assert [log["loss"] for log in trackio_logs("training", "train")] == [1.0, 0.5]


async def test_the_callers_own_wandb_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training loop's W&B run stays W&B's current run, unfinished, beside the evaluation's."""
    import wandb

    monkeypatch.setitem(sys.modules, "trackio", None)
    monkeypatch.setenv("WANDB_PROJECT", "evals-beside-training")
    training = wandb.init(project="training", dir=str(tmp_path))
    try:
        result = await _evaluate(tmp_path / "eval", n=10)
        assert wandb.run is training
        training.log({"loss": 0.5})  # a finished run refuses this
    finally:
        training.finish()
    outcome = result.output("wandb")
    assert outcome is not None and outcome.ok, outcome


async def test_a_refused_project_is_an_outcome_and_the_files_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trackio refusing the project fails the output, not the save: the local files are there."""
    monkeypatch.setenv("WANDB_PROJECT", "registry-evals")  # reserved by trackio
    result = await _evaluate(tmp_path)
    outcome, local = result.output("wandb"), result.output("local")
    assert outcome is not None and not outcome.ok and not result.ok
    assert outcome.error is not None and outcome.error.startswith("trackio: ValueError")
    assert local is not None and local.ok and Path(result.results_path).is_file()


@pytest.fixture
def fresh_wandb() -> Iterator[None]:
    """W&B reads its environment once per process session: end the session around the test."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


async def test_an_unreachable_wandb_keeps_the_key_out_of_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_wandb: None
) -> None:
    """W&B online with nowhere to go: a failed outcome, and its API key in no message or file."""
    key = "local-" + uuid.uuid4().hex + uuid.uuid4().hex[:10]
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(sys.modules, "trackio", None)
    monkeypatch.setenv("WANDB_PROJECT", "evals-offline-net")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    result = await _evaluate(tmp_path, n=10)
    outcome = result.output("wandb")
    assert outcome is not None and not outcome.ok and outcome.error is not None
    assert outcome.error.startswith("wandb: ") and key not in outcome.error
    local = result.output("local")
    assert local is not None and local.ok
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in files)  # W&B wrote its logs, in output_dir
    assert not [p for p in files if key.encode() in p.read_bytes()]
