"""Aggregations by name: how the per-sample values of one metric become one number.

A registry is built per tracker (`default_registry()` returns a fresh one), so a function a user
registers never leaks into another run. Built-ins carry private facts the bootstrap exploits: an
order statistic for median/min/max, a batched numpy form, and for corpus metrics a numeric
encoding of the per-sample tuples so they are resampled with numpy rather than a Python loop.

Corpus definitions (per-sample values are tuples):

- ``corpus_f1``: macro F1 from ``(prediction, gold)`` label pairs. Over the labels L seen as a
  prediction or a gold, F1_c = 2·TP_c / (#pred_c + #gold_c), and the value is the mean of F1_c over
  L; this equals ``sklearn.metrics.f1_score(golds, preds, average="macro")``.
- ``mean_f1``: the mean over samples of SQuAD-style token F1 between a predicted text and a gold
  text (or the best of several golds): lower-cased, punctuation and articles removed, tokens
  compared as multisets. Its stderr is analytic, like ``mean``.
- ``perplexity`` (alias ``word_perplexity``, ``byte_perplexity``): exp(-Σ loglik / Σ length) from
  ``(loglik, length)`` pairs, the natural-log likelihood of a sample and its length in tokens,
  words or bytes. ``bits_per_byte``: -Σ loglik / (Σ bytes · ln 2).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalstream._errors import ConfigError, MetricValueError

FloatArray = NDArray[np.float64]
AggregationFn = Callable[[Any], Any]
"""Returns a number or a Mapping[str, number]; a vectorised one returns one number per row."""
Batch = Callable[[NDArray[Any]], FloatArray]


def numeric_errstate() -> np.errstate:
    """Overflow is an aggregation failure (NaN + warning); NaN/inf from the inputs propagate."""
    return np.errstate(over="raise", divide="ignore", invalid="ignore", under="ignore")


@dataclass(frozen=True, slots=True)
class Aggregation:
    """A named aggregation and what the bootstrap may exploit about it.

    ``fn`` takes the 1-D float64 array of a numeric metric (or the list of a corpus metric); a
    ``vectorised`` fn takes a 2-D (replicates x n) array instead and returns a 1-D array.
    ``batch`` maps replicate rows (of ``encode(values)`` for a corpus metric) to one value per row.
    ``order_stat(n)`` gives the 1-based ranks whose mean is the statistic (median/min/max).
    """

    name: str
    fn: AggregationFn
    vectorised: bool = False
    corpus: bool = False
    analytic_stderr: Callable[[FloatArray], float] | None = None
    batch: Batch | None = None
    encode: Callable[[Sequence[object]], NDArray[Any]] | None = None
    order_stat: Callable[[int], tuple[int, int]] | None = None

    def compute(self, values: Any) -> object:
        """Apply the aggregation to all the values (a vectorised fn gets them as one row)."""
        if self.vectorised:
            return np.asarray(self.fn(np.asarray(values)[np.newaxis, :]))[0]
        return self.fn(values)


class AggregationRegistry:
    """Aggregations by name; construction pre-fills the built-ins, one registry per tracker."""

    def __init__(self) -> None:
        self._by_name: dict[str, Aggregation] = {a.name: a for a in _builtins()}

    def register(
        self,
        name: str,
        fn: AggregationFn,
        *,
        vectorised: bool = False,
        corpus: bool = False,
        replace: bool = False,
    ) -> None:
        """Add a user aggregation; an existing name needs ``replace=True`` so typos don't shadow."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"aggregation name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise ConfigError(f"aggregation {name!r} must be callable, got {type(fn).__name__}")
        if vectorised and corpus:
            raise ConfigError(
                f"aggregation {name!r}: a corpus aggregation takes a list of samples and cannot "
                "be vectorised; pass only one of vectorised=True / corpus=True"
            )
        if name in self._by_name and not replace:
            raise ConfigError(
                f"aggregation {name!r} is already registered; pass replace=True to override it"
            )
        batch: Batch | None = _checked_batch(fn) if vectorised else None
        self._by_name[name] = Aggregation(name, fn, vectorised, corpus, batch=batch)

    def get(self, name: str) -> Aggregation:
        """Look an aggregation up; an unknown name is a configuration error that lists the known."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self.names)
            raise ConfigError(
                f"unknown aggregation {name!r}; known aggregations: {known}. "
                "Register your own with AggregationRegistry.register(name, fn)."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._by_name))

    def copy(self) -> AggregationRegistry:
        """An independent registry with the same entries."""
        new = AggregationRegistry()
        new._by_name = dict(self._by_name)
        return new


def default_registry() -> AggregationRegistry:
    """A fresh registry holding only the built-ins: no state is shared between trackers."""
    return AggregationRegistry()


def _checked_batch(fn: AggregationFn) -> Batch:
    def batch(rows: NDArray[Any]) -> FloatArray:
        out = np.asarray(fn(rows), dtype=np.float64)
        if out.shape != (rows.shape[0],):
            raise ValueError(
                f"vectorised aggregation returned shape {out.shape} for {rows.shape[0]} rows; "
                "it must reduce along axis=1 and return one value per row"
            )
        return out

    return batch


# ---- numeric built-ins --------------------------------------------------------------------


def mean_stderr(values: FloatArray) -> float:
    """Standard error of the mean: sample standard deviation (ddof=1) over √n."""
    n = values.shape[0]
    return float(np.std(values, ddof=1) / math.sqrt(n))


def _median_ranks(n: int) -> tuple[int, int]:
    return ((n + 1) // 2, (n + 1) // 2) if n % 2 else (n // 2, n // 2 + 1)


def _numeric(
    name: str, reduce: Callable[..., Any], order_stat: Callable[[int], tuple[int, int]] | None
) -> Aggregation:
    def fn(values: FloatArray) -> float:
        return float(reduce(values))

    def batch(rows: NDArray[Any]) -> FloatArray:
        return np.asarray(reduce(rows, axis=1), dtype=np.float64)

    return Aggregation(name, fn, batch=batch, order_stat=order_stat)


# ---- corpus built-ins ---------------------------------------------------------------------


def _pair(value: object, index: int, agg: str, shape: str) -> tuple[object, object]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise MetricValueError(f"{agg} expects {shape} pairs; sample {index} is {value!r}")
    return value[0], value[1]


def _encode_labels(values: Sequence[object]) -> NDArray[np.intp]:
    ids: dict[object, int] = {}
    out = np.empty((len(values), 2), dtype=np.intp)
    for i, v in enumerate(values):
        pred, gold = _pair(v, i, "corpus_f1", "(prediction, gold)")
        try:
            out[i, 0] = ids.setdefault(pred, len(ids))
            out[i, 1] = ids.setdefault(gold, len(ids))
        except TypeError:
            raise MetricValueError(
                f"corpus_f1 labels must be hashable; sample {i} is {v!r}"
            ) from None
    return out


def _macro_f1_rows(rows: NDArray[Any]) -> FloatArray:
    """Macro F1 per replicate from (r, n, 2) label ids, counting with one offset bincount."""
    pred, gold = rows[..., 0], rows[..., 1]
    r, k = rows.shape[0], int(rows.max()) + 1
    offset = (np.arange(r, dtype=np.intp) * k)[:, np.newaxis]

    def counts(ids: NDArray[Any]) -> NDArray[np.intp]:
        return np.bincount(ids.ravel(), minlength=r * k).reshape(r, k)

    tp = counts((gold + offset)[pred == gold])
    support = counts(pred + offset) + counts(gold + offset)
    seen = support > 0
    f1 = np.divide(2.0 * tp, support, out=np.zeros((r, k)), where=seen)
    return np.asarray(f1.sum(axis=1) / seen.sum(axis=1), dtype=np.float64)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1; two empty texts agree (1.0), one empty text scores 0.0."""
    pred, ref = _tokens(prediction), _tokens(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _encode_token_f1(values: Sequence[object]) -> FloatArray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        pred, gold = _pair(v, i, "mean_f1", "(prediction, gold or golds)")
        golds = [gold] if isinstance(gold, str) else gold
        if not isinstance(pred, str) or not isinstance(golds, Sequence) or not golds:
            raise MetricValueError(f"mean_f1 expects (str, str | list[str]); sample {i} is {v!r}")
        if not all(isinstance(g, str) for g in golds):
            raise MetricValueError(f"mean_f1 golds must be strings; sample {i} is {v!r}")
        out[i] = max(token_f1(pred, str(g)) for g in golds)
    return out


def _encode_loglik(values: Sequence[object]) -> FloatArray:
    out = np.empty((len(values), 2), dtype=np.float64)
    for i, v in enumerate(values):
        loglik, length = _pair(v, i, "perplexity", "(loglik, length)")
        if not isinstance(loglik, int | float | np.number) or not isinstance(
            length, int | float | np.number
        ):
            raise MetricValueError(
                f"perplexity expects numeric (loglik, length); sample {i} is {v!r}"
            )
        out[i] = (float(loglik), float(length))
    return out


def _perplexity_rows(rows: NDArray[Any]) -> FloatArray:
    sums = rows.sum(axis=1)
    return np.asarray(np.exp(-sums[:, 0] / sums[:, 1]), dtype=np.float64)


def _bits_per_byte_rows(rows: NDArray[Any]) -> FloatArray:
    sums = rows.sum(axis=1)
    return np.asarray(-sums[:, 0] / (sums[:, 1] * math.log(2)), dtype=np.float64)


def _mean_rows(rows: NDArray[Any]) -> FloatArray:
    return np.asarray(rows.mean(axis=1), dtype=np.float64)


def _corpus(
    name: str,
    encode: Callable[[Sequence[object]], NDArray[Any]],
    batch: Batch,
    analytic: Callable[[FloatArray], float] | None = None,
) -> Aggregation:
    def fn(values: Sequence[object]) -> float:
        return float(batch(encode(values)[np.newaxis])[0])

    return Aggregation(name, fn, corpus=True, analytic_stderr=analytic, batch=batch, encode=encode)


def _builtins() -> list[Aggregation]:
    mean = _numeric("mean", np.mean, None)
    return [
        Aggregation("mean", mean.fn, analytic_stderr=mean_stderr, batch=mean.batch),
        _numeric("median", np.median, _median_ranks),
        _numeric("max", np.max, lambda n: (n, n)),
        _numeric("min", np.min, lambda n: (1, 1)),
        _numeric("sum", np.sum, None),
        _corpus("corpus_f1", _encode_labels, _macro_f1_rows),
        _corpus("mean_f1", _encode_token_f1, _mean_rows, mean_stderr),
        _corpus("perplexity", _encode_loglik, _perplexity_rows),
        _corpus("word_perplexity", _encode_loglik, _perplexity_rows),
        _corpus("byte_perplexity", _encode_loglik, _perplexity_rows),
        _corpus("bits_per_byte", _encode_loglik, _bits_per_byte_rows),
    ]
