"""The metrics logger: per-sample metric values in typed arrays, aggregated at the end.

Values stream into one ``MetricStore`` per (task, metric): numbers in a float64 numpy array,
corpus inputs (tuples) in a compact list. Aggregation is a pure function of the stores, run in a
worker thread at save time because a bootstrap over a million samples takes real CPU.

The same columns feed the live estimates (``stats.live.LiveStats``: each metric's running mean
and confidence sequence, and the paired comparison against a baseline), a batch at a time, so
``log_sample`` pays nothing for them and a ``progress()`` snapshot reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

import anyio
import msgspec
import numpy as np

from evalstream._errors import MetricValueError
from evalstream._messages import (
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    TasksDeclared,
    TaskVersion,
)
from evalstream._options import DEFAULTS
from evalstream.actors.base import Actor
from evalstream.stats.compute import (
    AggregationRegistry,
    MetricAggregate,
    MetricStore,
    aggregate_metric,
)
from evalstream.stats.live import LiveStats
from evalstream.stats.rows import STDERR_SUFFIX

if TYPE_CHECKING:
    from evalstream._messages import Score
    from evalstream._types import TaskSpec
    from evalstream.stats.live import BaselineDocs

_EMPTY = MetricStore()  # admits what a metric's first value may be
_NUMBERS = frozenset({float, int, bool})  # what log_sample stores a "number" metric as


class TaskMetrics(msgspec.Struct, frozen=True):
    """One task's aggregated metrics: the results row, its sample count and any warnings."""

    row: dict[str, float | None]
    samples: int
    warnings: list[str]


class MetricsActor(Actor):
    """Collects metric values per task; ``aggregate()`` turns them into results rows."""

    name = "metrics"

    def __init__(self, registry: AggregationRegistry) -> None:
        super().__init__()
        self.registry = registry
        self._specs: dict[str, TaskSpec] = {}
        self._stores: dict[str, dict[str, MetricStore]] = {}
        self._samples: dict[str, int] = {}
        self.live = LiveStats()

    def compare_with(self, baseline: BaselineDocs, margin: float) -> None:
        """Pair every sample from now on with ``baseline``'s on the same doc (before any)."""
        self.live = LiveStats(baseline, margin)

    async def handle(self, message: RunMessage) -> None:
        """Store the values of every sample batch; remember task aggregations."""
        match message:
            case TasksDeclared(tasks=tasks):
                for spec in tasks:
                    self._specs[spec.name] = spec
            case SampleBatch(samples=samples):
                for i, sample in enumerate(samples):
                    if i % 64 == 63:  # a batch is ~0.5 ms of work: let the loop breathe
                        await anyio.lowlevel.checkpoint()
                    if sample.scope != "details":
                        await self._add(sample.task_name, sample.metrics)
                self._observe(
                    [(s.task_name, s.metrics, s.doc.query) for s in samples if s.scope != "details"]
                )
            case ArgsInfo() | ModelInfoLogged() | TaskVersion() | NumDocs() | EndOfRun():
                pass
            case _:
                assert_never(message)

    async def handle_scores(self, scores: list[Score]) -> None:
        """Store a live batch's values a (task, metric) column at a time.

        ``log_sample`` checked every value and fixed each metric's kind before acknowledging
        it, so a column of numbers goes into its store as one float64 array; anything else
        (corpus inputs) takes the per-sample path, which refuses what a store cannot hold.
        """
        columns: dict[tuple[str, str], list[object]] = {}
        counts: dict[str, int] = {}
        for task, metrics, scope, _ in scores:
            if scope == "details":
                continue
            counts[task] = counts.get(task, 0) + 1
            for metric, value in metrics.items():
                column = columns.get((task, metric))
                if column is None:
                    columns[(task, metric)] = [value]
                else:
                    column.append(value)
        numeric: dict[tuple[str, str], np.ndarray] = {}
        for task, n in counts.items():
            self._samples[task] = self._samples.get(task, 0) + n
            self._stores.setdefault(task, {})  # a task whose samples have no metrics has a row
        for (task, metric), values in columns.items():
            stores = self._stores[task]
            store = stores.get(metric)
            if store is None:
                store = stores[metric] = MetricStore()
            if all(type(v) in _NUMBERS for v in values):
                numbers = np.array(values, dtype=np.float64)
                try:
                    store.extend_numeric(numbers)
                except MetricValueError as exc:  # a store of corpus inputs: only a bug gets here
                    await self.faults.record(self.name, exc, samples=len(values))
                    continue
                self.live.add(task, metric, numbers)
                numeric[(task, metric)] = numbers
                continue
            for value in values:
                try:
                    store.append(value)
                except MetricValueError as exc:
                    await self.faults.record(self.name, exc, samples=1)
        if self.live.baseline is not None:
            self.live.pair(
                [(t, m, doc) for t, m, scope, doc in scores if scope != "details"], numeric
            )

    def _observe(self, samples: list[tuple[str, dict[str, object], str]]) -> None:
        """Replayed samples (resume, recovery, merge) into the live estimates, as columns."""
        columns: dict[tuple[str, str], list[object]] = {}
        for task, metrics, _ in samples:
            for metric, value in metrics.items():
                columns.setdefault((task, metric), []).append(value)
        numeric = {  # as the live path: a column of numbers only
            key: np.array(values, dtype=np.float64)
            for key, values in columns.items()
            if all(type(v) in _NUMBERS for v in values)
        }
        for (task, metric), numbers in numeric.items():
            self.live.add(task, metric, numbers)
        self.live.pair(samples, numeric)

    async def _add(self, task: str, metrics: dict[str, object]) -> None:
        """Store one sample's values, all or none: a value its store refuses skips the sample."""
        stores = self._stores.get(task)
        if stores is None:
            stores = self._stores[task] = {}
        try:
            admitted = [
                (metric, stores.get(metric, _EMPTY).admit(value))
                for metric, value in metrics.items()
            ]
        except MetricValueError as exc:  # checked at log time: only an old journal gets here
            await self.faults.record(self.name, exc, samples=1)
            return
        self._samples[task] = self._samples.get(task, 0) + 1
        for metric, item in admitted:
            store = stores.get(metric)
            if store is None:
                store = stores[metric] = MetricStore()
            store.push(item)

    def samples(self) -> dict[str, int]:
        """Samples counted per task: what the results' statistics are over."""
        return dict(self._samples)

    def values(self) -> dict[str, dict[str, list[object]]]:
        """A copy of every stored value (lighteval's ``metrics_values``); costly for big runs."""
        out: dict[str, dict[str, list[object]]] = {}
        for task, stores in self._stores.items():
            out[task] = {
                m: (s.numeric.tolist() if len(s.numeric) else list(s.objects))
                for m, s in stores.items()
            }
        return out

    def memory_bytes(self) -> int:
        """Bytes held by the metric stores."""
        return sum(s.nbytes for stores in self._stores.values() for s in stores.values())

    def aggregate_sync(self, bootstrap_iters: int, seed: int) -> dict[str, TaskMetrics]:
        """Aggregate every (task, metric); never raises for bad data (NaN plus a warning)."""
        out: dict[str, TaskMetrics] = {}
        for task in sorted(self._stores):
            spec = self._specs.get(task)
            row: dict[str, float | None] = {}
            warnings: list[str] = []
            for metric in sorted(self._stores[task]):
                name = spec.aggregation_of(metric) if spec else "mean"
                agg: MetricAggregate = aggregate_metric(
                    self._stores[task][metric],
                    name,
                    self.registry,
                    bootstrap_iters=bootstrap_iters,
                    seed=seed,
                    metric_name=metric,
                )
                if agg.value is not None or not agg.extra:
                    row[metric] = agg.value
                    # always present (null when not computed): lighteval drops the key, and
                    # readers that index it break on a one-sample task
                    row[metric + STDERR_SUFFIX] = agg.stderr
                row.update(agg.extra)
                if agg.warning:
                    warnings.append(f"{task}: {agg.warning}")
            out[task] = TaskMetrics(row, self._samples.get(task, 0), warnings)
        return out

    async def aggregate(
        self, bootstrap_iters: int = DEFAULTS.bootstrap_iters, seed: int = DEFAULTS.seed
    ) -> dict[str, TaskMetrics]:
        """``aggregate_sync`` in a worker thread (it runs to completion if cancelled); a run
        without values aggregates to nothing, without the thread hop."""
        if not self._stores:
            return {}
        return await anyio.to_thread.run_sync(self.aggregate_sync, bootstrap_iters, seed)
