"""The results file: lighteval's final dict, assembled from the actors' compiled state.

Strict JSON: msgspec writes a non-finite float as ``null`` (Python's json would write ``NaN``,
which JSON parsers outside Python reject); the run summary counts how many there were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from evalstream.stats.hashing import compile_overall

_ENCODER = msgspec.json.Encoder()


def summary_general(summary_tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``summary_general``: overall hashes and the counters summed over tasks."""
    hashes = compile_overall({t: s["hashes"] for t, s in summary_tasks.items()})
    totals = {
        key: sum(int(s[key]) for s in summary_tasks.values())
        for key in ("truncated", "non_truncated", "padded", "non_padded", "num_truncated_few_shots")
    }
    return {"hashes": hashes, **totals}


def count_nonfinite(value: Any) -> int:
    """How many non-finite floats ``value`` holds (they are written as ``null``)."""
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    if isinstance(value, Mapping):
        return sum(count_nonfinite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(count_nonfinite(v) for v in value)
    return 0


def encode_results(final: Mapping[str, Any]) -> bytes:
    """The results JSON bytes: indent 2, UTF-8 unescaped, non-finite floats as null."""
    return msgspec.json.format(_ENCODER.encode(final), indent=2) + b"\n"
