"""Peak memory and save time of a task whose samples log ever new metric names.

``python scripts/bench_wide_metrics.py [--samples 1000] [--names 100] [--layout flat]``: one task,
each sample logging ``--names`` metrics no other sample has (1,000 x 100 = 100,000 distinct
names), details saved. Prints one JSON line: the tracker process's peak RSS, the details
worker's (the runtime is closed first, so the worker has been reaped and counts among this
process's children), both taken before the file is read back, the seconds of ``log_sample`` and of ``save()``, and the details file's rows,
parquet columns and metrics column type. ``--smoke`` runs a tiny size.

Measured on 2 shared cores (1,000 x 100, flat layout): before the (name, value) form
(``details/wide.py``) the worker peaked at 2.5 GB, the tracker at 265 MB and ``save()`` took
30 s, for a file of 100,018 parquet columns; after, 97 MB, 240 MB and 2.6 s, 20 columns.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import anyio
import pyarrow.parquet as pq

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, Runtime, TaskSpec

TASK = TaskSpec(name="wide|metrics|0", categories=["generative"])


async def run(out: str, samples: int, names: int, layout: str) -> dict[str, object]:
    async with (
        Runtime() as runtime,
        EvaluationTracker(
            out, save_details=True, runtime=runtime, details_layout=layout
        ) as tracker,
    ):
        await tracker.log_model_info(ModelInfo(model_name="bench/wide"))
        await tracker.log_tasks([TASK])
        began = time.perf_counter()
        for i in range(samples):
            doc = Doc(query=f"question {i}", choices=["a"], gold_index=0, id=str(i))
            metrics = {f"m{i}_{k}": float(k % 2) for k in range(names)}
            await tracker.log_sample(TASK.name, doc, [ModelResponse(result=["a"])], metrics)
        logged = time.perf_counter()
        result = await tracker.save()
        saved = time.perf_counter()
    peaks = {  # before this process opens the file: a reader's cost is not the tracker's
        "peak_tracker_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }  # ru_maxrss is in KiB on Linux; the workers were reaped when the runtime closed
    path = result.details_paths[TASK.name]
    column = "metrics" if layout == "flat" else "metric"
    meta = pq.ParquetFile(path).metadata
    return peaks | {
        "samples": samples,
        "names": samples * names,
        "layout": layout,
        "log_s": round(logged - began, 2),
        "save_s": round(saved - logged, 2),
        "rows": meta.num_rows,
        "parquet_columns": meta.num_columns,
        "column_type": str(pq.read_schema(path).field(column).type)[:80],
        "details": path,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--names", type=int, default=100, help="new metric names per sample")
    parser.add_argument("--layout", choices=["flat", "lighteval"], default="flat")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--smoke", action="store_true", help="a tiny size, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.names = 20, 20
    out = args.output_dir or tempfile.mkdtemp(prefix="bench-wide-")
    print(json.dumps(anyio.run(run, out, args.samples, args.names, args.layout)))


if __name__ == "__main__":
    main()
