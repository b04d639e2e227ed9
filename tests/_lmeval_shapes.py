"""lm-evaluation-harness output files in its shapes, written by the tests (no lm-eval installed).

The shapes are those of lm-eval 0.4's ``EvaluationTracker.save_results_aggregated`` and
``save_results_samples``: ``results_{date}.json`` and ``samples_{task}_{date}.jsonl`` side by
side; every ``resps`` leaf a string, ``target`` a string, ``arguments`` as ``gen_args_i.arg_j``,
one line per doc and filter, the per-doc metric values under their names. The aggregates are
computed with lm-eval's formulas (mean; stderr = sample stddev (n - 1) / sqrt(n)).
"""

from __future__ import annotations

import json
import math
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

DATE = "2026-12-07T01-02-03.456789"
MC, GEN, LL = "tiny_mc", "tiny_gen", "tiny_ll"


def mc_prompt(i: int) -> str:
    return f"Question: is {i} even?\nAnswer:"


def _mean_stderr(values: list[float]) -> float:
    mu = sum(values) / len(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (len(values) - 1)) / math.sqrt(
        len(values)
    )


def write_run(folder: Path, docs: int = 24, seed: int = 0) -> dict[str, Any]:
    """Write one lm-eval run: a multiple-choice task (acc, acc_norm, and f1, a corpus metric
    evalstream has no twin for), a two-filter generative task, and a loglikelihood task
    (perplexity: exp(-mean loglik))."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    mc_lines, gen_lines = [], []
    values: dict[str, list[float]] = {"acc": [], "acc_norm": [], "em_strict": [], "em_flex": []}
    for i in range(docs):
        gold = i % 2
        lls = [-rng.random() * 3, -rng.random() * 3]
        acc = float(lls.index(max(lls)) == gold)
        acc_norm = float(rng.random() < 0.5)
        values["acc"].append(acc)
        values["acc_norm"].append(acc_norm)
        mc_lines.append(
            {
                "doc_id": i,
                "doc": {"question": f"is {i} even?", "label": gold},
                "target": str(gold),
                "arguments": {
                    f"gen_args_{k}": {"arg_0": mc_prompt(i), "arg_1": f" {c}"}
                    for k, c in enumerate(["yes", "no"])
                },
                "resps": [[[str(ll), "False"]] for ll in lls],
                "filtered_resps": [[str(ll), "False"] for ll in lls],
                "filter": "none",
                "metrics": ["acc", "acc_norm", "f1"],
                "doc_hash": f"d{i}",
                "prompt_hash": f"p{i}",
                "target_hash": f"t{gold}",
                "acc": acc,
                "acc_norm": acc_norm,
                "f1": [gold, lls.index(max(lls))],
            }
        )
    for flt, key in (("strict-match", "em_strict"), ("flexible-extract", "em_flex")):
        for i in range(docs):
            em = float(rng.random() < 0.3)
            values[key].append(em)
            gen_lines.append(
                {
                    "doc_id": i,
                    "doc": {"question": f"{i} + 1 =", "answer": str(i + 1)},
                    "target": str(i + 1),
                    "arguments": {
                        "gen_args_0": {"arg_0": f"{i} + 1 =", "arg_1": {"until": ["\n"]}}
                    },
                    "resps": [[f"The answer is {i + 1}"]],
                    "filtered_resps": [str(i + 1) if em else "[invalid]"],
                    "filter": flt,
                    "metrics": ["exact_match"],
                    "doc_hash": f"g{i}",
                    "prompt_hash": f"q{i}",
                    "target_hash": f"a{i}",
                    "exact_match": em,
                }
            )
    ll_lines, lls_gold = [], []
    for i in range(docs):
        ll = -rng.random() * 4
        lls_gold.append(ll)
        values.setdefault("ll_acc", []).append(float(ll > -1))
        ll_lines.append(
            {
                "doc_id": i,
                "doc": {"text": f"{i} times"},
                "target": " times",
                "arguments": {"gen_args_0": {"arg_0": f"{i}", "arg_1": " times"}},
                "resps": [[[str(ll), str(ll > -1)]]],
                "filtered_resps": [[str(ll), str(ll > -1)]],
                "filter": "none",
                "metrics": ["perplexity", "acc"],
                "doc_hash": f"l{i}",
                "prompt_hash": f"m{i}",
                "target_hash": "t",
                "perplexity": ll,
                "acc": float(ll > -1),
            }
        )
    rows: dict[str, dict[str, Any]] = {
        MC: {"alias": MC, "f1,none": 0.5, "f1_stderr,none": 0.1},
        GEN: {"alias": GEN},
        LL: {
            "alias": LL,
            "perplexity,none": math.exp(-sum(lls_gold) / docs),
            "perplexity_stderr,none": "N/A",
            "acc,none": sum(values["ll_acc"]) / docs,
            "acc_stderr,none": _mean_stderr(values["ll_acc"]),
        },
    }
    for metric, key in (("acc", "acc"), ("acc_norm", "acc_norm")):
        rows[MC][f"{metric},none"] = sum(values[key]) / docs
        rows[MC][f"{metric}_stderr,none"] = _mean_stderr(values[key])
    for flt, key in (("strict-match", "em_strict"), ("flexible-extract", "em_flex")):
        rows[GEN][f"exact_match,{flt}"] = sum(values[key]) / docs
        rows[GEN][f"exact_match_stderr,{flt}"] = _mean_stderr(values[key])
    results = {
        "results": rows,
        "group_subtasks": {MC: [], GEN: []},
        "configs": {
            MC: {
                "task": MC,
                "dataset_path": "json",
                "output_type": "multiple_choice",
                "num_fewshot": 0,
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "f1", "aggregation": "f1", "higher_is_better": True},
                ],
                "metadata": {"version": 1.0},
            },
            GEN: {
                "task": GEN,
                "dataset_path": "json",
                "output_type": "generate_until",
                "num_fewshot": 0,
                "metric_list": [
                    {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}
                ],
                "filter_list": [{"name": "strict-match"}, {"name": "flexible-extract"}],
                "metadata": {"version": 2.0},
            },
            LL: {"task": LL, "dataset_path": "json", "output_type": "loglikelihood"},
        },
        "versions": {MC: 1.0, GEN: 2.0, LL: "Yaml"},
        "n-shot": {MC: 0, GEN: 0, LL: 0},
        "higher_is_better": {MC: {"acc": True, "acc_norm": True}, GEN: {"exact_match": True}},
        "n-samples": {
            MC: {"original": docs, "effective": docs},
            GEN: {"original": docs, "effective": docs},
            LL: {"original": docs + 10, "effective": docs},
        },
        "config": {"model": "dummy", "model_args": "", "limit": None, "bootstrap_iters": 100000},
        "git_hash": None,
        "date": 1796605323.0,
        "lm_eval_version": "0.4.13",
        "model_name": "",
        "model_name_sanitized": "",
        "task_hashes": {},
    }
    (folder / f"results_{DATE}.json").write_text(json.dumps(results, indent=2))
    for task, lines in ((MC, mc_lines), (GEN, gen_lines), (LL, ll_lines)):
        with (folder / f"samples_{task}_{DATE}.jsonl").open("w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    return results
