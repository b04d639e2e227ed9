"""Bad arguments are refused before any work: numbers out of range, folders that are files,
paths that do not exist; and `scripts/demo` resolves paths against the caller's folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalstream.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("samples", ["0", "-5", "7"])
def test_demo_refuses_fewer_samples_than_tasks(
    samples: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--samples 0` (and -5, 7) is an error naming the minimum, not a silent run of 8."""
    err = _refused(["demo", "--samples", samples, "--output-dir", str(tmp_path / "o")], capsys)
    assert f"must be at least 8 (one sample per task), got {samples}" in err
    assert not (tmp_path / "o").exists()


def test_numbers_out_of_range_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """--concurrency 0, --iters 0, report --samples -1, merge --wait -1: refused at parse time."""
    assert "must be at least 1, got 0" in _refused(["demo", "--concurrency", "0"], capsys)
    assert "must be at least 1, got 0" in _refused(["compare", "a", "b", "--iters", "0"], capsys)
    assert "must be at least 0, got -1" in _refused(["report", "a", "--samples", "-1"], capsys)
    err = _refused(["merge", str(tmp_path), "--run", "r", "--wait", "-1"], capsys)
    assert "must be zero or more seconds" in err


def test_an_output_dir_that_is_a_file_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file, or a path inside one, as --output-dir: said at once, nothing written."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    err = _refused(["demo", "--output-dir", str(afile)], capsys)
    assert f"OUTPUT_DIR {afile} is a file, not a folder" in err
    err = _refused(["demo", "--output-dir", str(afile / "sub")], capsys)
    assert f"is inside {afile}, which is a file" in err
    err = _refused(["recover", str(tmp_path), "--output-dir", str(afile)], capsys)
    assert "is a file, not a folder" in err
    assert afile.read_text() == "not a folder"


def test_ls_of_a_missing_path_or_a_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls nonexistent` exits 2 saying so; an empty folder has no runs (exit 0)."""
    assert main(["ls", str(tmp_path / "nonexistent")]) == 2
    assert (
        capsys.readouterr().err == f"evalstream: error: {tmp_path / 'nonexistent'} does not exist\n"
    )
    (tmp_path / "afile").write_text("x")
    assert main(["ls", str(tmp_path / "afile")]) == 2
    assert "is a file, not an output folder" in capsys.readouterr().err
    assert main(["ls", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {tmp_path}"


def test_scripts_demo_writes_a_relative_output_dir_where_it_was_called(tmp_path: Path) -> None:
    """`scripts/demo --output-dir rel` from another folder writes there, not in the repository.

    The script runs from a copy of the repository's scripts whose .venv is already set up
    (its `evalstream` runs this interpreter on this source tree).
    """
    repo, caller = tmp_path / "repo", tmp_path / "caller"
    (repo / "scripts").mkdir(parents=True)
    caller.mkdir()
    for name in ("demo", "_venv.sh"):
        shutil.copy2(REPO / "scripts" / name, repo / "scripts" / name)
    (repo / "pyproject.toml").write_text("")
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    (venv / "evalstream").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m evalstream.cli.main "$@"\n'
    )
    (venv / "evalstream").chmod(0o755)
    (repo / ".venv" / ".installed-report").touch()
    os.utime(repo / "pyproject.toml", (0, 0))  # older than the stamp: no install
    done = subprocess.run(
        [str(repo / "scripts" / "demo"), "--samples", "16", "--output-dir", "rel", "--quiet"],
        cwd=caller,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list((caller / "rel" / "results").rglob("results_*.json"))
    assert not (repo / "rel").exists()
    assert f"results: {caller / 'rel' / 'results'}/" in done.stdout
