"""every_eval_ever export benchmark: ``evalstream export --format eee`` of a run of N samples.

One run of N samples over ``--tasks`` tasks is written through the real tracker (a prompt, two
choices and their log-probabilities, ``acc`` 0/1 per sample, lighteval 0.13's response shape),
then exported in a fresh process, which reports its wall time and its peak resident memory:
the details are read a batch at a time, so the peak should not grow with N.

    .venv/bin/python scripts/bench_eee.py [--samples 1000000] [--tasks 4] [--layout flat]
    .venv/bin/python scripts/bench_eee.py --smoke       # 20,000 samples
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

EXPORT = """
import resource, sys, time
t = time.perf_counter()
from evalstream.interop.eee import export_run
from evalstream.runs.loading import resolve_run
files = export_run(resolve_run(sys.argv[1], latest=True), sys.argv[2])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(time.perf_counter() - t, peak, len(files))
"""


async def record(out: Path, samples: int, tasks: int, layout: str) -> None:
    names = [f"bench|task{k}|0" for k in range(tasks)]
    async with EvaluationTracker(out, bootstrap_iters=0, details_layout=layout) as tracker:  # type: ignore[arg-type]
        await tracker.log_model_info(ModelInfo(model_name="bench/model"))
        await tracker.log_tasks([TaskSpec(name=t, categories=["multichoice"]) for t in names])
        for i in range(samples):
            right = i % 3 != 0
            doc = Doc(query=f"Question {i}: which?", choices=["A", "B"], gold_index=0, ctx=f"Q{i}")
            response = ModelResponse(logprobs=[-0.5, -1.5] if right else [-1.5, -0.5])
            await tracker.log_sample(names[i % tasks], doc, [response], {"acc": float(right)})
        await tracker.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--layout", choices=["flat", "lighteval"], default="flat")
    parser.add_argument("--smoke", action="store_true", help="20,000 samples")
    args = parser.parse_args()
    samples = 20_000 if args.smoke else args.samples
    with tempfile.TemporaryDirectory(prefix="bench-eee-") as tmp:
        runs, out = Path(tmp) / "runs", Path(tmp) / "eee"
        t = time.perf_counter()
        anyio.run(record, runs, samples, args.tasks, args.layout)
        recorded = time.perf_counter() - t
        done = subprocess.run(
            [sys.executable, "-c", EXPORT, str(runs), str(out)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds, peak_mib, files = done.stdout.split()
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(json.dumps({
            "samples": samples, "tasks": args.tasks, "layout": args.layout,
            "record_s": round(recorded, 1), "export_s": round(float(seconds), 1),
            "export_samples_per_s": round(samples / float(seconds)),
            "export_peak_rss_mib": round(float(peak_mib)), "files": int(files),
            "output_mib": round(size / 2**20, 1),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
