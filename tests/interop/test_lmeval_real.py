"""The real lm-evaluation-harness writes a run; ``evalstream import --format lm-eval`` records it.

lm-eval (its own venv, scripts/ci/lmeval.sh) runs three tiny local tasks (JSON lines on disk,
``dataset_path: json``: the Hub is unreachable) with its built-in ``dummy`` model and
``--log_samples``: multiple choice (acc, acc_norm), generation (exact_match) and rolling
log-likelihood (word/byte perplexity, bits per byte). Every aggregate lm-eval printed must be
evalstream's, recomputed from the per-doc values; ls, show, query and compare read the import.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.cli.main import main
from evalstream.interop.lmeval import import_run

pytestmark = pytest.mark.lmeval

DOCS = 20
TASKS = {
    "tiny_mc": """
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: ["yes", "no"]
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
    "tiny_gen": """
output_type: generate_until
doc_to_text: "{{sum}}"
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
""",
    "tiny_ppl": """
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{question}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 0.0
""",
}
NATIVE = "lighteval|tiny_mc|0"


@pytest.fixture(scope="module")
def lm_eval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder lm-eval wrote its results and samples files in."""
    root = tmp_path_factory.mktemp("lm-eval")
    data = root / "data.jsonl"
    rows = [
        {"question": f"Is {i} even?", "label": i % 2, "sum": f"{i} + 1 =", "answer": str(i + 1)}
        for i in range(DOCS)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for task, body in TASKS.items():
        head = f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        head += f"    test: {data}\ntest_split: test\n"
        (root / f"{task}.yaml").write_text(head + body)
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(root / "hf-cache"),
        "HF_HOME": str(root / "hf-home"),
    }
    command = [sys.executable, "-m", "lm_eval", "--model", "dummy", "--tasks", ",".join(TASKS)]
    command += ["--include_path", str(root), "--output_path", str(root / "out"), "--log_samples"]
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (root / "out").rglob("results_*.json")
    return results.parent


def _lm_results(folder: Path) -> dict[str, Any]:
    (path,) = folder.glob("results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_every_aggregate_lm_eval_wrote_is_evalstreams(
    lm_eval_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Means and mean stderr equal lm-eval's; perplexities equal too, with a bootstrap stderr
    where lm-eval writes N/A."""
    capsys.readouterr()
    assert main(["import", str(lm_eval_run), str(tmp_path), "--format", "lm-eval"]) == 0
    (path,) = capsys.readouterr().out.split()
    ours = json.loads(Path(path).read_text())["results"]
    lm = _lm_results(lm_eval_run)
    checked = 0
    for task, row in lm["results"].items():
        for key, value in row.items():
            metric, _, flt = key.partition(",")
            if not flt or metric.endswith("_stderr"):
                continue
            name = f"lm-eval|{task}|0"
            assert ours[name][metric] == pytest.approx(value, rel=1e-12), (task, metric)
            lm_stderr = row[f"{metric}_stderr,{flt}"]
            if lm_stderr == "N/A":  # lm-eval has no stderr for perplexities; ours bootstraps
                assert math.isfinite(ours[name][f"{metric}_stderr"])
            else:
                assert ours[name][f"{metric}_stderr"] == pytest.approx(lm_stderr, rel=1e-12)
            checked += 1
    assert checked == 6


def test_ls_show_and_query_read_the_import(
    lm_eval_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The import is a saved run: ls lists it, show prints it, query reads every details row."""
    lm = _lm_results(lm_eval_run)
    (path,) = import_run(str(lm_eval_run), str(tmp_path))
    capsys.readouterr()
    assert main(["ls", str(tmp_path), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "saved" and listed["samples"] == DOCS * len(TASKS)
    assert listed["model"] == lm["model_name"]
    assert main(["show", path]) == 0
    assert "lm-eval|tiny_ppl|0" in capsys.readouterr().out
    sql = "select task, count(*) as n, avg(metrics.acc) as acc from samples group by task"
    assert main(["query", str(tmp_path), sql, "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert {task: r["n"] for task, r in rows.items()} == {f"lm-eval|{t}|0": DOCS for t in TASKS}
    assert rows["lm-eval|tiny_mc|0"]["acc"] == pytest.approx(lm["results"]["tiny_mc"]["acc,none"])


async def _native(out: Path) -> str:
    """A native evalstream run (lighteval-shaped) of tiny_mc's docs: its prompts, choices, gold."""
    async with EvaluationTracker(out, save_details=True) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/native"))
        await tracker.log_tasks([TaskSpec(name=NATIVE, version=1, categories=["multichoice"])])
        for i in range(DOCS):
            prompt = f"Question: Is {i} even?\nAnswer:"
            doc = Doc(query=prompt, ctx=prompt, choices=[" yes", " no"], gold_index=i % 2)
            lls = [-0.5, -1.0] if i % 3 else [-1.0, -0.5]
            response = ModelResponse(logprobs=lls, argmax_logits_eq_gold=[False, False])
            acc = float(lls.index(max(lls)) == i % 2)
            await tracker.log_sample(NATIVE, doc, response, {"acc": acc, "acc_norm": acc})
        result = await tracker.save()
    return str(result.results_path)


def test_compare_pairs_the_lm_eval_run_with_a_native_run(
    lm_eval_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """compare pairs every doc of lm-eval's run with the native run's, prompts equal."""
    (lm_path,) = import_run(str(lm_eval_run), str(tmp_path / "lm"), task_names={"tiny_mc": NATIVE})
    native = anyio.run(_native, tmp_path / "native")
    capsys.readouterr()
    assert main(["compare", native, lm_path, "--json"]) == 0
    rows = {(r["task"], r["metric"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    lm = _lm_results(lm_eval_run)["results"]["tiny_mc"]
    for metric in ("acc", "acc_norm"):
        row = rows[(NATIVE, metric)]
        assert row["shared_docs"] == DOCS and row["comparable"] and row["paired"] is not None
        assert row["b"] == pytest.approx(lm[f"{metric},none"])
        assert row["difference"] == pytest.approx(row["b"] - row["a"])
