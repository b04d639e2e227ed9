"""What crosses the boundary between a run and its details worker processes.

Every message is a frozen, tagged msgspec Struct on one base, as the journal's messages are, so
each direction is one tagged union with one encoder and one decoder, built once here: neither
side builds or parses a message by hand, and a message type added to a union is a type error in
the worker's dispatch (``worker.serve``) until it is handled.

Parent -> worker (``ToWorker``): msgpack, each message one frame (``durability/frames``) on the
worker's stdin. The sample batches stay the journal's msgpack bytes end to end: ``Forward``
carries them as an opaque msgpack ``bin`` (``bytes``), which costs one copy to encode and one to
decode, like the kind byte and channel number that were prepended before. Not ``msgspec.Raw``:
decoding a Raw field walks the whole embedded document to find its end (~0.4 ms per 220 KB
batch, measured), where a ``bin`` is skipped by its length.

Worker -> parent (``FromWorker``): JSON, one reply per line. Replies are rare (a flush, the end
of a run), and line framing lets the parent tell a reply from stray output: anything that is not
one of these messages is an ``EvalStreamError`` (``decode_reply``), never a msgspec error.

Imported by the worker process at its start: msgspec, the stdlib and evalstream's vocabulary
only.
"""

from __future__ import annotations

from typing import Any

import msgspec

from evalstream._errors import EvalStreamError


class WorkerMessage(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Base of every message between a run and a details worker; the class name is the tag."""


# -- parent -> worker -----------------------------------------------------------------------


class Open(WorkerMessage, frozen=True, kw_only=True):
    """Start a run on ``channel``: its folder, shard number, details layout and umask.

    The umask travels because the worker creates the run's files and is shared by runs of
    processes that may have set different ones."""

    channel: int
    workdir: str
    keep_rows: bool
    shard: int
    layout: str = "flat"
    umask: int = 0o022


class Forward(WorkerMessage, frozen=True, kw_only=True):
    """A journal-encoded message (tasks declared, a sample batch), as the journal's bytes."""

    channel: int
    payload: bytes


class Flush(WorkerMessage, frozen=True, kw_only=True):
    """Write and fsync the run's pending rows, then answer ``request`` with a ``State``."""

    channel: int
    request: int


class Output(msgspec.Struct, frozen=True, kw_only=True):
    """Where the details parquet of a run goes: ``root``/details/``model_name``/``date_id``."""

    root: str
    model_name: str
    date_id: str


class End(WorkerMessage, frozen=True, kw_only=True):
    """Flush and close the run's segments, write the parquet under ``output`` if given, forget
    the run, answer ``request`` with a ``State`` whose ``written`` is set when it wrote."""

    channel: int
    request: int
    output: Output | None = None


class Drop(WorkerMessage, frozen=True, kw_only=True):
    """Forget a run that ended without ``End`` (cancelled, failed); nothing is answered."""

    channel: int


ToWorker = Open | Forward | Flush | End | Drop
"""Everything the parent sends a worker."""


# -- worker -> parent -----------------------------------------------------------------------


class DetailsWritten(WorkerMessage, frozen=True):
    """What the details workers wrote at the end of the run: relative paths, or an error."""

    paths: dict[str, str]
    warnings: list[str]
    error: str | None = None


class TaskState(msgspec.Struct, frozen=True, kw_only=True):
    """One task as its worker holds it: segment file, samples, rows not yet written, summary."""

    segment: str
    samples: int
    pending_rows: int
    summary: dict[str, Any]


class State(WorkerMessage, frozen=True, kw_only=True):
    """The answer to ``Flush`` and ``End``: the run's tasks, its lasting error, what it wrote."""

    request: int
    tasks: dict[str, TaskState]
    error: str | None = None
    written: DetailsWritten | None = None


class Failed(WorkerMessage, frozen=True, kw_only=True):
    """The answer to a request the worker could not serve (it holds no state for the run)."""

    request: int
    error: str


FromWorker = State | Failed
"""Everything a worker answers."""


TO_WORKER = msgspec.msgpack.Encoder()
"""The parent's encoder (one for every message: building an encoder per call costs)."""
FROM_PARENT: msgspec.msgpack.Decoder[ToWorker] = msgspec.msgpack.Decoder(ToWorker)
"""The worker's decoder of its stdin frames."""
TO_PARENT = msgspec.json.Encoder()
"""The worker's encoder of its reply lines (JSON escapes newlines: one reply, one line)."""
_FROM_WORKER: msgspec.json.Decoder[FromWorker] = msgspec.json.Decoder(FromWorker)


def decode_reply(line: bytes) -> FromWorker:
    """One reply line as its message; anything else is an ``EvalStreamError`` naming it."""
    try:
        return _FROM_WORKER.decode(line)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise EvalStreamError(
            f"the details worker sent an unreadable reply ({exc}): {line[:200]!r}"
        ) from exc
