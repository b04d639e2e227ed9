"""Caller cost A/B: what ``log_sample`` and ``log_samples`` cost the caller (issue 28).

W1's inputs (bench.py: four-choice loglikelihood samples, 4 responses a doc) through one
tracker with details saved, timed around each call (back-pressure included, as bench.py's
``caller_us``), and the validation alone (``make_sample``, no tracker I/O). Each source tree
given with ``--src`` runs in its own fresh process, alternating, ``--repeat`` times; the table
shows medians and the spread. Two figures per mode: the wall time of each call (the mean; what a
caller waits, back-pressure included, over every pass) and the event-loop thread's CPU time per
sample in the best of ``--passes`` passes (the calls and whatever the actors did on the loop
meanwhile; CPU time and the best pass drift less than wall time on a loaded machine). A tree without
``log_samples(task_name, docs, ...)`` reports it as ``-``.

Usage: python scripts/bench_caller.py --src BASE/src --src src [--samples 50000] [--repeat 3]
       [--no-details]
       python scripts/bench_caller.py --smoke     (tiny sizes, for CI: a few seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import evalstream_sample, raws, task_names


def _inputs(n: int, tasks: list[str]) -> list[tuple[str, Any, Any, dict[str, int]]]:
    out = []
    per = n // len(tasks)
    for seed, task in enumerate(tasks):
        for r in raws(per, seed):
            out.append((task, *evalstream_sample(task, r)))
    return out


async def _pass(t: Any, mode: str, items: list[Any], chunks: list[Any]) -> float:
    """One pass of ``mode`` over the items: the summed wall time of the calls, seconds."""
    clock, spent = time.perf_counter, 0.0
    if mode.startswith("prepare"):
        start = clock()
        for task, doc, outs, metrics in items:
            t.make_sample(task, doc, outs, metrics)
        return clock() - start
    if mode == "log_sample":
        for task, doc, outs, metrics in items:
            start = clock()
            await t.log_sample(task, doc, outs, metrics)
            spent += clock() - start
        return spent
    for task, docs, outs, metrics in chunks:
        start = clock()
        await t.log_samples(task, docs, outs, metrics)
        spent += clock() - start
    return spent


async def _one(mode: str, n: int, batch: int, details: bool, passes: int) -> dict[str, float]:
    """``passes`` passes over ``n`` samples in one tracker; the mean wall time per call over
    all passes, and the loop thread's CPU per sample in the best pass (the least disturbed)."""
    import msgspec

    from evalstream import EvaluationTracker, ModelInfo, TaskSpec

    tasks = task_names("W1", 5)
    items = _inputs(n, tasks)
    if mode == "prepare_mappings":  # docs and responses as mappings: converted, and checked
        items = [(k, msgspec.to_builtins(d), msgspec.to_builtins(o), m) for k, d, o, m in items]
    per = n // len(tasks)
    chunks = []
    for k in _starts(len(items), per, batch):
        chunk = items[k : k + batch][: per - k % per]  # one task per call
        chunks.append((chunk[0][0], *([c[j] for c in chunk] for j in (1, 2, 3))))
    spent, cpus = 0.0, []
    with tempfile.TemporaryDirectory(prefix="bench-caller-") as tmp:
        async with EvaluationTracker(Path(tmp), save_details=details) as t:
            await t.log_model_info(ModelInfo(model_name="org/model"))
            await t.log_tasks([TaskSpec(name=k, categories=["multichoice"]) for k in tasks])
            await t.flush()
            if mode == "log_samples" and not _has_batch_api(t):
                return {}
            for _ in range(passes):
                cpu = time.thread_time()
                spent += await _pass(t, mode, items, chunks)
                cpus.append(time.thread_time() - cpu)
            await t.save()
    return {
        f"{mode}_us": spent / (len(items) * passes) * 1e6,
        f"{mode}_cpu": min(cpus) / len(items) * 1e6,
    }


def _starts(n: int, per: int, batch: int) -> list[int]:
    """Where each log_samples call starts: every ``batch`` items, and at each task's start."""
    return [t + k for t in range(0, n, per) for k in range(0, per, batch)]


def _has_batch_api(tracker: Any) -> bool:
    import inspect

    return "task_name" in inspect.signature(tracker.log_samples).parameters


def child(args: argparse.Namespace) -> None:
    import anyio

    res = anyio.run(_one, args.mode, args.samples, args.batch, not args.no_details, args.passes)
    print("RESULT " + json.dumps(res), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", default=[])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--passes", type=int, default=5, help="passes over the samples per run")
    parser.add_argument(
        "--no-details",
        action="store_true",
        help="save_details=False: no details worker, so no wait on it (the tracker's own cost)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run, for CI")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.passes, args.repeat, args.batch = 250, 1, 1, 16
    if args.mode:
        return child(args)
    srcs = args.src or [str(HERE.parent / "src")]
    modes = ("prepare", "prepare_mappings", "log_sample", "log_samples")
    got: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for mode in modes:
            for src in srcs:
                env = os.environ | {"PYTHONPATH": src}
                cmd = [sys.executable, __file__, "--mode", mode, "--samples", str(args.samples)]
                cmd += ["--batch", str(args.batch), "--passes", str(args.passes)]
                cmd += ["--no-details"] if args.no_details else []
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                for key, value in json.loads(line[7:]).items():
                    got.setdefault((src, key), []).append(value)
    print(f"| µs per sample (median of {args.repeat}) | " + " | ".join(srcs) + " |")
    print("|---" * (len(srcs) + 1) + "|")
    for mode in modes:
        for key, what in (("us", "wall, mean per call"), ("cpu", "loop CPU, best pass")):
            cells = []
            for src in srcs:
                values = got.get((src, f"{mode}_{key}"))
                spread = f" ({min(values):.2f}-{max(values):.2f})" if values else ""
                cells.append(f"{statistics.median(values):.2f}{spread}" if values else "-")
            print(f"| {mode} ({what}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
