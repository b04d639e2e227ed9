"""Details worker A/B: the worker's CPU per sample and its end of run, in-process (issue 28).

W1's samples (bench.py: four-choice loglikelihood docs, four responses each), encoded as the
tracker ships them (``prepare_sample``, ``encode_batch``: 256 samples a batch), are fed to a
details ``Worker`` in one process, as the worker process applies its ``Forward`` messages; then
the run ends with an ``Output``, so the live files are finished (or the segments converted) and
moved into place. Two figures per run: the CPU time of the ingest per sample (every batch
applied, ``time.process_time``; CPU time drifts less than wall time on a shared machine) and the
seconds of the end of the run (CPU). Each source tree given with ``--src`` runs in a fresh
process, the trees alternated (their order reversed every other round), ``--repeat`` times; the table shows medians and the spread, the
resident memory the ingest added and the process's peak RSS (the inputs, built first, included).
Memory is only indicative here: the inputs' freed memory is reused by the ingest, so what the
worker holds for a run is measured end to end (``bench.py --workload W3``: the workers' growth).

``--tasks N --interleave`` spreads the samples over N tasks sample by sample (a server's or
``bench_memory.py``'s order: each batch holds every task), instead of one task after another.

Usage: python scripts/bench_worker.py --src BASE/src --src src [--samples 20480] [--repeat 5]
           [--layout flat|lighteval] [--tasks 5] [--interleave]
       python scripts/bench_worker.py --smoke     (tiny sizes, for CI: a few seconds)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import evalstream_sample, raws, task_names


def _batches(n: int, n_tasks: int, interleave: bool) -> list[bytes]:
    """The journal-encoded ``SampleBatch`` messages of ``n`` W1 samples over ``n_tasks``."""
    from evalstream.run.intake import encode_batch, prepare_sample

    tasks = task_names("W1", n_tasks) if n_tasks <= 5 else [f"task_{i:03d}" for i in range(n_tasks)]
    per = max(1, n // len(tasks))
    by_task = []
    for seed, task in enumerate(tasks):
        encoded = []
        for r in raws(per, seed):
            doc, outs, metrics = evalstream_sample(task, r)
            encoded.append(prepare_sample({task: None}, task, doc, outs, metrics)[1])
        by_task.append(encoded)
    if interleave:
        order = [s for group in zip(*by_task, strict=True) for s in group]
        return [encode_batch(order[i : i + 256]) for i in range(0, len(order), 256)]
    return [encode_batch(enc[i : i + 256]) for enc in by_task for i in range(0, len(enc), 256)]


def child(args: argparse.Namespace) -> None:
    """One run in this process: ingest every batch, end with an output, print the figures."""
    from evalstream.details.protocol import Output
    from evalstream.details.worker import Worker

    batches = _batches(args.samples, args.tasks, args.interleave)
    samples = (args.samples // args.tasks) * args.tasks
    gc.collect()
    gc.freeze()  # as the worker process does after its imports (``settle_gc``)
    with tempfile.TemporaryDirectory() as tmp:
        worker = Worker(Path(tmp), True, 0, args.layout)
        before = _rss_mb()
        start = time.process_time()
        for body in batches:
            worker.guarded(body)
        ingested = time.process_time()
        held = _rss_mb() - before
        state = worker.end(1, Output(root=f"{tmp}/out", model_name="m", date_id="d"))
        ended = time.process_time()
        if state.error is not None or state.written is None or state.written.error is not None:
            raise SystemExit(f"the run failed: {state.error or state.written}")
        written = sorted((Path(tmp) / "out").rglob("*.parquet"))
        assert len(written) == args.tasks, written
    res = {
        "ingest_us": 1e6 * (ingested - start) / samples,
        "end_s": ended - ingested,
        "held_mb": held,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(res), flush=True)


def _rss_mb() -> float:
    """The process's resident memory now, MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cell(values: list[float] | None, fmt: str) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", default=[])
    parser.add_argument("--samples", type=int, default=20_480)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--interleave", action="store_true", help="each batch holds every task")
    parser.add_argument("--layout", choices=("flat", "lighteval"), default="flat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run, for CI")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.repeat, args.tasks = 600, 1, 3
    if args.child:
        return child(args)
    srcs = args.src or [str(HERE.parent / "src")]
    got: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeat):
        for src in srcs if rep % 2 == 0 else srcs[::-1]:  # ABBA: no tree always runs last
            env = os.environ | {"PYTHONPATH": src, "ARROW_DEFAULT_MEMORY_POOL": "system"}
            cmd = [sys.executable, __file__, "--child", "--samples", str(args.samples)]
            cmd += ["--tasks", str(args.tasks), "--layout", args.layout]
            cmd += ["--interleave"] if args.interleave else []
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{src}: {out.stderr[-2000:]}")
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
            for key, value in json.loads(line[7:]).items():
                got.setdefault((src, key), []).append(value)
    shape = f"{args.samples:,} samples, {args.tasks} tasks"
    shape += ", interleaved" if args.interleave else ""
    print(f"load average {os.getloadavg()[0]:.1f}; {shape}, {args.layout} layout")
    print(f"| median of {args.repeat} (min-max) | " + " | ".join(srcs) + " |")
    print("|---" * (len(srcs) + 1) + "|")
    for key, what, fmt in (
        ("ingest_us", "ingest, CPU µs per sample", ".2f"),
        ("end_s", "end of run, CPU s", ".3f"),
        ("held_mb", "RSS grown by the ingest, MB", ".1f"),
        ("peak_mb", "peak RSS (inputs included), MB", ".0f"),
    ):
        cells = [_cell(got.get((src, key)), fmt) for src in srcs]
        print(f"| {what} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
