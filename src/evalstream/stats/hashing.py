"""Per-sample and compiled hashes, exactly as lighteval defines them (xxh64 hex digests).

Strings are hashed as UTF-8, which is what xxhash 3 (lighteval's pin) does implicitly and
xxhash 4 requires explicitly, so the digests are the same with either.

Per-sample digests are kept as unsigned 64-bit integers in growable numpy arrays (8 bytes each,
not a 16-character str object of ~65 bytes): xxh64 hex digests are always 16 zero-padded
lower-case hex digits, so sorting the integers sorts the hex strings identically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np
import xxhash

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from evalstream._types import Doc, ModelResponse

HASH_KEYS = ("hash_examples", "hash_full_prompts", "hash_input_tokens", "hash_cont_tokens")


class GrowableU64:
    """An append-only uint64 column kept in fixed chunks, the full ones spilled to a file.

    At most one part-filled chunk is slack and growing copies nothing. (Doubling one array left
    up to half of it unused and held old and new at once while resizing: over W3's 60 tasks of
    16,667 samples, 63 MB of digest arrays for 32 MB of digests.) Given ``spill`` (a file in the
    run's working folder), each full chunk is appended there and dropped from memory: W3's
    32 MB of digests then take at most one chunk per column in the worker, and are read back
    when the task is compiled. A chunk whose write fails stays in memory and is written with the
    next one (nothing is lost, the column only holds more memory meanwhile).
    """

    __slots__ = ("_chunk", "_chunks", "_size", "_spill", "_spilled")

    def __init__(self, chunk: int = 4096, spill: Path | None = None) -> None:
        self._chunk = chunk
        self._chunks: list[np.ndarray] = []
        self._size = 0
        self._spill = spill
        self._spilled = 0
        """Values in the spill file: whole chunks, the first ones, in order."""

    def append(self, value: int) -> None:
        """Append one value."""
        self.extend((value,))

    def extend(self, values: Sequence[int]) -> None:
        """Append many values (one numpy store per chunk touched, not one per value)."""
        done, count = 0, len(values)
        while done < count:
            used = self._size % self._chunk
            if used == 0:
                self._chunks.append(np.empty(self._chunk, dtype=np.uint64))
            take = min(self._chunk - used, count - done)
            self._chunks[-1][used : used + take] = values[done : done + take]
            done += take
            self._size += take
        if self._spill is not None and self._size - self._spilled >= self._chunk:
            self._write_full()

    def _write_full(self) -> None:
        assert self._spill is not None
        full = (self._size - self._spilled) // self._chunk
        try:
            self._spill.parent.mkdir(parents=True, exist_ok=True)
            with self._spill.open("ab") as handle:
                handle.truncate(self._spilled * 8)  # a torn earlier write, cut off
                handle.write(b"".join(c.tobytes() for c in self._chunks[:full]))
        except OSError:
            return  # kept in memory, written with the next full chunk
        del self._chunks[:full]
        self._spilled += full * self._chunk

    def __len__(self) -> int:
        return self._size

    @property
    def values(self) -> np.ndarray:
        """Every value, as one array (a copy: taken when the task is compiled); raises
        ``OSError`` if the spill file cannot be read back whole."""
        parts = list(self._chunks)
        if self._spilled:
            assert self._spill is not None
            with self._spill.open("rb") as handle:
                data = handle.read(self._spilled * 8)
            if len(data) != self._spilled * 8:
                raise OSError(f"{self._spill} is shorter than the digests written to it")
            parts.insert(0, np.frombuffer(data, dtype=np.uint64))
        if not parts:
            return np.empty(0, dtype=np.uint64)
        return np.concatenate(parts)[: self._size]


_JSON = msgspec.json.Encoder()
_INT_LIST_BYTES = b"0123456789-,[]"


def token_repr(tokens: list[list[int]] | list[int]) -> bytes:
    """``str(tokens).encode()``, about 4x faster for lists of ints.

    msgspec's JSON of nested int lists is Python's repr without the space after each comma;
    anything else (floats, strings) falls back to ``str``.
    """
    data = _JSON.encode(tokens)
    if data.translate(None, _INT_LIST_BYTES):
        return str(tokens).encode()
    return data.replace(b",", b", ")


def sample_hashes(doc: Doc, outputs: Sequence[ModelResponse]) -> tuple[int, int, int, int]:
    """The four per-sample digests (example, full prompt, input tokens, continuation tokens).

    One lighteval 0.13 response is hashed as 0.13 does: ``str(input_tokens)`` and
    ``str(output_tokens)`` of that response, so its ``hash_*_tokens`` equal 0.13's.
    """
    if len(outputs) == 1 and outputs[0].is_v013:
        only = outputs[0]
        return (
            xxhash.xxh64_intdigest(doc.query.encode()),
            xxhash.xxh64_intdigest(str(doc.ctx).encode()),
            xxhash.xxh64_intdigest(token_repr(only.input_tokens)),
            xxhash.xxh64_intdigest(token_repr(list(only.output_tokens))),
        )
    return (
        xxhash.xxh64_intdigest(doc.query.encode()),
        xxhash.xxh64_intdigest(str(doc.ctx).encode()),
        xxhash.xxh64_intdigest(token_repr([o.input_tokens for o in outputs])),
        xxhash.xxh64_intdigest(token_repr([t for o in outputs for t in o.continuation_tokens()])),
    )


def batch_hashes(
    examples: Sequence[str],
    prompts: Sequence[str],
    inputs: Sequence[list[list[int]]],
    conts: Sequence[list[list[int]]],
    single: Sequence[bool],
) -> tuple[list[int], list[int], list[int], list[int]]:
    """``sample_hashes`` of a batch, from its details columns (``sinks.rows.row_columns``).

    ``inputs`` holds each row's input token lists, one per response; ``conts`` its continuation
    token lists; ``single`` marks a row of one lighteval 0.13 response, whose input tokens are
    hashed as that response's own list, as 0.13 does.
    """
    h = xxhash.xxh64_intdigest
    return (
        [h(q.encode()) for q in examples],
        [h(str(c).encode()) for c in prompts],
        [
            h(r)
            for r in token_reprs(
                [row[0] if one else row for row, one in zip(inputs, single, strict=True)]
            )
        ],
        [h(r) for r in token_reprs(conts)],
    )


_ROW_BYTES = _INT_LIST_BYTES + b"\n"


def token_reprs(rows: Sequence[list[list[int]] | list[int]]) -> list[bytes]:
    """``token_repr`` of each row, with the per-row work done once for the batch.

    The rows' JSON is joined by newlines (which no JSON of ints holds), checked and spaced in one
    pass each, and split again: no Python call, check and replace per row (W1's two token
    hashes, 2.56 -> 2.29 us a sample). A batch holding anything but ints (never one the worker
    decoded: token lists are ``list[int]``) falls back to ``token_repr`` row by row.
    """
    encode = _JSON.encode
    joined = b"\n".join([encode(row) for row in rows])
    if joined.translate(None, _ROW_BYTES):
        return [token_repr(row) for row in rows]
    return joined.replace(b",", b", ").split(b"\n") if rows else []


def sorted_hex(column: np.ndarray) -> bytes:
    """The sorted digests as concatenated 16-digit hex: big-endian bytes, hex-encoded at once."""
    return np.sort(column).astype(">u8").tobytes().hex().encode()


def compile_hashes(columns: Sequence[np.ndarray]) -> dict[str, str]:
    """A task's four hashes: xxh64 of the concatenated, sorted per-sample hex digests."""
    return {
        key: xxhash.xxh64_hexdigest(sorted_hex(col))
        for key, col in zip(HASH_KEYS, columns, strict=True)
    }


def compile_overall(per_task: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Hashes over all tasks: xxh64 of the per-task hashes joined in sorted task-name order."""
    names = sorted(per_task)
    return {
        key: xxhash.xxh64_hexdigest("".join(per_task[n][key] for n in names).encode())
        for key in HASH_KEYS
    }


class TaskCounters(msgspec.Struct):
    """Counters of one task, counted from the responses (lighteval leaves some at zero)."""

    samples: int = 0
    truncated: int = 0
    padded: int = 0
    few_shot_sum: int = 0
    few_shot_known: int = 0
    truncated_few_shots: int = 0

    def add(self, doc: Doc, outputs: Sequence[ModelResponse]) -> None:
        """Count one sample."""
        self.samples += 1
        if any(o.truncated_tokens_count > 0 for o in outputs):
            self.truncated += 1
        if any(o.padded_tokens_count > 0 for o in outputs):
            self.padded += 1
        if doc.num_effective_few_shots >= 0:
            self.few_shot_known += 1
            self.few_shot_sum += doc.num_effective_few_shots
            if doc.num_effective_few_shots < doc.num_asked_few_shots:
                self.truncated_few_shots += 1

    def add_rows(
        self,
        padded: Sequence[list[int]],
        truncated: Sequence[list[int]],
        asked: Sequence[int],
        effective: Sequence[int],
    ) -> None:
        """Count a batch from its details columns (each row's per-response token counts)."""
        self.samples += len(asked)
        self.truncated += sum(1 for row in truncated if row and max(row) > 0)
        self.padded += sum(1 for row in padded if row and max(row) > 0)
        for n_asked, n_effective in zip(asked, effective, strict=True):
            if n_effective >= 0:
                self.few_shot_known += 1
                self.few_shot_sum += n_effective
                if n_effective < n_asked:
                    self.truncated_few_shots += 1

    def summary(self) -> dict[str, int | float]:
        """The counters as lighteval's ``summary_tasks`` keys (without the hashes)."""
        few = self.few_shot_sum / self.few_shot_known if self.few_shot_known else 0
        return {
            "truncated": self.truncated,
            "non_truncated": self.samples - self.truncated,
            "padded": self.padded,
            "non_padded": self.samples - self.padded,
            "effective_few_shots": few,
            "num_truncated_few_shots": self.truncated_few_shots,
        }
