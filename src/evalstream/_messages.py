"""The message vocabulary of a run: every actor speaks only these.

Data messages are frozen, tagged Structs on one base, so the whole union round-trips through one
msgspec encoder/decoder (the durable journal stores exactly these). Control messages carry an
in-process acknowledgement and are never encoded.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
import msgspec

from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec

Scope = Literal["both", "details", "metrics"]
"""Which loggers a sample feeds: lighteval's drop-in API logs details and metrics separately."""


class Message(msgspec.Struct, frozen=True, tag=True, kw_only=True, gc=False):
    """Base of every data message; the class name is the tag."""


class ArgsInfo(Message, frozen=True):
    """The harness's arguments (lighteval's ``log_args_info``)."""

    num_fewshot_seeds: int = 1
    override_batch_size: int | None = None
    max_samples: int | None = None
    job_id: str = "0"
    config: dict[str, Any] | None = None


class ModelInfoLogged(Message, frozen=True):
    """The evaluated model."""

    info: ModelInfo


class TasksDeclared(Message, frozen=True):
    """The tasks of the run, with versions, configs and aggregations."""

    tasks: tuple[TaskSpec, ...]


class TaskVersion(Message, frozen=True):
    """A version for one task (lighteval's ``versions_logger.log``)."""

    task_name: str
    version: int


class ScoredSample(Message, frozen=True):
    """One doc, its model outputs and its per-sample metric values."""

    task_name: str
    doc: Doc
    outputs: tuple[ModelResponse, ...]
    metrics: dict[str, Any]
    judgement: tuple[str, str] | None = None
    scope: Scope = "both"


class SampleBatch(Message, frozen=True):
    """Samples shipped together: one inbox hop for many ``log_sample`` calls."""

    samples: tuple[ScoredSample, ...]


class NumDocs(Message, frozen=True):
    """How many docs a task had, and how many were evaluated."""

    task_name: str
    original_num_docs: int
    effective_num_docs: int


class EndOfRun(Message, frozen=True):
    """The run ended (``save()`` began) at ``end_time`` (seconds since the epoch)."""

    end_time: float


RunMessage = (
    ArgsInfo | ModelInfoLogged | TasksDeclared | TaskVersion | SampleBatch | NumDocs | EndOfRun
)
"""Everything a run can say, as routed to the actors and stored in the journal."""


class Flush:
    """Control: the actor acknowledges once everything it received before is on disk."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = anyio.Event()


class EncodedBatch:
    """Control: a SampleBatch as msgpack bytes, one per details worker (``b""`` for none)."""

    __slots__ = ("payloads",)

    def __init__(self, payloads: tuple[bytes, ...]) -> None:
        self.payloads = payloads


Score = tuple[str, dict[str, Any], Scope, str]
"""A live sample as the metrics actor needs it: task name, checked metric values, scope, and
the doc's query (the doc a baseline's sample is paired with: ``stats.live``)."""


class ScoreBatch:
    """Control: the metric values of a live SampleBatch, whose samples the journal holds.

    The in-process actors need only these; routing the whole ``ScoredSample`` graphs (docs,
    token lists) would keep thousands of tracked objects alive in the inboxes, for the garbage
    collector to scan again at every pass, and free them later in a burst.
    """

    __slots__ = ("scores",)

    def __init__(self, scores: list[Score]) -> None:
        self.scores = scores


Inbound = RunMessage | Flush | EncodedBatch | ScoreBatch
"""What an actor inbox carries."""

ENCODER = msgspec.msgpack.Encoder()
DECODER: msgspec.msgpack.Decoder[RunMessage] = msgspec.msgpack.Decoder(RunMessage)
