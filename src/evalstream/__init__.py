"""evalstream: record LLM evaluation runs asynchronously, as a stream, crash-safe.

The public API is what this module exports; everything in ``evalstream._*`` is internal.
"""

from evalstream._aggregations import AggregationRegistry, default_registry
from evalstream._errors import (
    ConfigError,
    EvalStreamError,
    HubPushError,
    InputError,
    JournalCorruptError,
    MetricValueError,
    RunStateError,
    SinkError,
    StorageError,
    TensorBoardError,
    UnknownTaskError,
    UnsafeNameError,
)
from evalstream._push import push_saved_run
from evalstream._recovery import recover
from evalstream._retry import RetryPolicy
from evalstream._summary import OutputOutcome, RunResult
from evalstream._sync import SyncEvaluationTracker
from evalstream._tensorboard import RunInfo
from evalstream._tracker import EvaluationTracker
from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "AggregationRegistry",
    "ConfigError",
    "Doc",
    "EvalStreamError",
    "EvaluationTracker",
    "HubPushError",
    "InputError",
    "JournalCorruptError",
    "MetricValueError",
    "ModelInfo",
    "ModelResponse",
    "OutputOutcome",
    "RetryPolicy",
    "RunInfo",
    "RunResult",
    "RunStateError",
    "SinkError",
    "StorageError",
    "SyncEvaluationTracker",
    "TaskSpec",
    "TensorBoardError",
    "UnknownTaskError",
    "UnsafeNameError",
    "__version__",
    "default_registry",
    "push_saved_run",
    "recover",
]
