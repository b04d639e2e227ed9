"""Where files go: a remote output_dir is staged in this user's private folder, never a planted one."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

import anyio
import fsspec
import pytest

from evalstream import EvaluationTracker, ModelInfo, StorageError, TaskSpec
from evalstream.durability.storage import OutputStore

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def tmpdir_(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TMPDIR of the test's own (what ``tempfile.gettempdir()`` answers)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _staging(tmpdir_: Path) -> Path:
    return tmpdir_ / f"evalstream-staging-{os.getuid()}"


async def _run(url: str) -> str:
    async with EvaluationTracker(url, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([TaskSpec(name="t|0")])
        result = await tracker.save()
    return result.results_path


async def test_a_remote_run_stages_in_a_private_folder(tmpdir_: Path) -> None:
    """The staging folder is made 0700 for this user, and reused by the next run."""
    with anyio.fail_after(30):
        first = await _run("memory://staging-a/evals")
        second = await _run("memory://staging-a/evals")
    staging = _staging(tmpdir_)
    info = staging.lstat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o700, os.getuid())
    assert fsspec.filesystem("memory").exists(first) and first != second
    assert OutputStore("memory://staging-a/evals").root == staging


async def test_a_planted_link_is_refused_and_nothing_goes_through_it(
    tmpdir_: Path, tmp_path: Path
) -> None:
    """A symbolic link at the staging name (another user's trap) raises StorageError before
    anything is written, and the folder it points to stays empty."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    _staging(tmpdir_).symlink_to(theirs)
    with pytest.raises(StorageError, match="is not a folder but a symbolic link"):
        await _run("memory://staging-b/evals")
    assert list(theirs.iterdir()) == []


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
async def test_a_folder_others_can_enter_is_refused(tmpdir_: Path, mode: int) -> None:
    """A pre-made staging folder with access for others raises StorageError naming its mode."""
    staging = _staging(tmpdir_)
    staging.mkdir()
    staging.chmod(mode)
    with pytest.raises(StorageError, match=f"open to other users \\(mode {mode:04o}\\)"):
        OutputStore("memory://staging-c/evals").local("results")
    assert list(staging.iterdir()) == []


def test_a_file_or_another_users_folder_is_refused(tmpdir_: Path) -> None:
    """A file at the name, or a folder owned by another user (as root: chown), is refused."""
    staging = _staging(tmpdir_)
    staging.write_text("")
    with pytest.raises(StorageError, match="is not a folder but a file"):
        _ = OutputStore("memory://staging-d/evals").root
    staging.unlink()
    if os.getuid() != 0:
        pytest.skip("making a folder another user owns needs root")
    staging.mkdir(mode=0o700)
    os.chown(staging, 65534, 65534)
    with pytest.raises(StorageError, match="belongs to user id 65534"):
        _ = OutputStore("memory://staging-d/evals").root


def test_a_local_store_does_no_staging(tmpdir_: Path, tmp_path: Path) -> None:
    """A local output_dir is its own root: no staging folder is made."""
    assert OutputStore(tmp_path / "out").root == tmp_path / "out"
    assert not _staging(tmpdir_).exists()
