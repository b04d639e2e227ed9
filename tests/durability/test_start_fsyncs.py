"""A run's fixed fsyncs (docs/design/durability.md, "fsyncs per run") and the start's one step."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import pytest

from evalstream import EvaluationTracker, ModelInfo
from evalstream.durability.runstate import (
    RunSettings,
    new_status,
    read_settings,
    read_status,
    write_start,
)
from evalstream.durability.storage import atomic_write_many

if TYPE_CHECKING:
    from pathlib import Path


async def _empty_run(out: Path) -> None:
    async with EvaluationTracker(out, flush_interval=600) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        result = await tracker.save()
    assert result.ok


async def test_an_empty_run_costs_twelve_fsyncs(tmp_path: Path, fsyncs: list[int]) -> None:
    """Start 4 (the run folder's entry, two files, one folder fsync), save 8, close 0."""
    with anyio.fail_after(60):
        await _empty_run(tmp_path)  # creates the output folder and .evalstream
        del fsyncs[:]
        await _empty_run(tmp_path)
    assert len(fsyncs) == 12


def test_the_start_writes_settings_and_marker_in_one_step(tmp_path: Path) -> None:
    """Both files read back as written; no temporary file is left."""
    settings = RunSettings(output_dir=str(tmp_path))
    status = new_status("run-1", 1.0)
    write_start(tmp_path, settings, status)
    assert read_settings(tmp_path) == settings
    assert read_status(tmp_path) == status
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "status.json"]


def test_a_failed_write_renames_nothing_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The second file cannot be written: the first is not renamed either, and both temporary
    files are gone (a crash could leave one; an exception does not)."""
    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_many(tmp_path, [("a", b"new"), ("b", object())])  # type: ignore[list-item]
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
    assert (tmp_path / "a").read_bytes() == b"old"


def test_files_are_renamed_in_order_with_their_bytes(tmp_path: Path) -> None:
    """Every file holds its bytes whole (a large one too: os.write may write part of it)."""
    big = os.urandom(3 << 20)
    atomic_write_many(tmp_path / "sub", [("x", b"1"), ("big", big)])
    assert (tmp_path / "sub" / "x").read_bytes() == b"1"
    assert (tmp_path / "sub" / "big").read_bytes() == big
