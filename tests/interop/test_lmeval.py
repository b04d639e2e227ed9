"""``evalstream import --format lm-eval`` on files in lm-eval's shapes: the mapping, the
aggregates against lm-eval's own, ls/show/compare/query on the import, and damaged sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest

from _lmeval_shapes import DATE, GEN, LL, MC, mc_prompt, write_run
from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream._errors import InputError
from evalstream.cli.main import main
from evalstream.interop.lmeval import import_run
from evalstream.stats.paired import EXACT

NATIVE = "lighteval|tiny_mc|0"


def _results(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    src = tmp_path_factory.mktemp("lmeval-src")
    out = tmp_path_factory.mktemp("lmeval-out")
    lm = write_run(src)
    (path,) = import_run(str(src), str(out))
    return lm, path, out


def test_aggregates_agree_with_lm_evals_own(imported: tuple[dict[str, Any], str, Path]):
    """Every lm-eval mean and stderr is evalstream's, computed again from the per-doc values."""
    lm, path, _ = imported
    ours = _results(path)["results"]
    pairs = {
        (MC, "acc,none"): ("lm-eval|tiny_mc|0", "acc"),
        (MC, "acc_norm,none"): ("lm-eval|tiny_mc|0", "acc_norm"),
        (GEN, "exact_match,strict-match"): ("lm-eval|tiny_gen|0", "exact_match,strict-match"),
        (GEN, "exact_match,flexible-extract"): (
            "lm-eval|tiny_gen|0",
            "exact_match,flexible-extract",
        ),
        (LL, "acc,none"): ("lm-eval|tiny_ll|0", "acc"),
    }
    for (task, key), (name, metric) in pairs.items():
        metric_name, _, flt = key.partition(",")
        assert ours[name][metric] == pytest.approx(lm["results"][task][key], abs=1e-12)
        stderr = lm["results"][task][f"{metric_name}_stderr,{flt}"]
        assert ours[name][f"{metric}_stderr"] == pytest.approx(stderr, abs=1e-12)
    # lm-eval's perplexity, exp(-mean loglik), with no stderr (N/A): ours bootstraps one
    perplexity = ours["lm-eval|tiny_ll|0"]
    assert perplexity["perplexity"] == pytest.approx(lm["results"][LL]["perplexity,none"])
    assert perplexity["perplexity_stderr"] > 0
    assert "f1" not in ours["lm-eval|tiny_mc|0"]  # no exact twin in evalstream: not aggregated


def test_the_run_keeps_lm_evals_model_versions_configs_and_counts(
    imported: tuple[dict[str, Any], str, Path],
):
    """Model name, task versions and configs, and the doc counts come from the lm-eval run."""
    _, path, _ = imported
    saved = _results(path)
    assert saved["config_general"]["model_name"] == "dummy"
    versions = {"lm-eval|tiny_mc|0": 1, "lm-eval|tiny_gen|0": 2, "lm-eval|tiny_ll|0": 0}
    assert saved["versions"] == versions  # "Yaml" (lm-eval's un-versioned tasks): 0
    config = saved["config_tasks"]["lm-eval|tiny_gen|0"]
    assert config["output_type"] == "generate_until" and config["lm_eval_task"] == GEN
    assert config["original_num_docs"] == config["effective_num_docs"] == 24
    lm_eval = saved["config_general"]["model_config"]["lm_eval"]
    assert lm_eval["date_id"] == DATE and lm_eval["config"]["model"] == "dummy"
    assert lm_eval["metrics_not_aggregated"] == {
        "lm-eval|tiny_mc|0": ["f1"],
        "lm-eval|tiny_gen|0": [],
        "lm-eval|tiny_ll|0": [],
    }
    ll = saved["config_tasks"]["lm-eval|tiny_ll|0"]
    assert (ll["original_num_docs"], ll["effective_num_docs"]) == (34, 24)


def test_each_doc_is_one_details_row_with_its_prompt_choices_gold_and_filters(
    imported: tuple[dict[str, Any], str, Path],
):
    """Docs map to rows: prompt, choices, gold, log-likelihoods; two filters join one row."""
    _, _, out = imported
    (mc,) = out.glob("details/**/details_lm-eval|tiny_mc|0_*.parquet")
    rows = pq.read_table(mc).to_pylist()
    assert len(rows) == 24
    first = rows[0]
    assert first["example"] == mc_prompt(0) and first["full_prompt"] == mc_prompt(0)
    assert first["choices"] == [" yes", " no"] and first["gold_index"] == [0]
    kept = first["specifics"]["lm_eval_metrics_not_aggregated"]
    assert kept == {"f1": [0, first["predictions"].index(max(first["predictions"]))]}
    assert rows[1]["gold_index"] == [1] and len(rows[1]["predictions"]) == 2
    (gen,) = out.glob("details/**/details_lm-eval|tiny_gen|0_*.parquet")
    rows = pq.read_table(gen).to_pylist()
    assert len(rows) == 24  # one row per doc, not one per (doc, filter)
    metrics = rows[0]["metrics"]
    assert set(metrics) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert rows[1]["gold"] == ["2"]


def test_ls_show_report_and_query_read_the_import(
    imported: tuple[dict[str, Any], str, Path], capsys: pytest.CaptureFixture[str]
):
    """The imported run is a saved run to ls, show, report and query."""
    lm, path, out = imported
    capsys.readouterr()
    assert main(["ls", str(out), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "saved" and listed["model"] == "dummy" and listed["samples"] == 72
    assert main(["show", path]) == 0
    assert "lm-eval|tiny_mc|0" in capsys.readouterr().out
    report = out.parent / f"{out.name}-report.html"
    assert main(["report", str(out), "-o", str(report)]) == 0
    assert "lm-eval|tiny_gen|0" in report.read_text()
    capsys.readouterr()
    sql = "select task, avg(metrics.acc) as acc, count(*) as n from samples group by task"
    assert main(["query", str(out), sql, "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lm-eval|tiny_mc|0"]["n"] == 24
    assert rows["lm-eval|tiny_mc|0"]["acc"] == pytest.approx(lm["results"][MC]["acc,none"])


async def _native_run(out: Path, docs: int = 24) -> str:
    """A native (lighteval-shaped) run of the same docs: the same prompts and choices."""
    async with EvaluationTracker(out, save_details=True, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/native"))
        await tracker.log_tasks([TaskSpec(name=NATIVE, version=1, categories=["multichoice"])])
        for i in reversed(range(docs)):  # another order: pairing is by the doc, not the row
            doc = Doc(
                query=mc_prompt(i),
                ctx=mc_prompt(i),
                choices=[" yes", " no"],
                gold_index=i % 2,
                id=str(i),
            )
            response = ModelResponse(logprobs=[-1.0, -2.0], argmax_logits_eq_gold=[True, False])
            await tracker.log_sample(NATIVE, doc, response, {"acc": float(i % 2 == 0)})
        result = await tracker.save()
    return str(result.results_path)


def test_compare_pairs_the_import_with_a_native_run_of_the_same_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """compare pairs every doc of an lm-eval import with a native run's, McNemar on acc."""
    write_run(tmp_path / "src")
    (lm_path,) = import_run(str(tmp_path / "src"), str(tmp_path / "out"), task_names={MC: NATIVE})
    native = anyio.run(_native_run, tmp_path / "native")
    capsys.readouterr()
    assert main(["compare", native, lm_path, "--json"]) == 0
    rows = {(r["task"], r["metric"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    acc = rows[(NATIVE, "acc")]
    assert acc["shared_docs"] == 24 and acc["comparable"], acc
    assert acc["paired"]["test"] == EXACT
    assert acc["difference"] == pytest.approx(acc["b"] - acc["a"])


def test_the_command_line_imports_and_prints_the_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`evalstream import SRC OUT --format lm-eval` prints the results file it wrote."""
    write_run(tmp_path / "src", docs=5)
    src = tmp_path / "src" / f"results_{DATE}.json"
    capsys.readouterr()
    assert main(["import", str(src), str(tmp_path / "out"), "--format", "lm-eval"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed).is_file() and printed.startswith(str(tmp_path / "out"))


def test_a_missing_samples_file_is_named_and_nothing_is_written(tmp_path: Path):
    """A run written without --log_samples: the error names the file and how to get it."""
    write_run(tmp_path / "src", docs=3)
    (tmp_path / "src" / f"samples_{GEN}_{DATE}.jsonl").unlink()
    with pytest.raises(InputError, match=rf"samples_{GEN}_{DATE}\.jsonl: missing.*--log_samples"):
        import_run(str(tmp_path / "src"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_damaged_line_is_named_by_file_and_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A truncated JSON line: a clear error naming the file and its line, exit 2, no run."""
    write_run(tmp_path / "src", docs=4)
    samples = tmp_path / "src" / f"samples_{MC}_{DATE}.jsonl"
    lines = samples.read_text().splitlines()
    lines[2] = lines[2][:40]
    samples.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"samples_{MC}_{DATE}\.jsonl, line 3: not JSON"):
        import_run(str(tmp_path / "src"), str(tmp_path / "out"))
    capsys.readouterr()
    assert main(["import", str(tmp_path / "src"), str(tmp_path / "o"), "--format", "lm-eval"]) == 2
    assert "line 3" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_a_folder_without_results_is_refused(tmp_path: Path):
    """A folder holding no results_*.json says so."""
    with pytest.raises(InputError, match="no lm-eval results"):
        import_run(str(tmp_path), str(tmp_path / "out"))


def test_task_names_that_name_no_task_or_an_unsafe_one_are_refused_before_a_write(
    tmp_path: Path,
):
    """A rename of a task the run lacks, or to a name with '/', fails before any write."""
    write_run(tmp_path / "src", docs=3)
    with pytest.raises(InputError, match=r"task_names names no task of this run: \['nope'\]"):
        import_run(str(tmp_path / "src"), str(tmp_path / "out"), task_names={"nope": "x|y|0"})
    with pytest.raises(InputError, match="contains '/'"):
        import_run(str(tmp_path / "src"), str(tmp_path / "out"), task_names={MC: "a/b|0"})
    assert not (tmp_path / "out").exists()


def test_the_command_line_renames_tasks_with_task_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`--task-name OLD=NEW` records lm-eval's task under the native name; a malformed one
    is exit 2 with the form to use, before anything is written."""
    write_run(tmp_path / "src", docs=4)
    capsys.readouterr()
    args = ["import", str(tmp_path / "src"), str(tmp_path / "out"), "--format", "lm-eval"]
    assert main([*args, "--task-name", f"{MC}={NATIVE}"]) == 0
    (printed,) = capsys.readouterr().out.split()
    tasks = set(json.loads(Path(printed).read_text())["results"])
    assert NATIVE in tasks and not any(t.startswith(f"lm-eval|{MC}|") for t in tasks)
    bad = ["import", str(tmp_path / "src"), str(tmp_path / "o"), "--format", "lm-eval"]
    assert main([*bad, "--task-name", MC]) == 2
    assert "give OLD=NEW" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
