"""every_eval_ever's instance-level records of one task, streamed from its details parquet.

every_eval_ever asks for one instance record per aggregate result a sample contributes to (its
``instance_level_eval.schema.json``, ``evaluation_name``): a task with the metrics ``acc`` and
``f1`` gives each sample two lines, each with one ``evaluation.score`` and the
``evaluation_result_id`` (the metric's name) of the aggregate result it feeds. Every line also
carries all of the sample's metrics as JSON text in ``metadata.metrics``.

The details are read a batch of rows at a time (never the whole file), and each batch's lines
are written and hashed before the next is read, so a run of a million samples exports in the
memory of one batch. Both details layouts are read: ``flat`` (the reference columns) and
``lighteval`` (0.13's ``doc`` / ``model_response`` / ``metric`` structs, or their JSON text when
a task's values mixed types).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow.parquet as pq

from evalstream.durability.storage import atomic_path
from evalstream.runs.loading import metrics_dict

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evalstream.runs.loading import LoadedRun

BATCH_ROWS = 1024
"""Details rows read, turned into records and written per step."""

_FLAT = ("example", "full_prompt", "gold", "gold_index", "choices", "predictions", "metrics")
_NESTED = ("doc", "model_response", "metric")

_encoder = msgspec.json.Encoder()


class MetricTally(msgspec.Struct):
    """What a metric's per-sample values were: how many, and whether all were 0 or 1."""

    count: int = 0
    binary: bool = True


class SamplesWritten(msgspec.Struct, frozen=True, kw_only=True):
    """A written samples file: its lines, their SHA-256, each metric's tally, and the samples
    that had no finite value of any reported metric (so no line)."""

    rows: int
    sha256: str
    tallies: dict[str, MetricTally]
    samples: int
    unscored: int


def number(value: Any) -> float | None:
    """A finite score (a bool counts as 0/1), else None: every_eval_ever's strict JSON refuses
    NaN and infinities, and a score must be a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _decoded(value: Any) -> Any:
    """A cell a mixed-type column stored as JSON text, decoded; other cells as they are."""
    if isinstance(value, str):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return value
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else _json(value)


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


def _golds(choices: list[str], gold_index: Any) -> list[int]:
    indices = [gold_index] if isinstance(gold_index, int) else list(gold_index or [])
    return [i for i in indices if isinstance(i, int) and 0 <= i < len(choices)]


class _Sample(msgspec.Struct, frozen=True):
    """One details row, in the terms of an instance record."""

    sample_id: str
    raw: str
    formatted: str | None
    reference: list[str]
    choices: list[str]
    predictions: list[Any]
    reasoning: list[str] | None
    gold_index: Any
    metrics: dict[str, Any]


def _flat(index: int, row: dict[str, Any]) -> _Sample:
    choices = [_text(c) for c in row.get("choices") or []]
    gold = [_text(g) for g in row.get("gold") or []]
    gold_index = row.get("gold_index")
    predictions = _decoded(row.get("predictions"))
    prompt = row.get("full_prompt")
    return _Sample(
        sample_id=str(index),
        raw=_text(row.get("example")),
        formatted=None if prompt is None else _text(prompt),
        reference=gold or [choices[i] for i in _golds(choices, gold_index)],
        choices=choices,
        predictions=predictions if isinstance(predictions, list) else [predictions],
        reasoning=None,
        gold_index=gold_index,
        metrics=metrics_dict(row.get("metrics")),
    )


def _nested(index: int, row: dict[str, Any]) -> _Sample:
    doc = _decoded(row.get("doc")) or {}
    response = _decoded(row.get("model_response")) or {}
    choices = [_text(c) for c in doc.get("choices") or []]
    texts = response.get("text_post_processed") or response.get("text") or []
    prompt = response.get("input") if response.get("input") is not None else doc.get("ctx")
    reasonings = [r for r in response.get("reasonings") or [] if isinstance(r, str)]
    return _Sample(
        sample_id=doc.get("id") or str(index),
        raw=_text(doc.get("query")),
        formatted=None if prompt is None else _text(prompt),
        reference=[choices[i] for i in _golds(choices, doc.get("gold_index"))],
        choices=choices,
        predictions=list(texts or response.get("logprobs") or []),
        reasoning=reasonings or None,
        gold_index=doc.get("gold_index"),
        metrics=metrics_dict(row.get("metric")),
    )


def _samples(run: LoadedRun, task: str) -> Iterator[list[_Sample]]:
    """The task's details rows, a batch at a time."""
    with run.fs.open(run.details_path(task), "rb") as handle:
        file = pq.ParquetFile(handle)
        names = set(file.schema_arrow.names)
        nested = set(_NESTED) <= names
        columns = [c for c in (_NESTED if nested else _FLAT) if c in names]
        convert = _nested if nested else _flat
        index = 0
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            out = []
            for row in batch.to_pylist():
                out.append(convert(index, row))
                index += 1
            yield out


def _answer(sample: _Sample) -> tuple[list[str], str]:
    """``output.raw`` and how the answer was read from it: the texts of a generative task; for
    a task scored by log-probabilities (one per choice), the choice the model ranked first."""
    preds = sample.predictions
    if preds and all(isinstance(p, str) for p in preds):
        return [str(p) for p in preds], "generated_text"
    numeric = [number(p) for p in preds]
    if preds and len(preds) == len(sample.choices) and None not in numeric:
        best = max(range(len(preds)), key=lambda i: numeric[i] or 0.0)
        return [sample.choices[best]], "argmax_logprob"
    return [_json(preds)], "none"


def write_samples(
    run: LoadedRun,
    task: str,
    path: Path,
    *,
    head: dict[str, str],
    metrics: dict[str, bool],
) -> SamplesWritten:
    """Write ``task``'s instance records to ``path`` (atomically: all lines or none).

    ``head`` holds the identity fields every line repeats (schema version, evaluation and
    model ids, evaluation name); ``metrics`` the reported metrics (those with a finite result)
    and whether lower is better for each.
    """
    tallies = {m: MetricTally() for m in metrics}
    digest = hashlib.sha256()
    rows = samples = unscored = 0
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        for batch in _samples(run, task):
            lines = bytearray()
            for sample in batch:
                samples += 1
                written = 0
                for record in _records(sample, head, metrics, tallies):
                    lines += _encoder.encode(record) + b"\n"
                    written += 1
                rows += written
                unscored += written == 0
            digest.update(lines)
            handle.write(lines)
    return SamplesWritten(
        rows=rows, sha256=digest.hexdigest(), tallies=tallies, samples=samples, unscored=unscored
    )


def _records(
    sample: _Sample,
    head: dict[str, str],
    metrics: dict[str, bool],
    tallies: dict[str, MetricTally],
) -> Iterator[dict[str, Any]]:
    """One record per reported metric with a finite value for this sample."""
    output, method = _answer(sample)
    reference = sample.reference
    sample_hash = hashlib.sha256(
        _encoder.encode({"raw": sample.raw, "reference": reference})
    ).hexdigest()
    metadata = {"metrics": _json(sample.metrics), "gold_index": _json(sample.gold_index)}
    if method != "generated_text":
        metadata["predictions"] = _json(sample.predictions)
    for metric, lower_is_better in metrics.items():
        score = number(sample.metrics.get(metric))
        if score is None:
            continue
        tally = tallies[metric]
        tally.count += 1
        tally.binary = tally.binary and score in (0.0, 1.0)
        yield {
            **head,
            "evaluation_result_id": metric,
            "sample_id": sample.sample_id,
            "sample_hash": sample_hash,
            "interaction_type": "single_turn",
            "input": {
                "raw": sample.raw,
                "formatted": sample.formatted,
                "reference": reference,
                "choices": sample.choices or None,
            },
            "output": {"raw": output, "reasoning_trace": sample.reasoning},
            "messages": None,
            "answer_attribution": [
                {
                    "turn_idx": 0,
                    "source": "output.raw",
                    "extracted_value": output[0] if output else "",
                    "extraction_method": method,
                    "is_terminal": True,
                }
            ],
            # is_correct is required even for a continuous metric: true for a score of exactly 1
            # (a 0/1 metric's right answer), never for a metric where lower is better
            "evaluation": {"score": score, "is_correct": score == 1.0 and not lower_is_better},
            "metadata": metadata,
        }
