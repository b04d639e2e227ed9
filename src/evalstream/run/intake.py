"""Sample intake: validation in the caller's task, and encoding once for the journal.

A sample is checked where it is logged (``_checks``), so a bad value fails in the call that
made it, and is msgpack-encoded there once: the encoding both proves the sample can be stored
and becomes its bytes in the journal, which splices them into a batch frame without encoding
them again. The bytes are decoded once against the schema too, so what the journal holds is
always readable by recovery and the details worker (a float among token ids fails here, with
its path): our own ``Doc`` and ``ModelResponse`` are built without type checks. A sample whose
doc and responses came as lighteval's objects or mappings was type-checked when it was
converted, so it skips that decode (no value is validated twice). A batch (``prepare_batch``,
one task's samples) is checked item by item the same way, all or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import EvalStreamError, InputError, InvalidSampleError, UnknownTaskError
from evalstream._messages import ENCODER, Scope, ScoredSample
from evalstream._types import Doc
from evalstream.run.checks import (
    Kind,
    check_depth,
    check_metric_names,
    check_metrics,
    check_shapes,
    plain_metrics,
    unstorable,
)
from evalstream.run.coerce import converted, doc_from, outputs_from

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evalstream._types import ModelResponse

Prepared = tuple[ScoredSample, bytes]
"""A validated sample and its encoded bytes."""

Item = tuple[object, object, "Mapping[str, Any]", "tuple[str, str] | None"]
"""One item of a batch: doc, outputs (a list or one response), metrics, judgement."""

_CHECK = msgspec.msgpack.Decoder(ScoredSample)
_UNSTORABLE = (TypeError, OverflowError, ValueError, UnicodeEncodeError, RecursionError)


class _RawBatch(msgspec.Struct, frozen=True, tag="SampleBatch", kw_only=True):
    """Encodes exactly like SampleBatch, from samples that are already encoded."""

    samples: list[msgspec.Raw]


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """The bytes of a SampleBatch message holding the given encoded samples."""
    return ENCODER.encode(_RawBatch(samples=[msgspec.Raw(b) for b in encoded]))


def _build(
    task_name: str,
    doc: Doc | object,
    outputs: Sequence[ModelResponse] | object,
    metrics: Mapping[str, Any],
    judgement: tuple[str, str] | None,
    scope: Scope,
    task_kinds: Mapping[str, Kind] | None,
    kinds: Mapping[str, Mapping[str, Kind]] | None,
) -> tuple[ScoredSample, bytes, list[tuple[str, Kind]]]:
    """Check, convert and encode one sample of a declared task against ``task_kinds``; the kinds
    it would fix for the first time are returned, not recorded."""
    try:  # ours, lighteval's (any version) or mappings of their fields; one response or many
        ours, outs = doc_from(doc), outputs_from(outputs)
    except InputError as exc:
        raise InvalidSampleError(f"task {task_name!r}: {exc}") from exc
    if type(metrics) is not dict or judgement is not None or scope != "both":
        check_shapes(task_name, metrics, judgement, scope)
    if scope != "details":  # details-only values never reach the metric store: any kind goes
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
    if type(doc) is Doc or not converted(doc, outputs):  # converted: checked by msgspec already
        try:
            _CHECK.decode(encoded)  # what the journal and the details worker will read back
        except msgspec.ValidationError as exc:
            raise _wrong_type(task_name, exc) from exc
    return sample, encoded, new_kinds


def _wrong_type(task_name: str, exc: msgspec.ValidationError) -> InvalidSampleError:
    return InvalidSampleError(
        f"task {task_name!r}: a field has the wrong type: {exc} "
        "(token ids must be ints, choices strings)"
    )


def _undeclared(declared: Mapping[str, object], task_name: str) -> UnknownTaskError:
    known = sorted(declared)
    return UnknownTaskError(
        f"task {task_name!r} was not declared; call log_tasks([...]) with it first "
        f"(declared: {known[:5]}{'...' if len(known) > 5 else ''})"
    )


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
        raise _undeclared(declared, task_name)
    task_kinds = kinds.get(task_name) if kinds is not None else None
    sample, encoded, new_kinds = _build(
        task_name, doc, outputs, metrics, judgement, scope, task_kinds, kinds
    )
    if new_kinds and kinds is not None:
        kinds.setdefault(task_name, {}).update(new_kinds)
    return sample, encoded


def prepare_batch(
    declared: Mapping[str, object],
    task_name: str,
    items: Sequence[Item],
    scope: Scope,
    kinds: dict[str, dict[str, Kind]],
) -> list[Prepared]:
    """Validate and encode many samples of one task: each checked as ``prepare_sample`` checks
    it, all or none accepted (a refused item names its index, and nothing of the batch counts,
    its metric kinds included)."""
    if task_name not in declared:
        raise _undeclared(declared, task_name)
    known = kinds.get(task_name)
    overlay: dict[str, Kind] = dict(known) if known else {}
    every = kinds
    prepared: list[Prepared] = []
    try:
        for doc, outputs, metrics, judgement in items:
            sample, encoded, new_kinds = _build(
                task_name, doc, outputs, metrics, judgement, scope, overlay, every
            )
            if new_kinds:
                overlay.update(new_kinds)
                every = kinds | {task_name: overlay}
            prepared.append((sample, encoded))
    except EvalStreamError as exc:  # the same class, naming the item
        raise type(exc)(f"log_samples item {len(prepared)}: {exc}") from exc
    if len(overlay) != len(known or ()):
        kinds[task_name] = overlay
    return prepared


def learn_kinds(kinds: dict[str, dict[str, Kind]], samples: Sequence[ScoredSample]) -> None:
    """Record the metric kinds of replayed samples (a resumed run keeps the dead run's kinds)."""
    for sample in samples:
        if sample.scope == "details":
            continue
        task_kinds = kinds.setdefault(sample.task_name, {})
        for name, value in sample.metrics.items():
            if name not in task_kinds:
                task_kinds[name] = "corpus" if isinstance(value, tuple | list | str) else "number"


def zip_items(
    docs: Sequence[object],
    outputs: Sequence[object],
    metrics: Sequence[Mapping[str, Any]],
    judgements: Sequence[tuple[str, str] | None] | None,
) -> list[Item]:
    """``log_samples``' columns as items; refused unless every column has one entry per doc."""
    columns: dict[str, Sequence[object]] = {"docs": docs, "outputs": outputs, "metrics": metrics}
    if judgements is not None:
        columns["llm_as_prompt_judgements"] = judgements
    for name, column in columns.items():
        if isinstance(column, str | bytes | Mapping) or not hasattr(column, "__len__"):
            raise InvalidSampleError(
                f"log_samples: {name} is a {type(column).__name__}; pass a list, one per doc"
            )
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidSampleError(
            f"log_samples: the columns differ in length ({lengths}); pass one entry per doc"
        )
    return list(zip(docs, outputs, metrics, judgements or [None] * len(docs), strict=True))
