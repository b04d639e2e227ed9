"""inspect_ai logs in and out (``-m inspect``), checked by inspect_ai itself.

Import: a real log from inspect_ai's own ``eval`` (``tests/inspect_child.py``, offline on its
``mockllm/model``) recorded as an evalstream run, whose ``show`` and ``query`` values must be
inspect's own metrics and which ``compare`` pairs with a native run of the same docs. Export: a
native run read back by ``read_eval_log``, listed by ``list_eval_logs`` and served by a real
``inspect view`` on loopback. Run by scripts/ci/inspect.sh in .venv-inspect; the one test without
the marker (the extra missing) runs in the main suite.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.cli.main import main

from _runs import TASKS, saved_run

CHILD = Path(__file__).parent.parent / "inspect_child.py"
N = 12
SCORERS = ("match", "includes", "partial")


@pytest.fixture(autouse=True)
def _inspect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inspect_ai's folders (traces, caches) in the test's folder, in this process too."""
    for name, value in _inspect_env(tmp_path / "inspect-home").items():
        monkeypatch.setenv(name, value)


def _inspect_env(home: Path) -> dict[str, str]:
    """inspect_ai's own data and cache folders inside the test's folder."""
    return {"XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}


def _inspect_eval(home: Path, epochs: int = 1) -> Any:
    """A log written by inspect_ai's ``eval``, read back by its ``read_eval_log``."""
    from inspect_ai.log import read_eval_log

    done = subprocess.run(
        [sys.executable, str(CHILD), str(home / "logs"), str(N), str(epochs)],
        env=os.environ | _inspect_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return read_eval_log(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def inspect_log(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A one-epoch log of the child's task."""
    return _inspect_eval(tmp_path_factory.mktemp("inspect"))


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _imported(inspect_log: Any, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["import", inspect_log.location, str(out), "--format", "inspect"]) == 0
    (run_dir,) = capsys.readouterr().out.split()
    return run_dir


def _inspect_metrics(log: Any) -> dict[str, dict[str, float]]:
    """Per scorer, inspect's metric values (``accuracy``/``mean`` and ``stderr``)."""
    return {s.name: {name: m.value for name, m in s.metrics.items()} for s in log.results.scores}


@pytest.mark.inspect
def test_import_keeps_inspects_own_metrics(
    inspect_log: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """show and query give inspect's accuracy and stderr per scorer, letters mapped as inspect
    maps them (the ``partial`` scorer's P counts 0.5), every sample a doc."""
    run_dir = _imported(inspect_log, tmp_path, capsys)
    expected = _inspect_metrics(inspect_log)
    assert expected["partial"]["accuracy"] not in (expected["match"]["accuracy"], 0.0)
    shown = _json(capsys, ["show", run_dir, "--json"])
    rows = {r["metric"]: r for r in shown["results"] if r["task"] == "arith"}
    assert set(rows) == set(SCORERS) and shown["model"] == "mockllm/model"
    for scorer in SCORERS:
        assert rows[scorer]["value"] == pytest.approx(expected[scorer]["accuracy"], abs=1e-12)
        assert rows[scorer]["stderr"] == pytest.approx(expected[scorer]["stderr"], abs=1e-12)
    sql = "select metric, value, stderr from results where task = 'arith'"
    queried = {r["metric"]: r for r in _json(capsys, ["query", str(tmp_path), sql, "--json"])}
    assert {m: queried[m]["value"] for m in SCORERS} == pytest.approx(
        {m: expected[m]["accuracy"] for m in SCORERS}
    )
    sql = "select example, predictions, gold, specifics, metrics from samples order by example"
    samples = _json(capsys, ["query", str(tmp_path), sql, "--json"])
    assert len(samples) == N == len(inspect_log.samples)
    by_input = {s.input: s for s in inspect_log.samples}
    for row in samples:
        sample = by_input[row["example"]]
        assert row["specifics"]["inspect_id"] == str(sample.id)
        assert row["predictions"] == [sample.output.completion]
        assert row["gold"] == [sample.target]
        letter = {"C": 1.0, "P": 0.5, "I": 0.0}[sample.scores["partial"].value]
        assert row["metrics"]["partial"] == letter
    listed = _json(capsys, ["ls", str(tmp_path), "--json"])
    assert [(r["status"], r["samples"]) for r in listed] == [("saved", N)]


@pytest.mark.inspect
def test_epochs_are_one_doc_scored_as_inspect_reduced_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With 3 epochs a sample is one doc with 3 predictions and inspect's reduced score, so
    show gives inspect's accuracy and its stderr over samples (not over epochs)."""
    log = _inspect_eval(tmp_path / "inspect", epochs=3)
    assert len(log.samples) == 3 * N
    run_dir = _imported(log, tmp_path / "out", capsys)
    shown = _json(capsys, ["show", run_dir, "--json"])
    rows = {r["metric"]: r for r in shown["results"] if r["task"] == "arith"}
    for scorer, expected in _inspect_metrics(log).items():
        assert rows[scorer]["value"] == pytest.approx(expected["accuracy"], abs=1e-12)
        assert rows[scorer]["stderr"] == pytest.approx(expected["stderr"], abs=1e-12)
    sql = "select len(predictions) as n, metrics.partial as p from samples where example = ?"
    sql = sql.replace("?", "'What is 4 + 4?'")  # off by one once, then right: (0.5 + 1 + 1) / 3
    (row,) = _json(capsys, ["query", str(tmp_path / "out"), sql, "--json"])
    assert row == {"n": 3, "p": pytest.approx(2.5 / 3)}


@pytest.mark.inspect
def test_a_log_without_reductions_maps_letters_as_inspect_does(
    inspect_log: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the log's reductions (older logs, other writers) the letters themselves go
    through value_to_float: the metrics are still inspect's."""
    from inspect_ai.log import write_eval_log

    bare = inspect_log.model_copy(update={"reductions": None})
    write_eval_log(bare, str(tmp_path / "bare.eval"))
    capsys.readouterr()
    assert main(["import", str(tmp_path / "bare.eval"), str(tmp_path), "--format", "inspect"]) == 0
    sql = "select metric, value, stderr from results where task = 'arith'"
    queried = {r["metric"]: r for r in _json(capsys, ["query", str(tmp_path), sql, "--json"])}
    for scorer, expected in _inspect_metrics(inspect_log).items():
        assert queried[scorer]["value"] == pytest.approx(expected["accuracy"], abs=1e-12)
        assert queried[scorer]["stderr"] == pytest.approx(expected["stderr"], abs=1e-12)


async def _native_run(out: Path) -> str:
    """evalstream's own run of the inspect task's docs: a model right on every doc."""
    sys.path.insert(0, str(CHILD.parent))
    from inspect_child import question

    async with EvaluationTracker(out) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/right"))
        await tracker.log_tasks([TaskSpec(name="arith")])
        for i in range(1, N + 1):
            text = question(i)
            doc = Doc(query=text, ctx=text, choices=[str(2 * i)], id=str(i))
            response = ModelResponse(input=text, text=[str(2 * i)])
            await tracker.log_sample("arith", doc, [response], {"match": 1.0})
        result = await tracker.save()
    return result.results_path


@pytest.mark.inspect
def test_imported_run_compares_with_a_native_run_on_shared_docs(
    inspect_log: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compare pairs the imported run's docs with a native run's: every doc shared, the
    difference the wrong and partial answers of the mock model."""
    imported = _imported(inspect_log, tmp_path / "imported", capsys)
    native = anyio.run(_native_run, tmp_path / "native")
    rows = _json(capsys, ["compare", imported, native, "--json"])["rows"]
    (row,) = [r for r in rows if (r["task"], r["metric"]) == ("arith", "match")]
    assert row["comparable"] and row["shared_docs"] == N
    wrong = sum(s.scores["match"].value != "C" for s in inspect_log.samples)
    assert row["difference"] == pytest.approx(wrong / N) and wrong > 0
    assert row["paired"]["difference"] == pytest.approx(wrong / N)


@pytest.mark.inspect
def test_task_name_renames_the_imported_task_and_an_unknown_one_is_refused(
    inspect_log: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--task-name arith=suite|arith|0`` records inspect's task under that name; renaming a
    task the log lacks is exit 2 naming it, with nothing written."""
    out = tmp_path / "renamed"
    argv = ["import", inspect_log.location, str(out), "--format", "inspect"]
    capsys.readouterr()
    assert main([*argv, "--task-name", "arith=suite|arith|0"]) == 0
    rows = _json(
        capsys,
        ["query", str(out), "select distinct task from results where task <> 'all'", "--json"],
    )
    assert [r["task"] for r in rows] == ["suite|arith|0"]
    bad = ["import", inspect_log.location, str(tmp_path / "bad"), "--format", "inspect"]
    assert main([*bad, "--task-name", "nope=x|y|0"]) == 2
    assert "names no task of these logs: ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.inspect
def test_export_reads_back_with_every_sample_score_and_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each task of a native run is one log: read_eval_log finds every details row as a sample
    with its scores, and the results' mean and stderr per metric; list_eval_logs lists them."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    run = saved_run(tmp_path / "run", 0.6, docs=30, score_noise=1)
    out = tmp_path / "logs"
    assert main(["export", run.results_path, "--format", "inspect", "-o", str(out)]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) == len(TASKS)
    listed = {info.task: info.name for info in list_eval_logs(str(out))}
    assert len(listed) == len(TASKS)
    for task in TASKS:
        path = next(p for p in written if f"_{task.translate(_SWAPS)}_" in p)
        assert listed[task.translate(_SWAPS)].endswith(Path(path).name)
        log = read_eval_log(path)
        assert (log.status, log.eval.task, log.eval.model) == ("success", task, "org/model")
        details = _details(run.details_paths[task])
        assert len(log.samples) == len(details) == 30
        for sample, row in zip(log.samples, details, strict=True):
            assert sample.input == row["example"] and sample.choices == row["choices"]
            assert sample.target == "AB"[row["gold_index"][0]]  # multiple choice: the letter
            assert {k: s.value for k, s in sample.scores.items()} == row["metrics"]
        metrics = _inspect_metrics(log)
        assert set(metrics) == {"acc", "score"}
        for name, values in metrics.items():
            assert values["mean"] == run.results["results"][task][name]
            assert values["stderr"] == run.results["results"][task][f"{name}_stderr"]


@pytest.mark.inspect
def test_a_folder_of_exported_logs_imports_back_as_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """native run -> one log per task -> one imported run with the native results, the folder
    listed by inspect's own listing (its logs.json manifest beside the logs is no log)."""
    from inspect_ai.log import write_log_dir_manifest

    run = saved_run(tmp_path / "run", 0.6, docs=25, score_noise=1)
    logs = tmp_path / "logs"
    assert main(["export", run.results_path, "--format", "inspect", "-o", str(logs)]) == 0
    write_log_dir_manifest(str(logs))
    assert (logs / "logs.json").exists()
    capsys.readouterr()
    assert main(["import", str(logs), str(tmp_path / "back"), "--format", "inspect"]) == 0
    (run_dir,) = capsys.readouterr().out.split()
    shown = _json(capsys, ["show", run_dir, "--json"])
    back = {(r["task"], r["metric"]): (r["value"], r["stderr"]) for r in shown["results"]}
    for task in TASKS:
        for metric in ("acc", "score"):
            native = run.results["results"][task]
            expected = (native[metric], native[f"{metric}_stderr"])
            assert back[(task, metric)] == pytest.approx(expected, abs=1e-12)


_SWAPS = str.maketrans(dict.fromkeys("_/:+| ", "-"))


def _details(path: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


@pytest.mark.inspect
def test_one_task_exports_to_one_file_and_several_need_a_folder(
    inspect_log: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o X.eval`` takes a one-task run (an imported log goes back with inspect's metrics);
    a run of several tasks is refused with what to pass instead."""
    from inspect_ai.log import read_eval_log

    run_dir = _imported(inspect_log, tmp_path / "imported", capsys)
    target = tmp_path / "back.eval"
    assert main(["export", run_dir, "--format", "inspect", "-o", str(target)]) == 0
    back = read_eval_log(str(target))
    assert [s.id for s in back.samples] == [s.id for s in inspect_log.samples]
    original = _inspect_metrics(inspect_log)
    for name, values in _inspect_metrics(back).items():
        assert values["mean"] == pytest.approx(original[name]["accuracy"])
        assert values["stderr"] == pytest.approx(original[name]["stderr"])
    as_json = tmp_path / "back.json"  # inspect's other log format
    assert main(["export", run_dir, "--format", "inspect", "-o", str(as_json)]) == 0
    assert read_eval_log(str(as_json)).results == back.results
    assert json.loads(as_json.read_text())["eval"]["task"] == "arith"  # JSON text indeed
    run = saved_run(tmp_path / "run", 0.6, docs=5)
    capsys.readouterr()
    assert main(["export", run.results_path, "--format", "inspect", "-o", str(target)]) == 2
    assert "has 3 tasks and an inspect log holds one: pass a folder" in capsys.readouterr().err


@pytest.mark.inspect
def test_inspect_view_serves_the_exported_logs(tmp_path: Path) -> None:
    """A real ``inspect view`` on loopback lists the exported logs and serves each whole."""
    run = saved_run(tmp_path / "run", 0.6, docs=10)
    out = tmp_path / "logs"
    assert main(["export", run.results_path, "--format", "inspect", "-o", str(out)]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inspect_cli = Path(sys.executable).parent / "inspect"
    argv = [str(inspect_cli), "view", "start", "--log-dir", str(out), "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*argv, "--port", str(port)],
        env=os.environ | _inspect_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_line(server, "Running on", timeout=60)
        base = f"http://127.0.0.1:{port}/api"
        files = _get(f"{base}/log-files")["files"]
        assert sorted(f["task"] for f in files) == sorted(t.translate(_SWAPS) for t in TASKS)
        for entry in files:
            log = _get(f"{base}/logs/{urllib.parse.quote(entry['name'], safe='')}")
            assert log["status"] == "success" and log["eval"]["task"] in TASKS
            assert len(log["samples"]) == 10
            assert {s["name"] for s in log["results"]["scores"]} == {"acc"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        assert server.stdout is not None
        server.stdout.close()


def _wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> None:
    """Read the server's output until ``marker``; fail if it exits or stays silent."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if marker in line:
                return
    pytest.fail(f"inspect view did not start: {''.join(seen)}")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_export_without_the_extra_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without inspect_ai installed, ``--format inspect`` fails in one line saying what to
    install (a missing inspect_ai is made unimportable where it is installed)."""
    monkeypatch.setitem(sys.modules, "inspect_ai", None)
    monkeypatch.delitem(sys.modules, "evalstream.interop.inspect", raising=False)
    run = saved_run(tmp_path / "run", 0.6, docs=3)
    for argv in (
        ["export", run.results_path, "--format", "inspect", "-o", str(tmp_path / "x")],
        ["import", str(tmp_path / "x.eval"), str(tmp_path / "out"), "--format", "inspect"],
    ):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--format inspect needs 'inspect_ai': pip install 'evalstream[inspect]'" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "out").exists()


def test_export_help_says_what_o_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``export --help`` says an inspect log is one task: a folder of them, or one file."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at hyphens: keep the text one line
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--format inspect: an inspect_ai log holds one task: -o FOLDER writes one .eval" in text
    assert "-o FILE.eval (or FILE.json) writes the one log of a one-task run" in text
