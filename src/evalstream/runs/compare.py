"""Two saved runs side by side, per task and metric, with a paired test on their shared docs.

Docs are matched by their text (the details ``example`` column; the n-th repeat of a text with
the n-th). On the shared docs the prompts (``full_prompt``) and input tokens are compared by
hash: a changed prompt means the runs did not answer the same question, so the row is marked
not comparable; changed input tokens with the same prompt mean another tokenizer or template,
which is expected between models and is flagged, not refused. The paired test runs on metrics
whose run value is the mean of the per-doc values (``stats.paired``: McNemar exact for 0/1
values, the paired bootstrap otherwise); a corpus metric gets both values and no test.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import xxhash

from evalstream.runs.loading import metrics_dict
from evalstream.stats.paired import PairedDifference, paired_difference

if TYPE_CHECKING:
    from evalstream.runs.loading import LoadedRun

_COLUMNS = ["example", "full_prompt", "input_tokens", "metrics"]


class MetricComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One task and metric of two runs: values, difference, and the paired test if it applies."""

    task: str
    metric: str
    a: float | None
    b: float | None
    difference: float | None
    shared_docs: int
    paired: PairedDifference | None
    comparable: bool
    flags: list[str] = []


class _Docs:
    """One run's details of one task, keyed by doc."""

    def __init__(self, run: LoadedRun, task: str) -> None:
        table = run.read_details(task, _COLUMNS)
        self.present = table is not None
        rows = table.to_pydict() if table is not None else {}
        examples = rows.get("example") or []
        self.prompts = rows.get("full_prompt") or [None] * len(examples)
        self.tokens = rows.get("input_tokens") or [None] * len(examples)
        self.metrics: list[dict[str, Any]] = [metrics_dict(m) for m in rows.get("metrics") or []]
        seen: dict[str, int] = {}
        self.index: dict[tuple[str, int], int] = {}
        for i, text in enumerate(examples):
            n = seen.get(text, 0)
            seen[text] = n + 1
            self.index[(text, n)] = i

    def values(self, metric: str, rows: list[int]) -> np.ndarray | None:
        """The per-doc values of ``metric`` on ``rows``, or None when they are not all numbers."""
        out = []
        for i in rows:
            v = self.metrics[i].get(metric)
            if isinstance(v, bool):
                v = float(v)
            if not isinstance(v, int | float):
                return None
            out.append(float(v))
        return np.asarray(out, dtype=np.float64)


def _digest(value: Any) -> str:
    return xxhash.xxh64_hexdigest(repr(value).encode())


def _is_mean(docs: _Docs, metric: str, value: float | None) -> bool:
    """True when the run's value is the mean of its per-doc values (so a paired test fits)."""
    every = docs.values(metric, list(range(len(docs.metrics))))
    if value is None or every is None or every.size == 0:
        return False
    return math.isclose(float(every.mean()), value, rel_tol=1e-9, abs_tol=1e-9)


def _hash_flags(a: _Docs, b: _Docs, pairs: list[tuple[int, int]]) -> tuple[bool, list[str]]:
    prompts = sum(_digest(a.prompts[i]) != _digest(b.prompts[j]) for i, j in pairs)
    tokens = sum(_digest(a.tokens[i]) != _digest(b.tokens[j]) for i, j in pairs)
    flags = []
    if prompts:
        flags.append(f"prompts changed on {prompts}/{len(pairs)} shared docs: not comparable")
    if tokens:
        flags.append(f"input tokens differ on {tokens}/{len(pairs)} docs (tokenizer or template)")
    return not prompts, flags


def _metrics(row: dict[str, Any]) -> list[str]:
    return [m for m in row if not m.endswith("_stderr")]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _compare_task(
    a: LoadedRun, b: LoadedRun, task: str, *, iters: int, seed: int, confidence: float
) -> list[MetricComparison]:
    row_a = a.results["results"][task]
    row_b = b.results["results"][task]
    docs_a, docs_b = _Docs(a, task), _Docs(b, task)
    pairs = [(i, docs_b.index[k]) for k, i in docs_a.index.items() if k in docs_b.index]
    base: list[str] = []
    checked = docs_a.present and docs_b.present
    if not checked:
        base.append("no details file: prompts unchecked, no paired test")
    elif len(pairs) < max(len(docs_a.index), len(docs_b.index)):
        base.append(
            f"docs: {len(docs_a.index)} in A, {len(docs_b.index)} in B, {len(pairs)} shared"
        )
    same_prompts, hash_flags = _hash_flags(docs_a, docs_b, pairs)
    comparable = not checked or (same_prompts and bool(pairs))
    out = []
    for metric in _metrics(row_a):
        if metric not in row_b:
            continue
        va, vb = _num(row_a[metric]), _num(row_b[metric])
        flags = [*base, *hash_flags]
        paired = None
        if pairs and _is_mean(docs_a, metric, va) and _is_mean(docs_b, metric, vb):
            xa = docs_a.values(metric, [i for i, _ in pairs])
            xb = docs_b.values(metric, [j for _, j in pairs])
            if xa is not None and xb is not None:
                paired = paired_difference(xa, xb, iters=iters, seed=seed, confidence=confidence)
        elif pairs:
            flags.append("not a mean of per-doc values: no paired test")
        out.append(
            MetricComparison(
                task=task,
                metric=metric,
                a=va,
                b=vb,
                difference=None if va is None or vb is None else vb - va,
                shared_docs=len(pairs),
                paired=paired,
                comparable=comparable,
                flags=flags,
            )
        )
    return out


def compare_runs(
    a: LoadedRun,
    b: LoadedRun,
    *,
    iters: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[MetricComparison]:
    """Every task and metric of ``a`` and ``b`` (blocking: reads both runs' details)."""
    rows_a = a.results.get("results") or {}
    rows_b = b.results.get("results") or {}
    tasks_b = set(b.tasks())
    out: list[MetricComparison] = []
    for task in a.tasks():
        if task in tasks_b:
            out += _compare_task(a, b, task, iters=iters, seed=seed, confidence=confidence)
    for task in [t for t in rows_a if t in rows_b and t not in tasks_b]:  # derived rows
        for metric in _metrics(rows_a[task]):
            va, vb = _num(rows_a[task].get(metric)), _num(rows_b[task].get(metric))
            if metric in rows_b[task]:
                out.append(
                    MetricComparison(
                        task=task, metric=metric, a=va, b=vb,
                        difference=None if va is None or vb is None else vb - va,
                        shared_docs=0, paired=None, comparable=True,
                        flags=["derived row: see its tasks' tests"],
                    )
                )  # fmt: skip
    only = sorted(set(a.tasks()) ^ tasks_b)
    for task in only:
        side = "A" if task in rows_a else "B"
        out.append(
            MetricComparison(
                task=task, metric="-", a=None, b=None, difference=None, shared_docs=0,
                paired=None, comparable=False, flags=[f"only in run {side}"],
            )
        )  # fmt: skip
    return out
