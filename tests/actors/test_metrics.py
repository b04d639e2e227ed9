"""The metrics actor's live path (a batch's values a column at a time) stores exactly what the
per-sample path (replay of a journal) stores, for any values ``log_sample`` accepts."""

from __future__ import annotations

import math
from typing import Any

import anyio
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._errors import EvalStreamError
from evalstream._messages import SampleBatch, Score, ScoredSample
from evalstream._types import Doc
from evalstream.actors.metrics import MetricsActor
from evalstream.run.checks import check_metrics
from evalstream.stats.compute import AggregationRegistry
from evalstream.stats.live import BaselineDocs

_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond msgpack: stored as floats
    st.booleans(),
    st.sampled_from([np.float32(0.5), np.int64(7), np.bool_(True)]),
)
_CORPUS = st.one_of(
    st.tuples(st.text(max_size=5), st.text(max_size=5)),
    st.lists(st.floats(allow_nan=False), max_size=3),
    st.text(max_size=8),
)
_SAMPLE = st.tuples(
    st.sampled_from(["t1|0", "t2|5"]),
    st.fixed_dictionaries({}, optional={"acc": _NUMBER, "em": _NUMBER, "bleu": _CORPUS}),
    st.sampled_from(["both", "both", "metrics", "details"]),
)


def _accepted(samples: list[tuple[str, dict[str, Any], str]]) -> list[Score]:
    """What log_sample would acknowledge, in order, with the values it stores."""
    kinds: dict[str, dict[str, Any]] = {}
    out: list[Score] = []
    for task, metrics, scope in samples:
        if scope == "details":
            out.append((task, metrics, "details", "q"))
            continue
        try:
            stored, new = check_metrics(task, metrics, kinds.get(task))
        except EvalStreamError:
            continue
        kinds.setdefault(task, {}).update(new)
        out.append((task, stored, scope, "q"))  # type: ignore[arg-type]
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


@settings(max_examples=60, deadline=None)
@given(st.lists(_SAMPLE, max_size=40), st.integers(min_value=1, max_value=17))
def test_live_columns_store_what_the_per_sample_path_stores(
    samples: list[tuple[str, dict[str, Any], str]], batch: int
) -> None:
    scores = _accepted(samples)
    live, replayed = MetricsActor(AggregationRegistry()), MetricsActor(AggregationRegistry())

    async def feed() -> None:
        for start in range(0, len(scores), batch):
            chunk = scores[start : start + batch]
            await live.handle_scores(chunk)
            await replayed.handle(
                SampleBatch(
                    samples=tuple(
                        ScoredSample(
                            task_name=t, doc=Doc(query="q"), outputs=(), metrics=m, scope=s
                        )  # type: ignore[arg-type]
                        for t, m, s, _ in chunk
                    )
                )
            )

    anyio.run(feed)
    assert _same(live.values(), replayed.values())
    assert live.faults.first is None and replayed.faults.first is None
    agg_live = live.aggregate_sync(bootstrap_iters=20, seed=1)
    agg_replayed = replayed.aggregate_sync(bootstrap_iters=20, seed=1)
    assert agg_live.keys() == agg_replayed.keys()
    for task in agg_live:
        assert agg_live[task].samples == agg_replayed[task].samples
        assert _same(dict(agg_live[task].row), dict(agg_replayed[task].row))


def test_a_column_of_ints_bools_and_floats_is_one_float64_array() -> None:
    actor = MetricsActor(AggregationRegistry())
    scores: list[Score] = [("t|0", {"acc": v}, "both", "q") for v in (1, True, 0.25, 2**62)]
    anyio.run(actor.handle_scores, scores)
    assert actor.values() == {"t|0": {"acc": [1.0, 1.0, 0.25, float(2**62)]}}


_LIVE = st.tuples(
    st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["a", "b", "c", "d"]),  # few texts: many repeats
    st.fixed_dictionaries(
        {}, optional={"acc": st.sampled_from([0, 1, 0.5, True]), "em": st.sampled_from([0.0, 1])}
    ),
    st.sampled_from(["both", "both", "metrics", "details"]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_LIVE, max_size=60), st.integers(min_value=1, max_value=9))
def test_the_actor_pairs_each_sample_with_its_baseline_doc(
    samples: list[tuple[str, str, dict[str, Any], str]], batch: int
) -> None:
    """Tasks interleaved, texts repeated, metrics missing on some samples, any batching: the
    metrics actor pairs the n-th repeat of a text with the baseline's n-th, metric by metric."""
    base = BaselineDocs()
    rows = [(text, n) for text in "abcd" for n in range(3)]  # up to 3 repeats in the baseline
    for task in ("t1", "t2"):  # t3 is not in the baseline
        base.add_task(task, [t for t, _ in rows], [{"acc": (n + len(t)) % 2} for t, n in rows])
        base.tasks[task].values["em"] = np.asarray([0.5] * len(rows))
    actor = MetricsActor(AggregationRegistry())
    actor.compare_with(base, 0.1)
    scores = [(task, m, scope, text) for task, text, m, scope in samples]
    expected: dict[tuple[str, str], list[float]] = {}
    seen: dict[tuple[str, str], int] = {}
    for task, text, metrics, scope in samples:
        if scope == "details":
            continue
        n = seen[(task, text)] = seen.get((task, text), -1) + 1
        for metric, value in metrics.items():
            if task != "t3" and n < 3:
                before = 0.5 if metric == "em" else (n + 1) % 2
                expected.setdefault((task, metric), []).append(float(value) - before)

    async def feed() -> None:
        for start in range(0, len(scores), batch):
            await actor.handle_scores(scores[start : start + batch])  # type: ignore[arg-type]

    anyio.run(feed)
    got = {(t, m): v for t, ms in actor.live.versus().items() for m, v in ms.items()}
    assert set(got) == set(expected)
    for key, diffs in expected.items():
        assert got[key].n == len(diffs)
        assert math.isclose(got[key].diff, sum(diffs) / len(diffs), abs_tol=1e-12)
