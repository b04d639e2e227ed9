"""What a newcomer sees first: --version, help texts, push tokens, quiet pipes, progress on a tty."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from _terminal import read_terminal
from evalstream.cli.main import build_parser, main
from evalstream.cli.output import Output
from evalstream.testing import LoopbackHub

from _runs import TASKS, killed_run, saved_run

ORG = "evals-org"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"evalstream {version('evalstream')}"


def test_top_level_help_is_plain_text() -> None:
    """No raw reStructuredText markup; every subcommand listed."""
    text = build_parser().format_help()
    assert "``" not in text
    for command in ("ls", "show", "compare", "report", "recover", "push", "demo"):
        assert re.search(rf"^\s+{command}\s+\w", text, re.MULTILINE), command


def test_demo_help_describes_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out.split("options:", 1)[1]
    for option, default in (
        ("--output-dir", "evalstream-out"), ("--samples", "20000"), ("--concurrency", "64"),
        ("--seed", "0"),
    ):  # fmt: skip
        line = re.search(rf"^  {option} [A-Z_]+\s+([^(]+)\(default: ([^)]+)\)", text, re.MULTILINE)
        assert line and line.group(1).strip() and line.group(2) == default, option
    assert re.search(r"--quiet\s+no progress bar", text)


@pytest.mark.usefixtures("hf_env")
def test_push_without_a_token_names_hub_token_and_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = saved_run(tmp_path, 0.5, docs=20)
    assert main(["push", run.workdir, "--org", ORG, "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "hub_token=" in err and "--token-file" in err and "HF_TOKEN" in err
    assert " token=..." not in err


@pytest.mark.usefixtures("hf_env")
def test_push_latest_with_a_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """`push OUTPUT_DIR --latest --token-file F` publishes the newest run; the token stays off
    the command line and out of the output."""
    saved_run(tmp_path / "out", 0.5, docs=20)
    newest = saved_run(tmp_path / "out", 0.6, docs=20)
    with LoopbackHub() as hub:
        token_file = tmp_path / "token"
        token_file.write_text(hub.token + "\n")
        argv = ["push", str(tmp_path / "out"), "--org", ORG, "--endpoint", hub.endpoint]
        assert main([*argv, "--token-file", str(tmp_path / "missing")]) == 2
        assert "cannot read the token file" in capsys.readouterr().err
        assert main(argv) == 2  # an output folder needs --latest
        assert "pass --latest" in capsys.readouterr().err
        assert main([*argv, "--latest", "--token-file", str(token_file)]) == 0
        said = capsys.readouterr()
        repo = f"{ORG}/details_org__model_private"
        assert f"to {repo}" in said.out and hub.token not in said.out + said.err
        written = Path(newest.results_path).read_bytes()
        assert hub.file_bytes(repo, f"results_{newest.date_id}.json") == written


def _push(tmp_path: Path, token: str, endpoint: str) -> int:
    """`push` of a fresh saved run with ``token`` in a --token-file."""
    run = saved_run(tmp_path, 0.5, docs=20)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    argv = ["push", run.workdir, "--org", ORG, "--token-file", str(token_file)]
    return main([*argv, "--endpoint", endpoint])


@pytest.mark.usefixtures("hf_env")
def test_push_to_an_unreachable_hub_fails_at_once_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Hub whose name does not resolve: one line on stderr, no retries, saying why."""
    assert _push(tmp_path, "hf_unused_here", "http://nonexistent.invalid") == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "http://nonexistent.invalid could not be resolved" in err and "retry" not in err


@pytest.mark.usefixtures("hf_env")
def test_a_rejected_token_names_the_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Hub refusing the token (401): the hint names --token-file among the ways to pass one."""
    with LoopbackHub() as hub:
        assert _push(tmp_path, "hf_notavalidtokenatall", hub.endpoint) == 1
    err = capsys.readouterr().err
    assert "401" in err and "--token-file" in err and "HF_TOKEN" in err
    assert len(err.splitlines()) == 1, err


@pytest.mark.usefixtures("hf_env")
def test_pushing_a_recovered_run_warns_that_it_is_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recovered (partial) run is pushed with a warning naming every incomplete task."""
    dead = killed_run(tmp_path, 30)
    assert main(["recover", str(dead)]) == 0
    capsys.readouterr()
    with LoopbackHub() as hub:
        token_file = tmp_path / "token"
        token_file.write_text(hub.token)
        argv = ["push", str(dead), "--org", ORG, "--endpoint", hub.endpoint]
        assert main([*argv, "--token-file", str(token_file)]) == 0
    said = capsys.readouterr()
    assert said.err.startswith(
        "evalstream: warning: pushing a PARTIAL run (recovered from a dead run: only the "
        "samples it journaled); 3 incomplete task(s): "
    )
    for task in TASKS:
        assert f"{task} " in said.err
    assert "pushed" in said.out


def test_commands_are_quiet_on_a_pipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """No progress output when stderr is not a terminal."""
    assert main(["demo", "--samples", "160", "--output-dir", str(tmp_path / "o")]) == 0
    said = capsys.readouterr()
    assert said.err == "" and "samples tracked and saved" in said.out
    assert main(["report", str(tmp_path / "o"), "-o", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_demo_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """With stderr on a pseudo-terminal the demo draws rich's progress bar there."""
    primary, secondary = os.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    argv = [sys.executable, "-m", "evalstream.cli.main", "demo", "--samples", "3000"]
    child = subprocess.Popen(
        [*argv, "--output-dir", str(tmp_path)], stderr=secondary, stdout=subprocess.PIPE, env=env
    )
    os.close(secondary)
    text = read_terminal(primary)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and b"samples tracked and saved" in out
    assert "demo: logging" in text and "\u2501" in text  # rich's bar glyph


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_are_rich_on_a_terminal_and_plain_in_a_pipe() -> None:
    rows = [["suite|t|0", "acc", "0.5000"], ["all", "acc", "-"]]
    tty, pipe = _Terminal(), io.StringIO()
    Output(stream=tty).table("results", ["task", "metric", "value"], rows)
    Output(stream=pipe).table("results", ["task", "metric", "value"], rows)
    drawn = tty.getvalue()
    assert "┏━━━" in drawn and "│ suite|t|0 │ acc    │ 0.5000 │" in drawn  # value right-aligned
    assert pipe.getvalue().splitlines()[1:3] == [
        "task       metric  value ",
        "---------  ------  ------",
    ]
