"""``evalstream import SOURCE OUT --format lm-eval``: an lm-evaluation-harness run, recorded.

lm-eval (``lm_eval --output_path P --log_samples``) writes, in one folder, ``results_{date}.json``
(its aggregates, task configs, versions, n-shot, sample counts) and, per task,
``samples_{task}_{date}.jsonl``: one line per doc *and filter*, holding ``doc_id``, ``doc``,
``target`` (as a string), ``arguments`` (``gen_args_i.arg_j``: the prompt, then the continuation
or the generation kwargs), ``resps`` / ``filtered_resps`` (every leaf a string) and each metric's
per-doc value under its own name. The run is replayed through evalstream's own
``EvaluationTracker``, so the journal, the results and the details are the ones a native run
writes, and every aggregate is computed again by evalstream from the per-doc values.

The mapping, one evalstream sample per doc: the prompt (``arg_0`` of the first request) is the
doc's ``query`` and ``ctx``; the continuations of a loglikelihood task are its ``choices``, the
target its gold (an index, or the choice it names); a generation's target is its one choice.
Log-likelihoods become a lighteval 0.13 response (``logprobs``, ``argmax_logits_eq_gold`` from
``is_greedy``), generations its ``text`` (raw ``resps``) and ``text_post_processed`` (the first
filter's). Metric ``m`` of filter ``none`` is ``m``; of another filter ``f``, ``m,f`` (lm-eval's
key). A metric whose lm-eval aggregation evalstream has no exact twin for (``f1``, ``bleu``...)
is kept per doc in ``specific`` and not aggregated; the run's config names it. lm-eval's own
doc, target, hashes and filtered responses are kept in ``specific`` too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import InputError, UnsafeNameError
from evalstream._naming import check_model_name, check_task_name
from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec
from evalstream.run.tracker import EvaluationTracker

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from evalstream._types import MetricCategory

_EXACT_AGGREGATIONS = {
    "mean": "mean",
    "median": "median",
    "perplexity": "perplexity",
    "bits_per_byte": "bits_per_byte",
}
"""lm-eval's aggregation name -> evalstream's, where both compute the same number."""
_BY_NAME = {
    "perplexity": "perplexity",
    "word_perplexity": "word_perplexity",
    "byte_perplexity": "byte_perplexity",
    "bits_per_byte": "bits_per_byte",
}
"""lm-eval's default aggregation of these metrics, by name (no ``metric_list`` entry)."""
_NOT_MEAN = frozenset({"f1", "mcc", "bleu", "chrf", "ter", "brier_score"})
"""Built-in lm-eval metrics whose default aggregation is a corpus one evalstream lacks."""
_CATEGORIES: dict[str, list[MetricCategory]] = {
    "multiple_choice": ["multichoice"],
    "loglikelihood": ["multichoice"],
    "generate_until": ["generative"],
    "loglikelihood_rolling": ["perplexity"],
}


def import_run(
    source: str, output_dir: str, *, task_names: Mapping[str, str] | None = None
) -> list[str]:
    """Record every lm-eval run of ``source`` (a ``results_*.json`` file, or a folder searched
    for them) as an evalstream run in ``output_dir``; returns the results files written.

    ``task_names`` renames lm-eval tasks (``{"arc_easy": "lighteval|arc:easy|0"}``), so
    ``evalstream compare`` pairs them with another harness's run of the same docs; a task not
    named is ``lm-eval|{task}|{n_shot}``. Nothing is written for a source that fails its checks.
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(path.rglob("results_*.json"))
        if not files:
            raise InputError(f"{source}: no lm-eval results_*.json file in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{source}: no such file or folder")
    runs = [LmEvalRun.read(f, dict(task_names or {})) for f in files]
    samples = [_samples(run) for run in runs]  # every file read and checked before a write
    return [anyio.run(_record, run, s, output_dir) for run, s in zip(runs, samples, strict=True)]


class LmEvalRun:
    """One lm-eval results file and its samples files, read and checked (no writes)."""

    def __init__(self, results_file: Path, results: dict[str, Any], names: dict[str, str]):
        self.file = results_file
        self.results = results
        self.date = results_file.stem.removeprefix("results_")
        configs = results.get("configs")
        if not isinstance(configs, dict) or not configs:
            raise InputError(f"{results_file}: not an lm-eval results file (no 'configs')")
        self.configs: dict[str, dict[str, Any]] = configs
        n_shot = results.get("n-shot") or {}
        self.names = {
            task: names.get(task) or f"lm-eval|{task}|{n_shot.get(task, 0)}" for task in configs
        }

    @classmethod
    def read(cls, results_file: Path, names: dict[str, str]) -> LmEvalRun:
        """Parse ``results_file`` and check that every task's samples file is beside it."""
        try:
            results = json.loads(results_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{results_file}: not a readable lm-eval results file: {exc}"
            ) from None
        if not isinstance(results, dict):
            raise InputError(f"{results_file}: not an lm-eval results file (not a JSON object)")
        run = cls(results_file, results, names)
        unknown = sorted(set(names) - set(run.configs))
        if unknown:
            raise InputError(f"{results_file}: task_names names no task of this run: {unknown}")
        try:  # a name the tracker would refuse is refused before anything is written
            check_model_name(run.model().model_name)
            for name in run.names.values():
                check_task_name(name)
        except UnsafeNameError as exc:
            raise InputError(f"{results_file}: {exc}") from None
        for task in run.configs:
            if not run.samples_file(task).is_file():
                raise InputError(
                    f"{run.samples_file(task)}: missing; lm-eval writes each task's samples "
                    "beside its results only when run with --log_samples"
                )
        return run

    def samples_file(self, task: str) -> Path:
        return self.file.with_name(f"samples_{task}_{self.date}.jsonl")

    def provenance(self) -> dict[str, Any]:
        """Where the run came from: lm-eval's file, date, version, run config, and the metrics
        kept per doc but not aggregated (``config_general.model_config.lm_eval``)."""
        keep = ("lm_eval_version", "git_hash", "date", "n-shot", "higher_is_better", "config")
        return {
            "results_file": self.file.name,
            "date_id": self.date,
            "metrics_not_aggregated": {
                self.names[t]: sorted(
                    m for m, a in self.aggregations(t).items() if a is None and m in self.seen(t)
                )
                for t in self.configs
            },
        } | {key: self.results.get(key) for key in keep}

    def seen(self, task: str) -> set[str]:
        """The metrics lm-eval reported for ``task`` (its results row, ``metric,filter`` keys)."""
        row = (self.results.get("results") or {}).get(task) or {}
        return {key.partition(",")[0] for key in row if "," in key}

    def model(self) -> ModelInfo:
        """lm-eval's model name (``pretrained=``...), else its model type (``dummy``, ``hf``)."""
        config = self.results.get("config") or {}
        name = self.results.get("model_name") or config.get("model") or "lm-eval-model"
        return ModelInfo(
            model_name=str(name),
            model_sha=self.results.get("model_sha") or None,
            model_dtype=str(config["model_dtype"]) if config.get("model_dtype") else None,
            model_config={
                "model": config.get("model"),
                "model_args": config.get("model_args"),
                "lm_eval": self.provenance(),
            },
        )

    def aggregations(self, task: str) -> dict[str, str | None]:
        """Each metric of ``task`` whose lm-eval aggregation is not the mean: evalstream's
        twin, or None when evalstream has none (the metric is then kept, not aggregated)."""
        out: dict[str, str | None] = {}
        for entry in self.configs[task].get("metric_list") or []:
            metric, agg = entry.get("metric"), entry.get("aggregation")
            if not isinstance(metric, str):
                continue
            if isinstance(agg, str):
                twin = _BY_NAME.get(metric) if agg == "weighted_perplexity" else None
                out[metric] = twin or _EXACT_AGGREGATIONS.get(agg)
            elif agg is not None:  # a function of the task's own module
                out[metric] = None
        for metric, twin in _BY_NAME.items():
            out.setdefault(metric, twin)
        for metric in _NOT_MEAN:
            out.setdefault(metric, None)
        return {m: a for m, a in out.items() if a != "mean"}

    def spec(self, task: str) -> TaskSpec:
        aggs = self.aggregations(task)
        version = (self.results.get("versions") or {}).get(task)
        number = version if isinstance(version, int | float) and math.isfinite(version) else 0
        return TaskSpec(
            name=self.names[task],
            version=int(number),
            config=self.configs[task] | {"lm_eval_task": task, "lm_eval_version": version},
            aggregations={m: a for m, a in aggs.items() if a is not None},
            categories=_CATEGORIES.get(str(self.configs[task].get("output_type")), []),
        )

    def lines(self, task: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each line of ``task``'s samples file, parsed; a damaged one names its file and line."""
        path = self.samples_file(task)
        with path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}, line {number}: not JSON ({exc})") from None
                if not isinstance(line, dict) or "doc_id" not in line:
                    raise InputError(f"{path}, line {number}: not an lm-eval sample (no doc_id)")
                yield number, line

    def docs(self, task: str) -> list[tuple[int, list[dict[str, Any]]]]:
        """The lines of each doc (one per filter), in the file's order of docs."""
        by_doc: dict[Any, tuple[int, list[dict[str, Any]]]] = {}
        for number, line in self.lines(task):
            by_doc.setdefault(line["doc_id"], (number, []))[1].append(line)
        return list(by_doc.values())


def _prompts(line: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The requests' (prompt, continuation-or-kwargs), from ``gen_args_i.arg_j``."""
    args = line.get("arguments") or {}
    pairs = []
    for i in range(len(args)):
        arg = args.get(f"gen_args_{i}") or {}
        pairs.append((arg.get("arg_0"), arg.get("arg_1")))
    return pairs


def _number(value: Any) -> float:
    return float(value)  # resps are strings: "-1.25", or "True"/"False" for is_greedy


def _gold(target: str, choices: list[str]) -> int | list[int]:
    """The gold index: lm-eval's target is an index, a list of them, or the gold choice."""
    if target.strip().lstrip("-").isdigit():
        return int(target)
    if target.startswith("[") and target.endswith("]"):  # several golds: str([0, 2])
        items = [t.strip() for t in target[1:-1].split(",")]
        if items and all(t.isdigit() for t in items):
            return [int(t) for t in items]
    stripped = [c.strip() for c in choices]
    return stripped.index(target.strip()) if target.strip() in stripped else 0


def _sample(
    run: LmEvalRun, task: str, number: int, lines: list[dict[str, Any]]
) -> tuple[Doc, ModelResponse, dict[str, Any]]:
    """One doc's lines (one per filter) as evalstream's doc, response and metrics."""
    first = lines[0]
    where = f"{run.samples_file(task)}, line {number}"
    prompts = _prompts(first)
    if not prompts or not isinstance(prompts[0][0], str):
        raise InputError(f"{where}: no prompt in 'arguments'")
    prompt = prompts[0][0]
    output_type = str(run.configs[task].get("output_type"))
    target = str(first.get("target", ""))
    aggs = run.aggregations(task)
    metrics: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    filtered: dict[str, Any] = {}
    for line in lines:
        flt = str(line.get("filter", "none"))
        filtered[flt] = line.get("filtered_resps")
        for metric in line.get("metrics") or []:
            key = metric if flt == "none" else f"{metric},{flt}"
            value = line.get(metric)
            if (metric in aggs and aggs[metric] is None) or value is None:
                kept[key] = value
            elif aggs.get(metric) == "perplexity" and isinstance(value, int | float):
                metrics[key] = (value, 1)  # exp(-mean(loglik)) = exp(-Σ loglik / Σ 1)
            else:
                metrics[key] = tuple(value) if isinstance(value, list) else value
    specific = {
        "lm_eval_doc": first.get("doc"),
        "lm_eval_target": target,
        "lm_eval_filtered_resps": filtered,
        "lm_eval_hashes": [first.get(k) for k in ("doc_hash", "prompt_hash", "target_hash")],
    } | ({"lm_eval_metrics_not_aggregated": kept} if kept else {})
    resps = first.get("resps") or []
    gold: int | list[int] = 0
    try:
        if output_type == "generate_until":
            texts = [str(r[0]) if isinstance(r, list) and r else str(r) for r in resps]
            flt = next(iter(filtered.values()))
            post = [str(x) for x in flt] if isinstance(flt, list) else [str(flt)]
            response = ModelResponse(input=prompt, text=texts, text_post_processed=post)
            choices = [target]
        elif output_type == "loglikelihood_rolling":
            logprobs = [_number(r[0] if isinstance(r, list) else r) for r in resps]
            response = ModelResponse(input=prompt, logprobs=logprobs)
            choices = []
        else:  # loglikelihood, multiple_choice: [[loglik, is_greedy]] per request
            choices = [str(cont) for _, cont in prompts]
            logprobs = [_number(r[0][0]) for r in resps]
            greedy = [str(r[0][1]) == "True" for r in resps]
            response = ModelResponse(input=prompt, logprobs=logprobs, argmax_logits_eq_gold=greedy)
            gold = _gold(target, choices)
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(
            f"{where}: 'resps' is not what lm-eval writes for a {output_type} task ({exc})"
        ) from None
    doc = Doc(
        query=prompt,
        ctx=prompt,
        choices=choices,
        gold_index=gold,
        id=str(first["doc_id"]),
        task_name=run.names[task],
        num_asked_few_shots=int((run.results.get("n-shot") or {}).get(task, 0) or 0),
        specific=specific,
    )
    return doc, response, metrics


Sample = tuple[int, Doc, ModelResponse, dict[str, Any]]


def _samples(run: LmEvalRun) -> dict[str, list[Sample]]:
    """Every task's samples, mapped (a damaged line fails here, before anything is written)."""
    out: dict[str, list[Sample]] = {}
    for task in run.configs:
        out[task] = [(n, *_sample(run, task, n, lines)) for n, lines in run.docs(task)]
    return out


async def _record(run: LmEvalRun, samples: dict[str, list[Sample]], output_dir: str) -> str:
    """Replay ``run`` into a tracker; returns the results file written."""
    config = run.results.get("config") or {}
    limit = config.get("limit")
    async with EvaluationTracker(output_dir, save_details=True) as tracker:
        await tracker.log_args_info(
            max_samples=int(limit) if isinstance(limit, int | float) else None,
            config=run.provenance(),
        )
        await tracker.log_model_info(run.model())
        await tracker.log_tasks(run.spec(task) for task in run.configs)
        counts = run.results.get("n-samples") or {}
        for task, docs in samples.items():
            for number, doc, response, metrics in docs:
                try:
                    await tracker.log_sample(run.names[task], doc, response, metrics)
                except InputError as exc:
                    raise InputError(f"{run.samples_file(task)}, line {number}: {exc}") from None
            count = counts.get(task) or {}
            original = count.get("original", len(docs))
            await tracker.log_num_docs(run.names[task], original, count.get("effective", len(docs)))
        result = await tracker.save()
    return str(result.results_path)
