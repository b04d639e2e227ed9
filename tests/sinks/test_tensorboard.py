"""The TensorBoard sink, read back by TensorBoard's own loader and by a real TensorBoard server."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from evalstream._errors import ConfigError, RunStateError, UnsafeNameError
from evalstream.sinks.tensorboard import (
    LiveScalars,
    RunInfo,
    event_files_for_hub,
    run_info_from,
    write_tensorboard,
    write_tensorboard_sync,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

RESULTS: dict[str, dict[str, float | None]] = {
    "leaderboard|mmlu:abstract_algebra|5": {"acc": 0.3, "acc_stderr": 0.046},
    "leaderboard|mmlu:anatomy|5": {"acc": 0.5, "acc_stderr": 0.043},
    "leaderboard|mmlu:_average|5": {"acc": 0.4, "acc_stderr": 0.0445},
    "leaderboard|gsm8k|5": {"qem": 0.25, "qem_stderr": 0.012},
    "all": {"acc": 0.4, "acc_stderr": 0.0445, "qem": 0.25, "qem_stderr": 0.012},
}
EXPECTED_SCALARS = {
    "eval_mmlu/mmlu_abstract_algebra/acc": 0.3,
    "stderr_eval/mmlu_abstract_algebra/acc_stderr": 0.046,
    "eval_mmlu/mmlu_anatomy/acc": 0.5,
    "stderr_eval/mmlu_anatomy/acc_stderr": 0.043,
    "eval/gsm8k/qem": 0.25,
    "stderr_eval/gsm8k/qem_stderr": 0.012,
    "eval/mmlu/acc": 0.4,
}
SUMMARY = {"hashes": {"hash_examples": "ab12"}, "truncated": 0, "padded": 3}
SUMMARY_TASKS = {name: SUMMARY for name in RESULTS if "_average" not in name and name != "all"}
CONFIG = {"model_name": "org/model", "lighteval_sha": "?"}


def write(tmp_path: Path, results: Any = RESULTS, **kwargs: Any) -> list[Path]:
    return write_tensorboard_sync(
        output_dir=tmp_path,
        results=results,
        config_general=CONFIG,
        summary_tasks=kwargs.pop("summary_tasks", SUMMARY_TASKS),
        **kwargs,
    )


def load(logdir: Path) -> event_accumulator.EventAccumulator:
    guidance = dict.fromkeys(event_accumulator.DEFAULT_SIZE_GUIDANCE, 0)
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance=guidance)
    acc.Reload()
    return acc


def scalars_at(acc: event_accumulator.EventAccumulator, step: int) -> dict[str, float]:
    return {
        tag: next(e.value for e in acc.Scalars(tag) if e.step == step)
        for tag in acc.Tags()["scalars"]
        if any(e.step == step for e in acc.Scalars(tag))
    }


def text(acc: event_accumulator.EventAccumulator, tag: str) -> str:
    (event,) = acc.Tensors(f"{tag}/text_summary")
    return str(event.tensor_proto.string_val[0].decode())


def test_tags_steps_values_and_texts_read_back_by_tensorboard(tmp_path: Path) -> None:
    """Every expected tag holds its float32 value at the run's step, and the texts are tables."""
    (path,) = write(tmp_path, run_info=RunInfo(run="llama-1b", step=1234))
    assert path.parent == tmp_path / "tb" / "llama-1b_eval"
    assert path.name.startswith("0001234_events.out.tfevents.")
    acc = load(path.parent)
    assert set(acc.Tags()["scalars"]) == set(EXPECTED_SCALARS)
    for tag, value in EXPECTED_SCALARS.items():
        (event,) = acc.Scalars(tag)
        assert event.step == 1234
        assert np.float32(event.value) == np.float32(value), tag
    texts = {
        "eval_config",
        *(f"eval_details_{task}" for task in SUMMARY_TASKS),
    }
    assert set(acc.Tags()["tensors"]) == {f"{t}/text_summary" for t in texts}
    config = text(acc, "eval_config")
    assert "| Task | Metric | Value | Stderr |" in config
    assert "| leaderboard\\|mmlu:abstract_algebra\\|5 | acc | 0.3 | 0.046 |" in config
    assert "| all | qem | 0.25 | 0.012 |" in config
    assert "| model_name | org/model |" in config
    details = text(acc, "eval_details_leaderboard|gsm8k|5")
    assert "| hashes.hash_examples | ab12 |" in details
    assert "| padded | 3 |" in details


def test_two_part_names_and_no_run_info(tmp_path: Path) -> None:
    """Later lighteval names (task|fewshot) are kept whole, as lighteval does; no run info: step 0."""
    results = {
        "mmlu:anatomy|0": {"acc": 0.5},
        "mmlu:_average|0": {"acc": 0.5},
        "ifeval|0": {"prompt_level_strict_acc": 0.75},
    }
    (path,) = write(tmp_path, results, summary_tasks={}, prefix="val")
    assert path.parent == tmp_path / "tb" / "val"
    assert path.name.startswith("0000000_")
    acc = load(path.parent)
    assert scalars_at(acc, 0) == {
        "val_mmlu/mmlu_anatomy_0/acc": 0.5,
        "val/ifeval_0/prompt_level_strict_acc": 0.75,
        "val/mmlu/acc": 0.5,
    }


def test_none_nan_and_inf_are_skipped(tmp_path: Path) -> None:
    """Non-finite values write no scalar and are left out of suite means; the rest is written."""
    results = {
        "s|mmlu:a|0": {"acc": math.nan, "acc_stderr": None, "f1": 0.5},
        "s|mmlu:b|0": {"acc": 0.2, "f1": math.inf},
    }
    (path,) = write(tmp_path, results, summary_tasks={})
    acc = load(path.parent)
    assert scalars_at(acc, 0) == pytest.approx(
        {
            "eval_mmlu/mmlu_a/f1": 0.5,
            "eval_mmlu/mmlu_b/acc": 0.2,
            "eval/mmlu/acc": 0.2,
            "eval/mmlu/f1": 0.5,
        },
        rel=1e-6,
    )
    assert "| s\\|mmlu:a\\|0 | acc | nan |  |" in text(acc, "eval_config")


def test_checkpoints_out_of_order_sort_by_step(tmp_path: Path) -> None:
    """Steps 3000, 1000, 2000 give files sorted by step, earlier files untouched, three points."""
    written: list[Path] = []
    for step in (3000, 1000, 2000):
        results = {"lb|mmlu:anatomy|5": {"acc": step / 10_000}}
        paths = write(tmp_path, results, run_info=RunInfo(run="r", step=step))
        assert len(paths) == 1
        written += paths
    logdir = tmp_path / "tb" / "r_eval"
    names = sorted(p.name for p in logdir.iterdir())
    assert names == sorted(p.name for p in written)  # nothing renamed after the fact
    assert [n[:8] for n in names] == ["0001000_", "0002000_", "0003000_"]
    events = load(logdir).Scalars("eval_mmlu/mmlu_anatomy/acc")
    assert [e.step for e in events] == [1000, 2000, 3000]
    assert [e.value for e in events] == [np.float32(0.1), np.float32(0.2), np.float32(0.3)]


async def test_outcome_reports_files_and_scalar_count(tmp_path: Path) -> None:
    """The async writer returns ok with the file and the number of scalars written."""
    with anyio.fail_after(10):
        outcome = await write_tensorboard(
            output_dir=tmp_path,
            results=RESULTS,
            config_general=CONFIG,
            summary_tasks=SUMMARY_TASKS,
            run_info=RunInfo(run="r", step=5),
        )
    assert outcome.ok, outcome.error
    assert outcome.scalars == len(EXPECTED_SCALARS)
    assert outcome.logdir == str(tmp_path / "tb" / "r_eval")
    assert [Path(f).parent for f in outcome.files] == [tmp_path / "tb" / "r_eval"]


@pytest.fixture(params=["file_in_the_way", "read_only_dir"])
def unwritable_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """An output dir where the tb folder cannot be created."""
    if request.param == "file_in_the_way":
        (tmp_path / "tb").write_text("not a folder")
        yield tmp_path
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    tmp_path.chmod(0o555)
    try:
        yield tmp_path
    finally:
        tmp_path.chmod(0o755)


async def test_unwritable_output_dir_is_an_outcome_not_a_raise(unwritable_dir: Path) -> None:
    """An unwritable output dir gives ok=False with an error naming the folder and the fix."""
    with anyio.fail_after(10):
        outcome = await write_tensorboard(
            output_dir=unwritable_dir, results=RESULTS, config_general={}, summary_tasks={}
        )
    assert not outcome.ok
    assert outcome.files == []
    assert outcome.error is not None
    expected = f"TensorBoardError: cannot write TensorBoard events under {unwritable_dir}/tb/eval: "
    assert outcome.error.startswith(expected)
    assert "writable" in outcome.error


async def test_unsafe_prefix_is_an_outcome(tmp_path: Path) -> None:
    """A prefix that would escape the tb folder is refused before any file is written."""
    with anyio.fail_after(10):
        outcome = await write_tensorboard(
            output_dir=tmp_path, results=RESULTS, config_general={}, summary_tasks={}, prefix="../x"
        )
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("UnsafeNameError")
    assert not (tmp_path / "tb").exists()


def test_run_info_from_accepts_nanotron_like_objects() -> None:
    """Objects with run and step convert; a None step is 0; bad objects fail with a fix."""
    info = RunInfo(run="r", step=7)
    assert run_info_from(info) is info
    assert run_info_from(None) is None
    assert run_info_from(SimpleNamespace(run="r", step=np.int64(7))) == info
    assert run_info_from(SimpleNamespace(run="r", step=None)) == RunInfo(run="r")
    with pytest.raises(ConfigError, match="RunInfo"):
        run_info_from(object())
    with pytest.raises(UnsafeNameError):
        RunInfo(run="a/b")
    with pytest.raises(ConfigError, match=">= 0"):
        RunInfo(run="r", step=-1)


def test_event_files_for_hub_maps_under_tb(tmp_path: Path) -> None:
    """Event files map to tb/{run}_{prefix}/{file} in the repo; foreign paths are refused."""
    (path,) = write(tmp_path, run_info=RunInfo(run="r", step=1))
    assert event_files_for_hub([path], tmp_path) == {f"tb/r_eval/{path.name}": path}
    with pytest.raises(ConfigError):
        event_files_for_hub([tmp_path / "elsewhere"], tmp_path)


async def test_live_scalars_emit_running_means_every_n_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running means land at steps n, 2n… per task, with one thread hop per emission."""
    hops = 0
    run_sync = anyio.to_thread.run_sync

    async def counting_run_sync(*args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await run_sync(*args, **kwargs)

    live = LiveScalars(tmp_path / "out", every=2, run_info=RunInfo(run="r", step=3000))
    assert not (tmp_path / "out").exists()  # construction does no I/O
    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)
    with anyio.fail_after(10):
        async with live:
            for value in (1.0, 0.0, 1.0, 1.0, 0.0):
                await live.observe("gsm8k", {"qem": value, "bad": math.nan})
            for value in (0.5, 0.25):
                await live.observe("mmlu:anatomy", {"acc": value})
    assert hops == 1 + 3 + 1  # open, emissions at gsm8k 2 and 4 and mmlu 2, close
    assert live.logdir == tmp_path / "out" / "tb" / "r_eval_live" / "step_0003000"
    acc = load(live.logdir)
    assert set(acc.Tags()["scalars"]) == {"eval_live/gsm8k/qem", "eval_live/mmlu_anatomy/acc"}
    qem = acc.Scalars("eval_live/gsm8k/qem")
    assert [(e.step, e.value) for e in qem] == [(2, 0.5), (4, 0.75)]
    assert [(e.step, e.value) for e in acc.Scalars("eval_live/mmlu_anatomy/acc")] == [(2, 0.375)]
    with pytest.raises(RunStateError):
        await live.observe("gsm8k", {"qem": 1.0})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


async def test_real_tensorboard_server_lists_our_tags(tmp_path: Path) -> None:
    """A real `tensorboard` process serves our runs and tags from /data/plugin/scalars/tags."""
    for step in (3000, 1000, 2000):
        write(tmp_path, run_info=RunInfo(run="r", step=step))
    logdir, port = tmp_path / "tb", free_port()
    command = [
        str(Path(sys.executable).parent / "tensorboard"),
        *("--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)),
        *("--load_fast=false", "--reload_interval", "1"),
    ]
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
    tags: Any = {}
    with (tmp_path / "tensorboard.log").open("wb") as log:
        process = await anyio.open_process(command, stdout=log, stderr=log)
        try:
            with anyio.fail_after(40):  # startup measured at a few seconds on 2 cores
                while set(tags.get("r_eval", {})) != set(EXPECTED_SCALARS):
                    with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                        tags = await anyio.to_thread.run_sync(get_json, url)
                    await anyio.sleep(0.25)
        finally:
            with anyio.CancelScope(shield=True):
                process.terminate()
                with anyio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()
    assert set(tags) == {"r_eval"}
    assert set(tags["r_eval"]) == set(EXPECTED_SCALARS)
    assert process.returncode is not None
