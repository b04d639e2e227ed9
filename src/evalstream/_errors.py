"""The exception tree: one root, shallow branches, messages that say how to fix the problem.

Errors from third-party libraries (huggingface_hub, OSError, pyarrow) are translated into this
tree at the boundary where they occur, so callers catch ``EvalStreamError`` and nothing else.
"""

from __future__ import annotations


class EvalStreamError(Exception):
    """Raised for every error evalstream reports; the root of the tree."""


class ConfigError(EvalStreamError):
    """Raised when a tracker or sink is configured in a way that cannot work."""


class UnsafeNameError(ConfigError):
    """Raised when a model or task name would escape ``output_dir``, is empty, or makes a path
    the file system cannot hold (NAME_MAX, PATH_MAX), or a path inside ``output_dir`` is a
    symbolic link (never followed)."""


class InputError(EvalStreamError):
    """Raised when a logged value is invalid (unknown task, non-numeric metric, bad type)."""


class UnknownTaskError(InputError):
    """Raised when a sample or count is logged for a task that was never declared."""


class MetricValueError(InputError):
    """Raised when a metric value is neither a number nor an aggregation's accepted input, or
    its kind differs from the first value logged for the same task and metric."""


class InvalidSampleError(InputError):
    """Raised when a sample cannot be stored: a wrong shape (``outputs`` not a list of
    ``ModelResponse``), a lone surrogate, an int beyond 64 bits, nesting too deep."""


class RunStateError(EvalStreamError):
    """Raised when a call does not fit the run's lifecycle (a sample after ``save()``)."""


class RunBusyError(RunStateError):
    """Raised when another process holds the run (the live run, or a recover, resume or merge):
    the message names it. The holder's lock is the truth; it is released when it dies."""


class ResumeAbandonedError(RunStateError):
    """Raised by ``recover`` on a resume interrupted before it took its predecessor over: it is
    marked ``abandoned``, and the predecessor, which holds everything, is the run to recover."""


class RunFailedError(EvalStreamError):
    """Raised when part of the run failed inside evalstream (a bug): the cause is chained, the
    journal keeps every accepted sample, and ``evalstream recover`` gives the partial results."""


class StorageError(EvalStreamError):
    """Raised when a local write fails (disk full, read-only folder); data logged before is kept."""


class SinkError(EvalStreamError):
    """Raised when an output (Hub, TensorBoard) fails; local files are already written."""


class HubPushError(SinkError):
    """Raised when publishing to the Hugging Face Hub fails after the retry policy gave up."""


class TensorBoardError(SinkError):
    """Raised when TensorBoard event files cannot be written."""


class JournalCorruptError(StorageError):
    """Raised when a journal segment holds a corrupt frame before its tail."""


class MergeError(EvalStreamError):
    """Raised when the shards of a run cannot be merged (missing, unfinished, or mismatched)."""


class ShardMismatchError(MergeError):
    """Raised when shards of one run disagree on the model, tasks, versions or settings."""


class DetailsNotFoundError(InputError, FileNotFoundError):
    """Saved details asked for are not there (a FileNotFoundError, as lighteval expects)."""


class QueryError(EvalStreamError):
    """Raised when a SQL query over runs fails: DuckDB's message says what (a syntax error, a
    column or table that does not exist) and names the candidates."""


class ViewRequestError(EvalStreamError):
    """Raised when the live view is asked for what it cannot show: a bad page, size or filter of
    the sample browser, a metric or task the run does not have (the view answers 400 with it)."""


class UnknownRunError(ViewRequestError):
    """Raised when the live view is asked about a run it does not list (answered 404)."""
