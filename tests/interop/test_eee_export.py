"""`evalstream export --format eee` on a real saved run, read back without every_eval_ever: the
files are where the datastore wants them and hold the run's numbers (tests/interop/test_eee.py
validates the same files with every_eval_ever's own validator, in its Python 3.12 venv)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from evalstream.cli.main import main
from evalstream.interop import eee_samples
from evalstream.interop.eee import export_run
from evalstream.runs.loading import resolve_run

from _eee import GEN, MC, MODEL, PPL, TASKS, saved_eee_run, saved_odd_run

DOCS = 120
METRICS = {MC: ["acc", "margin"], GEN: ["em"], PPL: ["word_perplexity"]}


@pytest.fixture(scope="module", params=["flat", "lighteval"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run of each details layout, exported with the command line."""
    root = tmp_path_factory.mktemp(f"eee-{request.param}")
    saved_eee_run(root / "runs", docs=DOCS, layout=request.param)
    run = resolve_run(str(root / "runs"), latest=True)
    assert (
        main(["export", str(root / "runs"), "--latest", "--format", "eee", "-o", str(root / "eee")])
        == 0
    )
    return run, root / "eee"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pair(out: Path, task: str) -> tuple[dict[str, Any], Path]:
    """A task's aggregate record and its samples file."""
    (aggregate,) = [
        p
        for p in out.rglob("*.json")
        if json.loads(p.read_text())["evaluation_results"][0]["evaluation_name"] == task
    ]
    return json.loads(aggregate.read_text()), aggregate.with_name(aggregate.stem + "_samples.jsonl")


def test_one_aggregate_and_samples_file_per_task_at_datastore_paths(exported: Any):
    """data/<task>/<org>/<model>/<uuid>.json and <uuid>_samples.jsonl for each of the 3 tasks."""
    _, out = exported
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(files) == 6
    folders = {str(Path(f).parent) for f in files}
    assert folders == {
        f"data/{c}/org/tiny-model" for c in ("suite_mc_alpha_0", "suite_gen_beta_3", "other_ppl_0")
    }
    for task in TASKS:
        record, samples = _pair(out, task)
        assert samples.exists()
        detail = record["detailed_evaluation_results"]
        assert detail["file_path"] == str(samples.relative_to(out))
        assert detail["checksum"] == hashlib.sha256(samples.read_bytes()).hexdigest()
        assert detail["total_rows"] == len(samples.read_text().splitlines())


def test_aggregate_holds_the_results_file_numbers(exported: Any):
    """Each metric's score, stderr, 95 % interval and sample count are the results file's."""
    run, out = exported
    for task in TASKS:
        record, _ = _pair(out, task)
        row = run.results["results"][task]
        results = {r["evaluation_result_id"]: r for r in record["evaluation_results"]}
        assert sorted(results) == sorted(METRICS[task])
        for metric, result in results.items():
            details = result["score_details"]
            assert details["score"] == row[metric]
            assert details["uncertainty"]["standard_error"]["value"] == row[f"{metric}_stderr"]
            interval = details["uncertainty"]["confidence_interval"]
            assert interval["lower"] < row[metric] < interval["upper"]
            assert details["uncertainty"]["num_samples"] == DOCS
        assert record["model_info"]["id"] == MODEL
        assert record["eval_library"]["additional_details"]["task_version"] == str(
            run.results["versions"][task]
        )
    mc, _ = _pair(out, MC)
    config = {r["evaluation_result_id"]: r["metric_config"] for r in mc["evaluation_results"]}
    assert config["acc"]["score_type"] == "binary" and "score_type" not in config["margin"]
    ppl, _ = _pair(out, PPL)
    assert ppl["evaluation_results"][0]["metric_config"]["lower_is_better"] is True
    gen, _ = _pair(out, GEN)
    source = gen["evaluation_results"][0]["source_data"]
    assert (source["source_type"], source["hf_repo"], source["hf_split"]) == (
        "hf_dataset",
        "org/beta-dataset",
        "test",
    )
    args = gen["evaluation_results"][0]["generation_config"]["generation_args"]
    assert args == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 16}


def test_samples_file_scores_equal_the_details(exported: Any):
    """One line per sample and metric, in the details' order, with the details' score."""
    run, out = exported
    for task in TASKS:
        record, samples = _pair(out, task)
        lines = _lines(samples)
        details = run.read_details(task, columns=["metrics"]).column("metrics").to_pylist()
        assert len(details) == DOCS
        assert len(lines) == DOCS * len(METRICS[task])
        for metric in METRICS[task]:
            mine = [line for line in lines if line["evaluation_result_id"] == metric]
            assert [line["evaluation"]["score"] for line in mine] == [d[metric] for d in details]
            assert len({line["sample_id"] for line in mine}) == DOCS
        assert {line["evaluation_id"] for line in lines} == {record["evaluation_id"]}


def test_samples_hold_input_output_and_target(exported: Any):
    """The question, the model's answer and the reference answer of each sample."""
    _, out = exported
    _, samples = _pair(out, GEN)
    first = _lines(samples)[0]
    assert first["input"]["raw"] == "Say 0" and first["input"]["reference"] == ["0"]
    assert first["output"]["raw"] in (["0"], ["?"])
    assert first["evaluation"]["is_correct"] is (first["output"]["raw"] == ["0"])
    _, samples = _pair(out, MC)
    for line in _lines(samples)[:20]:
        if line["evaluation_result_id"] == "acc":  # the choice ranked first is the answer
            assert (line["output"]["raw"] == ["A"]) is (line["evaluation"]["score"] == 1.0)
            assert line["input"]["reference"] == ["A"] and line["input"]["choices"] == ["A", "B"]


def test_batches_do_not_change_the_output(
    exported: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Read 7 rows at a time instead of 1024, the samples files are the same bytes; exporting
    again rewrites the same file names."""
    run, out = exported
    monkeypatch.setattr(eee_samples, "BATCH_ROWS", 7)
    again = export_run(run, str(tmp_path))
    assert sorted(str(Path(p).relative_to(tmp_path)) for p in again) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
    )
    for path in again:
        if path.endswith(".jsonl"):  # evaluation_id holds the export time: compare the rest
            theirs = _lines(out / Path(path).relative_to(tmp_path))
            for line in theirs:
                line.pop("evaluation_id")
            mine = _lines(Path(path))
            for line in mine:
                line.pop("evaluation_id")
            assert mine == theirs


def test_export_refuses_a_url_or_a_file(
    exported: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """-o names a local folder: a URL or an existing file is a clear error, nothing written."""
    run, _ = exported
    file = tmp_path / "x.json"
    file.write_text("{}")
    assert main(["export", run.results_path, "--format", "eee", "-o", str(file)]) == 2
    assert main(["export", run.results_path, "--format", "eee", "-o", "s3://bucket/eee"]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "local folder" in err
    assert file.read_text() == "{}"


@pytest.mark.parametrize("save_details", [True, False])
def test_nan_results_are_left_out_and_named(tmp_path: Path, save_details: bool):
    """A metric whose result is NaN is no score: left out of both files and named in
    ``source_metadata``; a model named without its organisation goes under ``unknown/``; without
    details there is the aggregate alone, with no bounds it cannot know."""
    saved_odd_run(tmp_path / "runs", save_details=save_details)
    run = resolve_run(str(tmp_path / "runs"), latest=True)
    files = [Path(p) for p in export_run(run, str(tmp_path / "eee"))]
    assert [p.parent.relative_to(tmp_path / "eee") for p in files] == [
        Path("data/t_a_0/unknown/tiny")
    ] * (2 if save_details else 1)
    record = json.loads(files[0].read_text())
    assert "developer" not in record["model_info"]
    assert record["source_metadata"]["additional_details"]["metrics_not_finite"] == "allnan,odd"
    (result,) = record["evaluation_results"]
    assert result["evaluation_result_id"] == "acc" and result["score_details"]["score"] == 0.4
    assert (
        "uncertainty" not in result["score_details"]
        or "standard_error" not in result["score_details"]["uncertainty"]
    )
    if save_details:
        assert [line["evaluation"]["score"] for line in _lines(files[1])] == [
            0.0,
            1.0,
            0.0,
            1.0,
            0.0,
        ]
        assert result["metric_config"]["score_type"] == "binary"
    else:
        assert (
            "detailed_evaluation_results" not in record
            and "score_type" not in result["metric_config"]
        )
