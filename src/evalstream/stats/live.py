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

from evalstream.stats.sequences import RunningDifference, RunningMean

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from numpy.typing import NDArray

    from evalstream.stats.sequences import Estimate, Versus

DocKey = tuple[str, int]
"""A doc within a task: its text and which repeat of that text it is (0 for the first)."""
_NUMBERS = (int, float)  # bool is an int


class BaselineDocs:
    """A saved run's per-doc values: task -> doc key -> {metric: value}, numbers only."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.tasks: dict[str, dict[DocKey, dict[str, float]]] = {}

    def add_task(
        self, task: str, examples: Sequence[str], metrics: Sequence[Mapping[str, Any]]
    ) -> None:
        """One task's details rows, in file order (the repeats numbered in that order)."""
        docs = self.tasks.setdefault(task, {})
        seen: dict[str, int] = {}
        for text, values in zip(examples, metrics, strict=True):
            n = seen.get(text, 0)
            seen[text] = n + 1
            docs[(text, n)] = {k: float(v) for k, v in values.items() if isinstance(v, _NUMBERS)}

    def __len__(self) -> int:
        return sum(len(d) for d in self.tasks.values())


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

    def pair(self, samples: Iterable[tuple[str, Mapping[str, Any], str]]) -> None:
        """A batch's samples ``(task, metrics, doc text)``, paired with the baseline's docs."""
        if self.baseline is None:
            return
        docs = self.baseline.tasks
        columns: dict[tuple[str, str], list[float]] = {}
        last = None
        base_docs: dict[DocKey, dict[str, float]] | None = None
        repeats: dict[str, int] = {}
        for task, metrics, text in samples:
            if task != last:  # a batch is mostly runs of one task
                last, base_docs = task, docs.get(task)
                repeats = self._repeats.setdefault(task, {})
            if base_docs is None:
                continue
            n = repeats.get(text, 0)
            repeats[text] = n + 1
            base = base_docs.get((text, n))
            if base is None:
                continue
            for metric, before in base.items():
                value = metrics.get(metric)
                if not isinstance(value, _NUMBERS):  # not logged, or a corpus metric
                    continue
                if not (0.0 <= before <= 1.0 and 0.0 <= value <= 1.0):  # NaN fails too
                    self._unpaired.add((task, metric))
                    continue
                column = columns.get((task, metric))
                if column is None:
                    columns[(task, metric)] = [value - before]
                else:
                    column.append(value - before)
        for task, metric in self._unpaired:
            self._diffs.get(task, {}).pop(metric, None)
        for (task, metric), column in columns.items():
            if (task, metric) in self._unpaired:
                continue
            diffs = self._diffs.setdefault(task, {})
            diff = diffs.get(metric)
            if diff is None:
                diff = diffs[metric] = RunningDifference(self.margin)
            diff.update(np.asarray(column, dtype=np.float64))

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
