"""Sample intake: validation in the caller's task, and encoding once for the journal.

A sample is checked where it is logged, so a bad value fails in the call that made it, and is
msgpack-encoded there once: the encoding both proves the sample can be stored and becomes its
bytes in the journal, which splices them into a batch frame without encoding them again. The
bytes are decoded once against the schema too, so what the journal holds is always readable
by recovery and the details worker (a float among token ids fails here, with its path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import InputError, MetricValueError, UnknownTaskError
from evalstream._messages import ENCODER, Scope, ScoredSample

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from evalstream._types import Doc, ModelResponse

Prepared = tuple[ScoredSample, bytes]
"""A validated sample and its encoded bytes."""

_NUMBER_TYPES = (int, float, bool)
_CHECK = msgspec.msgpack.Decoder(ScoredSample)


class _RawBatch(msgspec.Struct, frozen=True, tag="SampleBatch", kw_only=True):
    """Encodes exactly like SampleBatch, from samples that are already encoded."""

    samples: list[msgspec.Raw]


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """The bytes of a SampleBatch message holding the given encoded samples."""
    return ENCODER.encode(_RawBatch(samples=[msgspec.Raw(b) for b in encoded]))


def check_metrics(task_name: str, metrics: Mapping[str, Any]) -> None:
    """Raise MetricValueError for a value that is neither a number nor a corpus input."""
    for name, value in metrics.items():
        if type(value) in _NUMBER_TYPES:
            continue
        if isinstance(value, tuple | list | str) or hasattr(value, "__float__"):
            continue
        raise MetricValueError(
            f"metric {name!r} of task {task_name!r} is a {type(value).__name__}, not a number "
            "or a tuple for a corpus aggregation; convert it before logging"
        )


def prepare_sample(
    declared: Mapping[str, object],
    task_name: str,
    doc: Doc,
    outputs: Sequence[ModelResponse],
    metrics: Mapping[str, Any],
    judgement: tuple[str, str] | None = None,
    scope: Scope = "both",
) -> Prepared:
    """Validate and encode one sample of a task in ``declared``."""
    if task_name not in declared:
        known = sorted(declared)
        raise UnknownTaskError(
            f"task {task_name!r} was not declared; call log_tasks([...]) with it first "
            f"(declared: {known[:5]}{'...' if len(known) > 5 else ''})"
        )
    if scope != "details":  # details-only values never reach the metric store
        check_metrics(task_name, metrics)
    sample = ScoredSample(
        task_name=task_name,
        doc=doc,
        outputs=tuple(outputs),
        metrics=dict(metrics),
        judgement=judgement,
        scope=scope,
    )
    try:
        encoded = ENCODER.encode(sample)
    except (TypeError, OverflowError) as exc:
        raise InputError(
            f"a sample of task {task_name!r} holds a value that cannot be stored ({exc}); "
            "convert it to str, number, list or dict"
        ) from exc
    try:
        _CHECK.decode(encoded)  # what the journal and the details worker will read back
    except msgspec.ValidationError as exc:
        raise InputError(
            f"a sample of task {task_name!r} has a field of the wrong type: {exc} "
            "(token ids must be ints, choices strings)"
        ) from exc
    return sample, encoded
