"""The results file's schema: versioned, published as JSON Schema (``evalstream schema``).

The results file is lighteval's (``config_general``, ``results``, ``versions``, ``config_tasks``,
``summary_tasks``, ``summary_general``) plus evalstream's own keys: ``schema_version`` and, for a
recovered or merged run, the ``evalstream`` section. The Structs below describe it; the JSON
Schema is generated from them by msgspec, so the description cannot drift from one written by
hand, and the test suite validates every results file it writes against it with a real JSON
Schema validator.

Versioning: ``MAJOR.MINOR``. A minor bump adds optional fields (old readers keep working; the
objects stay open to extra keys, as lighteval adds fields between versions); a major bump
removes or renames a field or changes its type.
"""

from __future__ import annotations

from typing import Any

import msgspec

from evalstream.durability.segments import SegmentGap

SCHEMA_VERSION = "1.0"
SCHEMA_ID = f"urn:evalstream:results:{SCHEMA_VERSION}"


class Hashes(msgspec.Struct, kw_only=True):
    """lighteval's content hashes (xxh64 hex) of a task's examples, prompts and tokens."""

    hash_examples: str
    hash_full_prompts: str
    hash_input_tokens: str
    hash_cont_tokens: str


class Counters(msgspec.Struct, kw_only=True):
    """How many samples were truncated or padded, and few-shot truncations."""

    hashes: Hashes
    truncated: int
    non_truncated: int
    padded: int
    non_padded: int
    num_truncated_few_shots: int


class SummaryTask(Counters, kw_only=True):
    """``summary_tasks[task]``."""

    effective_few_shots: float | None = None


class ConfigGeneral(msgspec.Struct, kw_only=True):
    """``config_general``: the harness's arguments, the model and the run's times."""

    lighteval_sha: str
    num_fewshot_seeds: int
    override_batch_size: int | None = None
    max_samples: int | None = None
    job_id: str
    start_time: float
    end_time: float | None = None
    total_evaluation_time_secondes: str | None = None
    model_name: str
    model_sha: str | None = None
    model_dtype: str | None = None
    model_size: str | None = None


class TaskConfig(msgspec.Struct, kw_only=True):
    """``config_tasks[task]``: the declared task and its document counts, when logged."""

    original_num_docs: int | None = None
    effective_num_docs: int | None = None


class TaskTally(msgspec.Struct, kw_only=True):
    """Per task in the ``evalstream`` section: samples found, documents expected."""

    samples: int
    expected: int | None
    complete: bool


class EvalstreamSection(msgspec.Struct, kw_only=True):
    """``evalstream``: what a recovery or a merge found (absent from an ordinary run)."""

    partial: bool
    incomplete_tasks: list[str]
    tasks: dict[str, TaskTally]
    recovered_from: str | None = None
    reached_save: bool | None = None
    journal_corruption: str | None = None
    journal_gaps: list[SegmentGap] | None = None  # as the journal's reader reports them
    damaged_files: list[str] | None = None
    """An unreadable status.json or run.json, and what recovery assumed instead."""
    skipped_frames: int | None = None
    skipped: dict[str, Any] | None = None
    merged: dict[str, Any] | None = None


class ResultsFile(msgspec.Struct, kw_only=True):
    """A results file (``results/MODEL/results_DATE.json``)."""

    config_general: ConfigGeneral
    results: dict[str, dict[str, float | None]]
    versions: dict[str, int]
    config_tasks: dict[str, TaskConfig]
    summary_tasks: dict[str, SummaryTask]
    summary_general: Counters
    schema_version: str
    evalstream: EvalstreamSection | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the results file of this version."""
    schema = msgspec.json.schema(ResultsFile)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"evalstream results file, schema {SCHEMA_VERSION}",
        **schema,
    }
