"""The union of the shards' messages: what must agree, what is summed, what is counted once.

Every shard of a run records the same model, tasks (name, version, config, aggregations),
versions and arguments; ``ShardIdentity`` checks each one against the first shard that logged
it and raises ShardMismatchError naming both shards and what differs, so a merge never mixes
two different evaluations. Document counts are per shard: the merged count of evaluated docs is
their sum (the original count, the task's size, is the same on every shard: the largest wins).

``Duplicates`` drops a sample whose (task, doc key, scope) an earlier shard already held, so a
doc evaluated twice counts once, and counts the drops per task. Keys are 64-bit hashes in a
sorted numpy array per shard (8 bytes per sample), not Python objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np
import xxhash

from evalstream._errors import ShardMismatchError
from evalstream._messages import ArgsInfo, ModelInfoLogged, NumDocs, TasksDeclared, TaskVersion
from evalstream.durability.resume import doc_key

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evalstream._messages import RunMessage, ScoredSample
    from evalstream._types import TaskSpec


def sample_key(sample: ScoredSample) -> int:
    """The 64-bit key of a sample's (task, doc key, scope)."""
    task, key = doc_key(sample)
    return xxhash.xxh64_intdigest(f"{task}\x00{sample.scope}\x00{key}".encode())


class Duplicates:
    """Samples of earlier shards, by key; a later shard's sample with a known key is dropped.

    Each finished shard's keys are one sorted array: a lookup is a binary search per earlier
    shard, and memory is exactly 8 bytes per sample (no merged copy, no temporaries).
    """

    def __init__(self) -> None:
        self._earlier: list[np.ndarray] = []
        self._current: list[np.ndarray] = []
        self.dropped: dict[str, int] = {}

    def keep(self, samples: Sequence[ScoredSample]) -> list[ScoredSample]:
        """The samples no earlier shard held, in order."""
        keys = np.fromiter((sample_key(s) for s in samples), dtype=np.uint64, count=len(samples))
        self._current.append(keys)
        seen = np.zeros(len(samples), dtype=bool)
        for earlier in self._earlier:
            at = np.minimum(np.searchsorted(earlier, keys), earlier.size - 1)
            seen |= earlier[at] == keys
        if not seen.any():
            return list(samples)
        kept = []
        for sample, dup in zip(samples, seen.tolist(), strict=True):
            if dup:
                self.dropped[sample.task_name] = self.dropped.get(sample.task_name, 0) + 1
            else:
                kept.append(sample)
        return kept

    def end_shard(self) -> None:
        """The current shard is done: its keys count as earlier for the next shards."""
        if self._current:
            keys = np.concatenate(self._current)
            self._current = []
            keys.sort()
            self._earlier.append(keys)


def _differences(a: msgspec.Struct, b: msgspec.Struct) -> list[str]:
    return [f for f in a.__struct_fields__ if getattr(a, f) != getattr(b, f)]


class ShardIdentity:
    """What every shard must agree on, and the per-shard document counts."""

    def __init__(self) -> None:
        self.model: tuple[int, ModelInfoLogged] | None = None
        self.args: tuple[int, ArgsInfo] | None = None
        self.tasks: dict[str, tuple[int, TaskSpec]] = {}
        self.versions: dict[str, tuple[int, int]] = {}
        self.declared: dict[int, set[str]] = {}
        self.num_docs: dict[tuple[int, str], NumDocs] = {}

    def first(self, shard: int, message: RunMessage) -> RunMessage | None:
        """What of ``message`` the merged run has not seen yet (None: nothing), after checking
        it against what earlier shards logged; raises ShardMismatchError when they differ."""
        match message:
            case ModelInfoLogged():
                return self._single("model", shard, message)
            case ArgsInfo():
                # the job id differs per shard by design; everything else must not
                same = msgspec.structs.replace(message, job_id="0")
                return message if self._single("args", shard, same) else None
            case TasksDeclared(tasks=tasks):
                self.declared.setdefault(shard, set()).update(t.name for t in tasks)
                new = []
                for spec in tasks:
                    known = self.tasks.get(spec.name)
                    if known is None:
                        self.tasks[spec.name] = (shard, spec)
                        new.append(spec)
                    elif known[1] != spec:
                        fields = ", ".join(_differences(known[1], spec))
                        raise ShardMismatchError(
                            f"shard {shard} declares task {spec.name!r} with a different "
                            f"{fields} than shard {known[0]} ({spec!r} vs {known[1]!r}); "
                            "every shard must evaluate the same tasks the same way"
                        )
                return TasksDeclared(tasks=tuple(new)) if new else None
            case TaskVersion(task_name=name, version=version):
                seen = self.versions.get(name)
                if seen is None:
                    self.versions[name] = (shard, version)
                    return message
                if seen[1] != version:
                    raise ShardMismatchError(
                        f"shard {shard} logs version {version} for task {name!r}, shard "
                        f"{seen[0]} logged {seen[1]}"
                    )
                return None
            case NumDocs(task_name=name):
                self.num_docs[shard, name] = message
                return None
            case _:
                return message

    def _single(
        self, what: str, shard: int, message: ModelInfoLogged | ArgsInfo
    ) -> RunMessage | None:
        seen = self.model if what == "model" else self.args
        if seen is None:
            if isinstance(message, ModelInfoLogged):
                self.model = (shard, message)
            else:
                self.args = (shard, message)
            return message
        if seen[1] != message:
            a, b = (
                (message.info, seen[1].info)
                if isinstance(message, ModelInfoLogged) and isinstance(seen[1], ModelInfoLogged)
                else (message, seen[1])
            )
            raise ShardMismatchError(
                f"shard {shard} logged a different {what} ({', '.join(_differences(a, b))}) than "
                f"shard {seen[0]}: {a!r} vs {b!r}; merge only shards of one evaluation"
            )
        return None

    def check_declared(self, complete: Sequence[int]) -> None:
        """Every complete shard declared every task of the run."""
        every = set(self.tasks)
        for shard in complete:
            missing = every - self.declared.get(shard, set())
            if missing:
                raise ShardMismatchError(
                    f"shard {shard} did not declare the tasks {sorted(missing)} that other "
                    "shards of the run declared; every shard must declare the same tasks"
                )

    def counted_by(self, name: str) -> int:
        """How many shards logged the document counts of task ``name``."""
        return sum(1 for _, task in self.num_docs if task == name)

    def merged_num_docs(self) -> list[NumDocs]:
        """Per task: the task's size (largest logged) and the docs evaluated (summed)."""
        merged: dict[str, NumDocs] = {}
        for (_, name), counts in sorted(self.num_docs.items()):
            prior = merged.get(name)
            merged[name] = (
                counts
                if prior is None
                else NumDocs(
                    task_name=name,
                    original_num_docs=max(prior.original_num_docs, counts.original_num_docs),
                    effective_num_docs=prior.effective_num_docs + counts.effective_num_docs,
                )
            )
        return [merged[name] for name in sorted(merged)]
