"""Bootstrap standard errors: seeded, vectorised, with bounded memory.

The standard error is the standard deviation (ddof=1) of the replicates. lighteval divides it
again by √replicates, which makes its values about √1000 ≈ 31.6x too small.

Three paths, fastest first:

- **Order statistics** (median, min, max without NaN). A resample's k-th smallest value is
  ``sorted[floor(n·U₍ₖ₎)]`` where U₍ₖ₎ is the k-th smallest of n uniforms, because
  ``floor(n·u)`` is a monotone map from uniforms to uniform indices. U₍ₖ₎ ~ Beta(k, n-k+1), and
  given it the next one is U₍ₖ₎ + (1-U₍ₖ₎)·Beta(1, n-k). So each replicate costs O(1) after one
  sort, with exactly the distribution of resampling n values.
- **Batched**: replicate rows are gathered in chunks of at most ``chunk_elems`` elements (one
  row if a single row is larger) and reduced with numpy.
- **Looped**: plain Python callables get one call per replicate, fed by the same chunked indices.

Indices are drawn as uniform doubles scaled to [0, n): each uses exactly one 64-bit draw and no
rejection, so the random stream, and with it the result, does not depend on the chunk size. The
batched and looped paths see the same resamples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from evalstream._errors import ConfigError
from evalstream.stats.aggregations import numeric_errstate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from numpy.typing import NDArray

    from evalstream.stats.aggregations import Aggregation, Batch, FloatArray

DEFAULT_CHUNK_ELEMS = 8_000_000
# Blocks above ~1M elements were measured slower (fresh large allocations fault in their pages),
# so chunk_elems is an upper bound and blocks stay at most this size.
_BLOCK_ELEMS = 1 << 20


def index_chunks(
    n: int, iters: int, rng: np.random.Generator, *, chunk_elems: int, row_elems: int = 0
) -> Iterator[NDArray[np.intp]]:
    """Yield (rows, n) resampling indices, ``iters`` rows in all, ≤ chunk_elems gathered each.

    ``row_elems`` is the size of one gathered row (n x columns for corpus encodings); a chunk
    holds ``max(1, min(chunk_elems, 2**20) // row_elems)`` rows.
    """
    rows = max(1, min(chunk_elems, _BLOCK_ELEMS) // max(1, row_elems or n))
    done = 0
    while done < iters:
        count = min(rows, iters - done)
        scaled = rng.random((count, n))
        scaled *= n
        idx = scaled.astype(np.intp)
        np.minimum(idx, n - 1, out=idx)  # guards the rounding of u·n up to n
        yield idx
        done += count


def bootstrap_stderr(
    values: FloatArray | Sequence[object],
    agg: Aggregation,
    iters: int,
    seed: int,
    *,
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
) -> float:
    """Standard deviation of ``iters`` bootstrap replicates of ``agg`` over ``values``.

    Deterministic for a given seed and data. NaN in the replicates propagates to the result.
    Overflow raises FloatingPointError, as in the aggregation itself.
    """
    reps = bootstrap_replicates(values, agg, iters, seed, chunk_elems=chunk_elems)
    with numeric_errstate():
        return float(np.std(reps, ddof=1))


def bootstrap_replicates(
    values: FloatArray | Sequence[object],
    agg: Aggregation,
    iters: int,
    seed: int,
    *,
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
) -> FloatArray:
    """The ``iters`` replicate values of ``agg`` (one per resample), for tests and diagnostics."""
    if iters < 2:
        raise ConfigError(f"bootstrap needs at least 2 resamples, got {iters}; use 0 to disable")
    if chunk_elems < 1:
        raise ConfigError(f"chunk_elems must be positive, got {chunk_elems}")
    n = len(values)
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    with numeric_errstate():
        if agg.corpus:
            objects = list(values)
            if agg.encode is not None and agg.batch is not None:
                return _batched(agg.encode(objects), agg.batch, iters, rng, chunk_elems)
            return _looped(
                n, lambda idx: agg.fn([objects[i] for i in idx]), iters, rng, chunk_elems
            )
        data = np.asarray(values, dtype=np.float64)
        if agg.order_stat is not None and not np.isnan(data).any():
            return _order_statistic(np.sort(data), agg.order_stat(n), iters, rng)
        if agg.batch is not None:
            return _batched(data, agg.batch, iters, rng, chunk_elems)
        return _looped(n, lambda idx: agg.fn(data[idx]), iters, rng, chunk_elems)


def _to_index(u: FloatArray, n: int) -> NDArray[np.intp]:
    idx = (u * n).astype(np.intp)
    return np.minimum(idx, n - 1)


def _order_statistic(
    ordered: FloatArray, ranks: tuple[int, int], iters: int, rng: np.random.Generator
) -> FloatArray:
    """Replicates of the mean of the order statistics ``ranks`` (1-based, equal or adjacent)."""
    n = ordered.shape[0]
    lo, hi = ranks
    if not (1 <= lo <= n and hi in (lo, lo + 1) and hi <= n):
        raise ValueError(f"order statistic ranks {ranks} invalid for n={n}")
    u_lo = rng.beta(lo, n - lo + 1, size=iters)
    first = ordered[_to_index(u_lo, n)]
    if hi == lo:
        return np.array(first, dtype=np.float64)
    u_hi = u_lo + (1.0 - u_lo) * rng.beta(1.0, n - lo, size=iters)
    # numpy's median of an even sample is the mean of the two middle values: (a + b) / 2
    return np.asarray((first + ordered[_to_index(u_hi, n)]) / 2, dtype=np.float64)


def _batched(
    data: NDArray[Any], batch: Batch, iters: int, rng: np.random.Generator, chunk_elems: int
) -> FloatArray:
    n = data.shape[0]
    out = np.empty(iters, dtype=np.float64)
    done = 0
    for idx in index_chunks(n, iters, rng, chunk_elems=chunk_elems, row_elems=data.size):
        out[done : done + idx.shape[0]] = batch(data[idx])
        done += idx.shape[0]
    return out


def _looped(
    n: int,
    one: Callable[[NDArray[np.intp]], object],
    iters: int,
    rng: np.random.Generator,
    chunk_elems: int,
) -> FloatArray:
    out = np.empty(iters, dtype=np.float64)
    done = 0
    for idx in index_chunks(n, iters, rng, chunk_elems=chunk_elems):
        for row in idx:
            out[done] = _replicate_value(one(row))
            done += 1
    return out


def _replicate_value(result: object) -> float:
    if isinstance(result, int | float | np.number):
        return float(result)
    if isinstance(result, np.ndarray) and result.shape == () and result.dtype.kind in "biuf":
        return float(result)
    raise TypeError(f"a bootstrapped aggregation must return a number, got {type(result).__name__}")
