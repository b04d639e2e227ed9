"""evalstream: record LLM evaluation runs asynchronously, as a stream, crash-safe.

The public API is what this module exports (and ``evalstream.testing``); everything else — the
``_*`` modules and the ``actors``, ``sinks``, ``durability`` and ``stats`` packages — is internal
(docs/design/architecture.md shows where each part lives).
Names are imported on first use, so ``import evalstream`` (and the details worker process,
which imports one internal module) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalstream._errors import (
        ConfigError,
        DetailsNotFoundError,
        EvalStreamError,
        HubPushError,
        InputError,
        InvalidSampleError,
        JournalCorruptError,
        MergeError,
        MetricValueError,
        QueryError,
        RunBusyError,
        RunFailedError,
        RunStateError,
        ShardMismatchError,
        SinkError,
        StorageError,
        TensorBoardError,
        UnknownTaskError,
        UnsafeNameError,
    )
    from evalstream._summary import OutputOutcome, RunResult, __version__
    from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec
    from evalstream.lighteval.sync import SyncEvaluationTracker
    from evalstream.run.baseline import load_baseline
    from evalstream.run.merge import MergeResult, merge
    from evalstream.run.progress import Progress
    from evalstream.run.recover import recover
    from evalstream.run.runtime import Runtime
    from evalstream.run.tracker import EvaluationTracker
    from evalstream.runs.query import query, results_df, runs_df, samples_df
    from evalstream.shards.info import ShardInfo
    from evalstream.sinks.push import push_saved_run
    from evalstream.sinks.retry import RetryPolicy
    from evalstream.sinks.tensorboard import RunInfo
    from evalstream.stats.aggregations import AggregationRegistry, default_registry
    from evalstream.stats.sequences import Estimate, Versus
    from evalstream.view.app import view_app

_EXPORTS = {
    "AggregationRegistry": "evalstream.stats.aggregations",
    "ConfigError": "evalstream._errors",
    "DetailsNotFoundError": "evalstream._errors",
    "Doc": "evalstream._types",
    "Estimate": "evalstream.stats.sequences",
    "EvalStreamError": "evalstream._errors",
    "EvaluationTracker": "evalstream.run.tracker",
    "HubPushError": "evalstream._errors",
    "InputError": "evalstream._errors",
    "InvalidSampleError": "evalstream._errors",
    "JournalCorruptError": "evalstream._errors",
    "MergeError": "evalstream._errors",
    "MergeResult": "evalstream.run.merge",
    "MetricValueError": "evalstream._errors",
    "ModelInfo": "evalstream._types",
    "ModelResponse": "evalstream._types",
    "OutputOutcome": "evalstream._summary",
    "Progress": "evalstream.run.progress",
    "QueryError": "evalstream._errors",
    "RetryPolicy": "evalstream.sinks.retry",
    "RunInfo": "evalstream.sinks.tensorboard",
    "RunResult": "evalstream._summary",
    "RunFailedError": "evalstream._errors",
    "Runtime": "evalstream.run.runtime",
    "RunBusyError": "evalstream._errors",
    "RunStateError": "evalstream._errors",
    "ShardInfo": "evalstream.shards.info",
    "ShardMismatchError": "evalstream._errors",
    "SinkError": "evalstream._errors",
    "StorageError": "evalstream._errors",
    "SyncEvaluationTracker": "evalstream.lighteval.sync",
    "TaskSpec": "evalstream._types",
    "TensorBoardError": "evalstream._errors",
    "UnknownTaskError": "evalstream._errors",
    "UnsafeNameError": "evalstream._errors",
    "Versus": "evalstream.stats.sequences",
    "__version__": "evalstream._summary",
    "default_registry": "evalstream.stats.aggregations",
    "load_baseline": "evalstream.run.baseline",
    "merge": "evalstream.run.merge",
    "push_saved_run": "evalstream.sinks.push",
    "query": "evalstream.runs.query",
    "recover": "evalstream.run.recover",
    "results_df": "evalstream.runs.query",
    "runs_df": "evalstream.runs.query",
    "samples_df": "evalstream.runs.query",
    "view_app": "evalstream.view.app",
}

__all__ = [
    "AggregationRegistry",
    "ConfigError",
    "DetailsNotFoundError",
    "Doc",
    "Estimate",
    "EvalStreamError",
    "EvaluationTracker",
    "HubPushError",
    "InputError",
    "InvalidSampleError",
    "JournalCorruptError",
    "MergeError",
    "MergeResult",
    "MetricValueError",
    "ModelInfo",
    "ModelResponse",
    "OutputOutcome",
    "Progress",
    "QueryError",
    "RetryPolicy",
    "RunBusyError",
    "RunFailedError",
    "RunInfo",
    "RunResult",
    "RunStateError",
    "Runtime",
    "ShardInfo",
    "ShardMismatchError",
    "SinkError",
    "StorageError",
    "SyncEvaluationTracker",
    "TaskSpec",
    "TensorBoardError",
    "UnknownTaskError",
    "UnsafeNameError",
    "Versus",
    "__version__",
    "default_registry",
    "load_baseline",
    "merge",
    "push_saved_run",
    "query",
    "recover",
    "results_df",
    "runs_df",
    "samples_df",
    "view_app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
