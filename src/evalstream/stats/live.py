"""A live run's estimates and its comparison against a baseline, fed a batch at a time.

Which metrics get a sequence: those whose every value seen so far is a number in [0, 1] (0/1
accuracy, exact match, F1, a judge's probability). The bounds are detected from the values, not
declared: the sequence's guarantee needs them, and a metric that once logs 1.7 (a perplexity,
a length) or NaN has none, so from that sample on it leaves ``estimates`` for the rest of the
run (a sequence computed under a bound the data broke would claim what it cannot). Corpus
metrics (tuples aggregated at the end, BLEU) are not a mean of per-sample values: none either.

The comparison pairs each new sample with the baseline's sample on the same doc, as ``evalstream
compare`` does: same task and the same doc text (the details' ``example``, the doc's query), the
n-th repeat of a text with the n-th. A metric is compared while both runs' values are in [0, 1];
docs the baseline lacks are not paired (and not counted in ``Versus.n``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from evalstream.stats.sequences import RunningDifference, RunningMean, in_unit

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from evalstream.stats.sequences import Estimate, Versus

DocKey = tuple[str, int]
"""A doc within a task: its text and which repeat of that text it is (0 for the first)."""
_NUMBERS = (int, float)  # bool is an int


class BaselineTask:
    """One task of a baseline: each doc's row, and each metric's values by row (NaN where the
    doc has no number for it), so a batch pairs a metric with one numpy gather."""

    __slots__ = ("index", "values")

    def __init__(self, examples: Sequence[str], metrics: Sequence[Mapping[str, Any]]) -> None:
        self.index: dict[DocKey, int] = {}
        seen: dict[str, int] = {}
        for row, text in enumerate(examples):
            n = seen.get(text, 0)
            seen[text] = n + 1
            self.index[(text, n)] = row
        self.values: dict[str, NDArray[np.float64]] = {}
        for row, values in enumerate(metrics):
            for metric, value in values.items():
                if isinstance(value, _NUMBERS):
                    column = self.values.get(metric)
                    if column is None:
                        column = self.values[metric] = np.full(len(examples), np.nan)
                    column[row] = value

    def value(self, key: DocKey, metric: str) -> float | None:
        """The baseline's value of ``metric`` on the doc ``key`` (None: no such doc or number)."""
        row, column = self.index.get(key), self.values.get(metric)
        if row is None or column is None or np.isnan(column[row]):
            return None
        return float(column[row])


class BaselineDocs:
    """A saved run's per-doc values, per task (``BaselineTask``)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.tasks: dict[str, BaselineTask] = {}

    def add_task(
        self, task: str, examples: Sequence[str], metrics: Sequence[Mapping[str, Any]]
    ) -> None:
        """One task's details rows, in file order (a text's repeats numbered in that order)."""
        if len(examples) != len(metrics):
            raise ValueError(f"{task}: {len(examples)} docs but {len(metrics)} metrics rows")
        self.tasks[task] = BaselineTask(examples, metrics)

    def __len__(self) -> int:
        return sum(len(t.index) for t in self.tasks.values())


class LiveStats:
    """Per task and metric: a ``RunningMean``, and with a baseline a ``RunningDifference``.

    The caller (the metrics actor) hands it each batch's numeric columns and, with a baseline,
    each sample's doc text; every update is vectorised over the batch. ``estimates()`` and
    ``versus()`` build frozen snapshots on demand.
    """

    def __init__(self, baseline: BaselineDocs | None = None, margin: float = 0.01) -> None:
        self.baseline = baseline
        self.margin = margin
        self._means: dict[str, dict[str, RunningMean]] = {}
        self._diffs: dict[str, dict[str, RunningDifference]] = {}
        self._unbounded: set[tuple[str, str]] = set()  # no sequence of the mean any more
        self._unpaired: set[tuple[str, str]] = set()  # no sequence of the difference any more
        self._repeats: dict[str, dict[str, int]] = {}  # task -> doc text -> samples seen

    def add(self, task: str, metric: str, values: NDArray[np.float64]) -> None:
        """A batch's values of one numeric metric of one task."""
        if (task, metric) in self._unbounded or values.size == 0:
            return
        means = self._means.setdefault(task, {})
        mean = means.get(metric)
        if mean is None:
            mean = means[metric] = RunningMean()
        mean.update(values)

    def pair(
        self,
        samples: Sequence[tuple[str, Mapping[str, Any], str]],
        numeric: Mapping[tuple[str, str], NDArray[np.float64]],
    ) -> None:
        """Pair a batch with the baseline's docs: ``samples`` are its ``(task, metrics, doc
        text)`` in order, ``numeric`` each (task, metric)'s column of numbers in the same order
        (over the samples that logged the metric). One dict lookup per sample finds its
        baseline row; each metric is then paired with numpy, a column at a time."""
        if self.baseline is None:
            return
        tasks = self.baseline.tasks
        rows: dict[str, list[int]] = {}
        members: dict[str, list[Mapping[str, Any]]] = {}
        last, base, repeats, found, held = None, None, {}, [], []  # the current run of one task
        for task, metrics, text in samples:
            if task != last:  # a batch is mostly runs of one task
                last, base = task, tasks.get(task)
                repeats = self._repeats.setdefault(task, {})
                found, held = rows.setdefault(task, []), members.setdefault(task, [])
            held.append(metrics)
            if base is None:
                found.append(-1)
                continue
            n = repeats.get(text, 0)
            repeats[text] = n + 1
            found.append(base.index.get((text, n), -1))
        for (task, metric), after in numeric.items():
            base = tasks.get(task)
            before_all = base.values.get(metric) if base is not None else None
            if before_all is None or (task, metric) in self._unpaired:
                continue
            where = np.asarray(rows[task], dtype=np.int64)
            if where.size != after.size:  # some samples did not log it: keep those that did
                where = where[[metric in m for m in members[task]]]
            paired = where >= 0
            before, after = before_all[where[paired]], after[paired]
            number = ~np.isnan(before)
            before, after = before[number], after[number]
            if not before.size:
                continue
            if not (in_unit(before) and in_unit(after)):
                self._unpaired.add((task, metric))
                self._diffs.get(task, {}).pop(metric, None)
                continue
            diffs = self._diffs.setdefault(task, {})
            diff = diffs.get(metric)
            if diff is None:
                diff = diffs[metric] = RunningDifference(self.margin)
            diff.update(after - before)

    def estimates(self) -> dict[str, dict[str, Estimate]]:
        """task -> metric -> the running mean and its sequence (bounded metrics only)."""
        out: dict[str, dict[str, Estimate]] = {}
        for task, means in sorted(self._means.items()):
            for metric, mean in sorted(means.items()):
                estimate = mean.estimate()
                if estimate is None:  # a value left [0, 1]: no sequence from now on
                    self._unbounded.add((task, metric))
                    del means[metric]
                else:
                    out.setdefault(task, {})[metric] = estimate
        return out

    def versus(self) -> dict[str, dict[str, Versus]]:
        """task -> metric -> the paired difference against the baseline (empty without one)."""
        return {
            task: {metric: d.versus() for metric, d in sorted(diffs.items())}
            for task, diffs in sorted(self._diffs.items())
            if diffs
        }
