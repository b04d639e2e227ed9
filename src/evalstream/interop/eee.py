"""``evalstream export RUN --format eee -o FOLDER``: a saved run as every_eval_ever records.

every_eval_ever (EEE) is a shared schema for evaluation results: an aggregate record (one JSON
file) and, beside it, its instance-level records (one JSONL file), at the datastore's paths::

    FOLDER/data/<task>/<developer>/<model>/<uuid>.json           (eval.schema.json)
    FOLDER/data/<task>/<developer>/<model>/<uuid>_samples.jsonl  (instance_level_eval.schema.json)

One pair per task, as every_eval_ever's own lm-eval converter does: each task is one
evaluation (the datastore's ``<collection>`` folder is the task name, made a portable folder
name), its metrics are the aggregate's ``evaluation_results`` and its details rows the
instance records (``interop/eee_samples.py``). The derived ``all`` and suite ``_average`` rows
are not tasks and are not exported. ``<developer>/<model>`` is the model name's
``org/name``, as the datastore derives it (a name without ``org/`` goes under ``unknown/``, and
every_eval_ever's validator warns that such a record names no developer).

The file's UUID is derived from the model, the run's date and the task, so exporting the same
run again rewrites the same files instead of adding copies; ``retrieved_timestamp`` (and the
``evaluation_id`` made from it, ``task/model/timestamp`` as the schema asks) is the export time.

This writer needs nothing of every_eval_ever's package (which needs Python >= 3.12): it writes
the JSON with msgspec. Its tests validate every record with that package's own validator and
with ``jsonschema`` against its bundled schemas (tests/interop/test_eee.py, scripts/ci/eee.sh).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import ConfigError
from evalstream.durability.storage import atomic_write
from evalstream.interop.eee_samples import SamplesWritten, number, write_samples
from evalstream.runs.catalog import sample_counts
from evalstream.stats.rows import Z95, metric_rows

if TYPE_CHECKING:
    from evalstream.runs.loading import LoadedRun

SCHEMA_VERSION = "0.3.0"
"""The every_eval_ever schema version the records are written to (its ``schema_version``)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10))}
_LOWER_IS_BETTER = {"perplexity", "ppl", "loss", "bpb", "ter", "wer", "cer", "mae", "mse", "rmse"}
_encoder = msgspec.json.Encoder()


def export_run(run: LoadedRun, out: str) -> list[str]:
    """Write ``run`` under the folder ``out`` as every_eval_ever records; returns the files
    written (each task's aggregate, then its samples file when the task has details)."""
    if "://" in out:
        raise ConfigError(f"--format eee writes to a local folder, not {out}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{out} is a file: --format eee writes a folder (data/...)")
    model_id = run.model_name
    developer, model_dir = _model_folders(model_id)
    retrieved = f"{time.time():.6f}"
    written: list[str] = []
    for task in run.tasks():
        rel = f"data/{_component(task)}/{developer}/{model_dir}"
        name = _file_uuid(run, task)
        folder = root / rel
        head = {
            "schema_version": SCHEMA_VERSION,
            "evaluation_id": f"{task}/{model_id}/{retrieved}",
            "model_id": model_id,
            "evaluation_name": task,
        }
        reported = {
            r.metric: _lower_is_better(r.metric)
            for r in metric_rows({task: run.results["results"][task]})
            if r.value is not None and number(r.value) is not None
        }
        samples = None
        samples_path = folder / f"{name}_samples.jsonl"
        if reported and run.fs.exists(run.details_path(task)):
            # the samples first: the aggregate records their row count and checksum
            samples = write_samples(run, task, samples_path, head=head, metrics=reported)
            if not samples.rows:  # every_eval_ever refuses an empty samples file
                samples_path.unlink()
        record = _aggregate(run, task, head, retrieved, samples, f"{rel}/{name}_samples.jsonl")
        atomic_write(folder / f"{name}.json", _encoder.encode(record))
        written.append(str(folder / f"{name}.json"))
        if samples is not None and samples.rows:
            written.append(str(samples_path))
    return written


def _component(name: str) -> str:
    """``name`` as one portable datastore folder name (every_eval_ever's path check refuses
    ``|``, ``:`` and Windows' reserved names)."""
    safe = _UNSAFE.sub("_", name).rstrip(". ") or "_"
    if safe == "data" or safe.split(".", 1)[0].upper() in _RESERVED or safe in (".", ".."):
        safe = f"_{safe}"
    return safe


def _model_folders(model_id: str) -> tuple[str, str]:
    """``(developer, model)`` folders as every_eval_ever derives them from ``model_info.id``:
    the part before the first ``/``, and the rest with ``/`` made ``_`` (``:`` made ``_``)."""
    parts = [p for p in model_id.split("/") if p]
    if len(parts) < 2:
        return "unknown", _component(model_id)
    return _component(parts[0]), "_".join(_component(p) for p in parts[1:])


def _file_uuid(run: LoadedRun, task: str) -> str:
    """A version-4 UUID (the datastore's file names must be one) derived from the run and the
    task: the same run exports to the same file names."""
    seed = hashlib.sha256(f"{run.model_name}\0{run.date_id}\0{task}".encode()).digest()
    return str(uuid.UUID(bytes=seed[:16], version=4))


def _lower_is_better(metric: str) -> bool:
    """Whether a lower value is better, from the metric's name (the results file does not say):
    perplexities, losses and error rates."""
    words = set(re.split(r"[^a-z0-9]+", metric.lower()))
    return bool(words & _LOWER_IS_BETTER) or "perplexity" in metric.lower()


def _strings(mapping: dict[str, Any]) -> dict[str, str]:
    """Every value a string (every ``additional_details`` of the schema), absent ones dropped."""
    return {
        k: v if isinstance(v, str) else _encoder.encode(v).decode()
        for k, v in mapping.items()
        if v is not None
    }


def _aggregate(
    run: LoadedRun,
    task: str,
    head: dict[str, str],
    retrieved: str,
    samples: SamplesWritten | None,
    samples_file: str,
) -> dict[str, Any]:
    """The aggregate record (``eval.schema.json``) of one task."""
    general = run.results.get("config_general") or {}
    sha = str(general.get("lighteval_sha") or "")
    library_version = sha.removeprefix("evalstream-") if sha.startswith("evalstream-") else ""
    start = number(general.get("start_time"))
    results, unknown_bounds, skipped = _results(run, task, samples)
    details = {
        "date_id": run.date_id,
        "task_version": (run.results.get("versions") or {}).get(task),
    }
    source = {
        "metrics_with_unknown_bounds": str(unknown_bounds) if unknown_bounds else None,
        "metrics_not_finite": ",".join(skipped) if skipped else None,
        "samples_without_finite_metric": str(samples.unscored)
        if samples and samples.unscored
        else None,
    }
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "evaluation_id": head["evaluation_id"],
        **({} if start is None else {"evaluation_timestamp": f"{start:.6f}"}),
        "retrieved_timestamp": retrieved,
        "source_metadata": {
            "source_name": "evalstream",
            "source_type": "evaluation_run",
            # who ran the evaluation is not in a results file: say so rather than guess
            "source_organization_name": "unknown",
            "evaluator_relationship": "other",
            "additional_details": _strings(source),
        },
        "model_info": _model_info(run),
        "eval_library": {
            "name": "evalstream",
            "version": library_version or "unknown",
            "additional_details": _strings(
                {**details, "lighteval_sha": None if library_version else sha or None}
            ),
        },
        "evaluation_results": results,
    }
    if samples is not None and samples.rows:
        record["detailed_evaluation_results"] = {
            "format": "jsonl",
            "file_path": samples_file,
            "hash_algorithm": "sha256",
            "checksum": samples.sha256,
            "total_rows": samples.rows,
        }
    return record


def _model_info(run: LoadedRun) -> dict[str, Any]:
    """``model_info``, satisfying both of every_eval_ever's descriptions of it.

    They disagree on ``additional_details``: the JSON schema (``$defs.model_info``) *requires*
    it, with ``deployment_type`` (self_deployed | externally_managed | unknown) and
    ``model_availability`` (open_weights | closed_weights | unknown) required inside, while the
    pydantic model (``eval_types.ModelInfo``) types it ``dict[str, str] | None = None`` and
    fills both keys with ``"unknown"`` in a validator — so a record without them passes
    ``EvaluationLog.model_validate`` and fails ``jsonschema``. Written here: the object always,
    both keys always (``unknown``: a results file says neither who deployed the model nor
    whether its weights are open), and every other value a string, as both demand.
    """
    general = run.results.get("config_general") or {}
    model_id = run.model_name
    info: dict[str, Any] = {"name": model_id, "id": model_id}
    if "/" in model_id.strip("/"):
        info["developer"] = model_id.strip("/").split("/", 1)[0]
    extra = {k: general.get(k) for k in ("model_sha", "model_dtype", "model_size", "model_config")}
    info["additional_details"] = {
        "deployment_type": "unknown",
        "model_availability": "unknown",
        **_strings(extra),
    }
    return info


def _results(
    run: LoadedRun, task: str, samples: SamplesWritten | None
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """``evaluation_results``: one per metric with a finite value, the number of them whose
    bounds are unknown, and the metrics left out (a NaN or missing value is no score)."""
    config = (run.results.get("config_tasks") or {}).get(task) or {}
    counted = sample_counts(run.results).get(task)
    source = _source_data(task, config)
    generation = _generation_config(task, config, run.results.get("config_general") or {})
    start = number((run.results.get("config_general") or {}).get("start_time"))
    out: list[dict[str, Any]] = []
    unknown = 0
    skipped: list[str] = []
    for row in metric_rows({task: run.results["results"][task]}):
        if row.value is None or number(row.value) is None:
            skipped.append(row.metric)
            continue
        tally = samples.tallies.get(row.metric) if samples else None
        metric: dict[str, Any] = {
            "evaluation_description": f"{row.metric} on {task}",
            "metric_id": row.metric,
            "metric_name": row.metric,
            "lower_is_better": _lower_is_better(row.metric),
        }
        if tally is not None and tally.count and tally.binary:
            # every per-sample value was 0 or 1: a binary metric, its mean in [0, 1]
            metric.update(score_type="binary", min_score=0, max_score=1)
        else:
            unknown += 1  # no score_type: the schema then asks for no bounds it cannot know
        uncertainty: dict[str, Any] = {}
        if row.stderr is not None and number(row.stderr) is not None:
            uncertainty["standard_error"] = {"value": float(row.stderr)}
            if row.low is not None and row.high is not None:
                uncertainty["confidence_interval"] = {
                    "lower": row.low,
                    "upper": row.high,
                    "confidence_level": 0.95,
                    "method": f"normal approximation: value +/- {Z95:.2f} x standard error",
                }
        n = tally.count if tally is not None and tally.count else counted
        if n:
            uncertainty["num_samples"] = int(n)
        result: dict[str, Any] = {
            "evaluation_result_id": row.metric,
            "evaluation_name": task,
            "source_data": source,
            "metric_config": metric,
            "score_details": {"score": float(row.value)},
        }
        if start is not None:
            result["evaluation_timestamp"] = f"{start:.6f}"
        if uncertainty:
            result["score_details"]["uncertainty"] = uncertainty
        if generation:
            result["generation_config"] = generation
        out.append(result)
    return out, unknown, skipped


def _source_data(task: str, config: dict[str, Any]) -> dict[str, Any]:
    """The task's dataset: a Hugging Face dataset when its config names one, else ``other``."""
    counts = {  # -1: the harness never declared it
        k: v
        for k in ("original_num_docs", "effective_num_docs")
        if isinstance(v := config.get(k), int) and v >= 0
    }
    repo = config.get("hf_repo")
    if isinstance(repo, str) and repo:
        splits = config.get("evaluation_splits")
        split = splits[0] if isinstance(splits, list) and splits else None
        data: dict[str, Any] = {"dataset_name": task, "source_type": "hf_dataset", "hf_repo": repo}
        if isinstance(split, str):
            data["hf_split"] = split
        original = config.get("original_num_docs")
        if isinstance(original, int) and not isinstance(original, bool) and original >= 0:
            data["samples_number"] = original
        data["additional_details"] = _strings({"hf_subset": config.get("hf_subset"), **counts})
        return data
    return {"dataset_name": task, "source_type": "other", "additional_details": _strings(counts)}


def _generation_config(
    task: str, config: dict[str, Any], general: dict[str, Any]
) -> dict[str, Any] | None:
    """Sampling settings: the model config's ``generation_parameters`` (lighteval 0.13), the
    task's ``generation_size``; stop sequences and the few-shot count as details."""
    params = (general.get("model_config") or {}).get("generation_parameters") or {}
    args: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k"):
        value = number(params.get(key)) if not isinstance(params.get(key), bool) else None
        if value is not None:
            args[key] = value
    for size in (params.get("max_new_tokens"), config.get("generation_size")):
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            args["max_tokens"] = size
            break
    fewshot = task.rsplit("|", 1)[-1] if "|" in task else None
    extra = _strings(
        {
            "stop_sequence": config.get("stop_sequence") or None,
            "num_fewshot": fewshot if fewshot and fewshot.isdigit() else None,
        }
    )
    if not args and not extra:
        return None
    out: dict[str, Any] = {}
    if args:
        out["generation_args"] = args
    if extra:
        out["additional_details"] = extra
    return out
