"""Benchmark: lighteval's bootstrap_stderr against evalstream's, median with 1000 resamples.

Both run in this process on the same data. lighteval's value is std(replicates)/sqrt(1000)
(its defect), so the table also shows it multiplied by sqrt(1000), which should match ours.
"ours (resample)" is our generic chunked resampling path, shown for comparison with the
order-statistic path that the built-in median uses.

Usage: python scripts/bench_stats.py [--smoke]   (--smoke: tiny sizes, for CI)
Run it with .bench-venv/bin/python to include lighteval; without lighteval only ours runs.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from evalstream.stats.aggregations import default_registry
from evalstream.stats.bootstrap import bootstrap_stderr

if TYPE_CHECKING:
    from collections.abc import Callable

ITERS = 1000
SEED = 1234


def load_lighteval() -> Callable[..., float] | None:
    """lighteval's bootstrap_stderr (its module moved between releases), or None."""
    os.environ.setdefault("LIGHTEVAL_DISABLE_TQDM", "1")
    for module in ("lighteval.metrics.utils.stderr", "lighteval.metrics.stderr"):
        try:
            mod = __import__(module, fromlist=["bootstrap_stderr"])
        except ImportError:
            continue
        logging.getLogger("lighteval").setLevel(logging.WARNING)
        fn: Callable[..., float] = mod.bootstrap_stderr
        return fn
    return None


def timed(fn: Callable[..., float], *args: Any, **kwargs: Any) -> tuple[float, float]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args()
    sizes = [200, 1000] if args.smoke else [10_000, 100_000]

    lighteval_bootstrap = load_lighteval()
    if lighteval_bootstrap is None:
        print("lighteval is not installed: running evalstream only.")
        print('For the comparison: pip install "torch==2.13.0" lighteval "xxhash<4"')

    registry = default_registry()
    median = registry.get("median")
    registry.register("median_rows", lambda rows: np.median(rows, axis=1), vectorised=True)
    resample = registry.get("median_rows")

    header = (
        f"{'n':>8} | {'lighteval s':>11} | {'ours s':>8} | {'ratio':>8} | {'ours (resample) s':>17}"
        f" | {'lighteval se':>12} | {'ours se':>9} | {'lighteval se*sqrt(1000)':>23}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        data = np.random.default_rng(n).lognormal(size=n)
        ours_s, ours_se = timed(bootstrap_stderr, data, median, ITERS, SEED)
        resample_s, _ = timed(bootstrap_stderr, data, resample, ITERS, SEED)
        cells: list[Any] = ["-"] * 4
        if lighteval_bootstrap is not None:
            le_s, le_se = timed(
                lighteval_bootstrap,
                metric=np.median,
                population=data.tolist(),
                number_experiments=ITERS,
            )
            cells = [f"{le_s:.3f}", f"{le_s / ours_s:.0f}x", f"{le_se:.6f}"]
            cells.append(f"{le_se * math.sqrt(ITERS):.6f}")
        print(
            f"{n:>8} | {cells[0]:>11} | {ours_s:>8.4f} | {cells[1]:>8} | {resample_s:>17.3f}"
            f" | {cells[2]:>12} | {ours_se:>9.6f} | {cells[3]:>23}"
        )
    return 0


if __name__ == "__main__":  # guard: lighteval's bootstrap starts a multiprocessing pool
    raise SystemExit(main())
