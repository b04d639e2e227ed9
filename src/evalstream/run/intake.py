"""Sample intake: validation in the caller's task, and encoding once for the journal.

A sample is checked where it is logged (``_checks``), so a bad value fails in the call that
made it, and is msgpack-encoded there once: the encoding both proves the sample can be stored
and becomes its bytes in the journal, which splices them into a batch frame without encoding
them again. The bytes are decoded once against the schema too, so what the journal holds is
always readable by recovery and the details worker (a float among token ids fails here, with
its path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import InputError, InvalidSampleError, UnknownTaskError
from evalstream._messages import ENCODER, Scope, ScoredSample
from evalstream.run.checks import (
    Kind,
    check_depth,
    check_metric_names,
    check_metrics,
    check_shapes,
    plain_metrics,
    unstorable,
)
from evalstream.run.coerce import doc_from, outputs_from

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from evalstream._types import Doc, ModelResponse

Prepared = tuple[ScoredSample, bytes]
"""A validated sample and its encoded bytes."""

_CHECK = msgspec.msgpack.Decoder(ScoredSample)
_UNSTORABLE = (TypeError, OverflowError, ValueError, UnicodeEncodeError, RecursionError)


class _RawBatch(msgspec.Struct, frozen=True, tag="SampleBatch", kw_only=True):
    """Encodes exactly like SampleBatch, from samples that are already encoded."""

    samples: list[msgspec.Raw]


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """The bytes of a SampleBatch message holding the given encoded samples."""
    return ENCODER.encode(_RawBatch(samples=[msgspec.Raw(b) for b in encoded]))


def prepare_sample(
    declared: Mapping[str, object],
    task_name: str,
    doc: Doc | object,
    outputs: Sequence[ModelResponse] | object,
    metrics: Mapping[str, Any],
    judgement: tuple[str, str] | None = None,
    scope: Scope = "both",
    kinds: dict[str, dict[str, Kind]] | None = None,
) -> Prepared:
    """Validate and encode one sample of a task in ``declared``.

    ``kinds`` holds the kind of every (task, metric) seen so far; the kinds this sample fixes
    for the first time are added only once the whole sample is accepted.
    """
    if task_name not in declared:
        known = sorted(declared)
        raise UnknownTaskError(
            f"task {task_name!r} was not declared; call log_tasks([...]) with it first "
            f"(declared: {known[:5]}{'...' if len(known) > 5 else ''})"
        )
    try:  # ours, lighteval's (any version) or mappings of their fields; one response or many
        ours, responses = doc_from(doc), outputs_from(outputs)
    except InputError as exc:
        raise InvalidSampleError(f"task {task_name!r}: {exc}") from exc
    check_shapes(task_name, metrics, judgement, scope)
    outs = responses
    if scope != "details":  # details-only values never reach the metric store: any kind goes
        task_kinds = kinds.get(task_name) if kinds is not None else None
        stored, new_kinds = check_metrics(task_name, metrics, task_kinds)
        if new_kinds:
            check_metric_names(task_name, (name for name, _ in new_kinds), kinds)
    else:
        stored, new_kinds = plain_metrics(task_name, metrics), []
    check_depth(task_name, ours, outs)
    sample = ScoredSample(
        task_name=task_name,
        doc=ours,
        outputs=outs,
        metrics=stored,
        judgement=tuple(judgement) if judgement is not None else None,  # type: ignore[arg-type]
        scope=scope,
    )
    try:
        encoded = ENCODER.encode(sample)
    except _UNSTORABLE as exc:
        raise unstorable(task_name, ours, outs, stored, exc) from exc
    try:
        _CHECK.decode(encoded)  # what the journal and the details worker will read back
    except msgspec.ValidationError as exc:
        raise InvalidSampleError(
            f"task {task_name!r}: a field has the wrong type: {exc} "
            "(token ids must be ints, choices strings)"
        ) from exc
    if new_kinds and kinds is not None:
        kinds.setdefault(task_name, {}).update(new_kinds)
    return sample, encoded


def learn_kinds(kinds: dict[str, dict[str, Kind]], samples: Sequence[ScoredSample]) -> None:
    """Record the metric kinds of replayed samples (a resumed run keeps the dead run's kinds)."""
    for sample in samples:
        if sample.scope == "details":
            continue
        task_kinds = kinds.setdefault(sample.task_name, {})
        for name, value in sample.metrics.items():
            if name not in task_kinds:
                task_kinds[name] = "corpus" if isinstance(value, tuple | list | str) else "number"
