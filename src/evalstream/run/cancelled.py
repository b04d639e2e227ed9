"""The samples of ``log_sample`` calls that raised after taking them, so a retry counts once.

``log_sample`` adds its sample to the pending batch before its first await, so a call that
raised after that (a request timeout while it waited on back-pressure or, with
``durable=True``, on the fsync; or with ``durable=True`` a ``StorageError`` from an fsync
that failed, whose frames the journal keeps and writes at the next flush) has recorded its
sample all the same: it is journaled and counted. A server that answers the error with a retry
would then log the doc twice. So the key of every sample of such a call is kept, and the next
log of the same (task, doc key, scope) is skipped once, which forgets the key. Only calls that
raised leave keys here, so memory is bounded by them, not by the run; a key is counted, so a
doc logged twice on purpose and cancelled twice is skipped twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalstream.durability.resume import doc_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from evalstream._messages import ScoredSample

Key = tuple[str, str, str]
"""(task, doc key, scope): what a retry must repeat to be skipped."""


def _key(sample: ScoredSample) -> Key:
    task, doc = doc_key(sample)
    return task, doc, sample.scope


class CancelledSamples:
    """Keys of the samples whose call raised after taking them, each until logged again."""

    def __init__(self) -> None:
        self._keys: dict[Key, int] = {}

    def __len__(self) -> int:
        return sum(self._keys.values())

    def __bool__(self) -> bool:
        """Whether any key waits for its retry (without counting them: asked at every log)."""
        return bool(self._keys)

    def remember(self, samples: Iterable[ScoredSample]) -> None:
        """The call that logged ``samples`` raised after taking them: they are recorded."""
        keys = self._keys
        for sample in samples:
            key = _key(sample)
            keys[key] = keys.get(key, 0) + 1

    def retried(self, sample: ScoredSample) -> bool:
        """True, forgetting the key once, when ``sample`` repeats one of a call that raised."""
        keys = self._keys
        if not keys:  # the common case costs no hashing
            return False
        key = _key(sample)
        left = keys.get(key, 0)
        if not left:
            return False
        if left == 1:
            del keys[key]
        else:
            keys[key] = left - 1
        return True
