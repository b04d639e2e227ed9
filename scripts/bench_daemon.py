"""Daemon benchmark: many runs in one long-lived process on one evalstream.Runtime (issue 13).

D1  start+save overhead: empty runs (``async with`` a tracker, log the model, ``save()``), one
    after another in one output folder, as a daemon's runs share theirs; the median and p90 per
    run (fsyncs included: a run's folder, settings, status marker, journal and results are made
    durable) and this process's CPU time per run (its threads' included, not the workers').
    D1' the same runs each in a new output folder (the folder's own entries made durable too).
D2  1,000 small runs one after another (2 tasks x 20 samples each, details saved); open fds,
    OS threads, live child processes and RSS after run 1, 100 and 1,000.
D3  100 runs at once in one event loop, each from its own producer (200 samples each); wall
    time, every run checked saved, and the same resources after.

Usage: python scripts/bench_daemon.py [--backend asyncio|trio] [--json OUT] [--empty-only]
       python scripts/bench_daemon.py --smoke     (tiny sizes, for CI: a few seconds)
``--empty-only``: D1 and D1' alone (for A/B runs of a change to a run's fixed cost).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, Runtime, TaskSpec
from evalstream.testing import Resources, process_resources

TASKS = [TaskSpec(name=f"bench|t{k}|0", categories=["multichoice"]) for k in range(2)]
SIZES = {
    "full": {"empty": 300, "sequential": 1000, "checkpoints": (1, 100, 1000), "concurrent": 100},
    "smoke": {"empty": 10, "sequential": 12, "checkpoints": (1, 6, 12), "concurrent": 5},
}


async def empty_run(runtime: Runtime, out: Path) -> float:
    start = time.perf_counter()
    async with EvaluationTracker(out, runtime=runtime) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="bench/model"))
        await tracker.save()
    return time.perf_counter() - start


async def small_run(runtime: Runtime, out: Path, k: int, samples: int) -> int:
    rng = random.Random(k)
    async with EvaluationTracker(out, runtime=runtime, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="bench/model"))
        await tracker.log_tasks(TASKS)
        for i in range(samples):
            task = TASKS[i % 2]
            doc = Doc(query=f"q {k} {i}", choices=["A", "B", "C", "D"], gold_index=i % 4, id=str(i))
            outputs = [ModelResponse(result=[rng.uniform(-9, -1)]) for _ in range(4)]
            await tracker.log_sample(task.name, doc, outputs, {"acc": float(i % 3 == 0)})
        result = await tracker.save()
    return sum(len(p) > 0 for p in result.details_paths.values())


def row(label: str, r: Resources) -> str:
    return f"| {label} | {r.fds} | {r.threads} | {r.children} | {r.rss_bytes / 2**20:.1f} |"


async def empty_runs(runtime: Runtime, folders: list[Path]) -> dict[str, float]:
    """One empty run in each of ``folders``, one after another: wall and CPU per run, in ms."""
    cpu = time.process_time()
    times = [await empty_run(runtime, folder) for folder in folders]
    cpu = time.process_time() - cpu
    return {
        "median": statistics.median(times) * 1000,
        "p90": sorted(times)[int(0.9 * (len(times) - 1))] * 1000,
        "cpu": cpu / len(times) * 1000,
        "runs": len(times),
    }


async def bench(smoke: bool, empty_only: bool = False) -> dict[str, Any]:
    size = SIZES["smoke" if smoke else "full"]
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        root = Path(tmp)
        async with Runtime() as runtime:
            await empty_run(runtime, root / "warm")  # worker imports (pyarrow) happen once
            for _ in range(size["empty"] // 10):  # the loop, the threads and the disk warm up
                await empty_run(runtime, root / "empty")
            report["empty_ms"] = await empty_runs(runtime, [root / "empty"] * size["empty"])
            fresh = [root / "fresh" / str(k) for k in range(size["empty"])]
            report["empty_fresh_ms"] = await empty_runs(runtime, fresh)
            if empty_only:
                return report
            resources: dict[int, Resources] = {}
            for k in range(1, size["sequential"] + 1):
                assert await small_run(runtime, root / "seq", k, 40) == len(TASKS)
                if k in size["checkpoints"]:
                    resources[k] = process_resources()
            report["sequential"] = {str(k): r for k, r in resources.items()}
            saved: list[int] = []
            start = time.perf_counter()

            async def one(k: int) -> None:
                saved.append(await small_run(runtime, root / f"con{k}", k, 200))

            async with anyio.create_task_group() as tg:
                for k in range(size["concurrent"]):
                    tg.start_soon(one, k)
            report["concurrent"] = {
                "runs": len(saved),
                "all_saved": saved == [len(TASKS)] * size["concurrent"],
                "seconds": time.perf_counter() - start,
                "after": process_resources(),
            }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--empty-only", action="store_true", help="D1 and D1' alone")
    args = parser.parse_args()
    report = anyio.run(bench, args.smoke, args.empty_only, backend=args.backend)
    empty, fresh = report["empty_ms"], report["empty_fresh_ms"]
    print(f"## D1 empty run, start+save ({empty['runs']} runs, {args.backend})\n")
    for label, figures in (("one output folder", empty), ("a new folder each", fresh)):
        print(
            f"{label}: median {figures['median']:.1f} ms, p90 {figures['p90']:.1f} ms, "
            f"CPU {figures['cpu']:.1f} ms per run\n"
        )
    if args.json:
        args.json.write_bytes(msgspec.json.encode(report))
    if args.empty_only:
        return
    con = report["concurrent"]
    print("## D2 sequential small runs: what the process holds\n")
    print("| after run | fds | threads | children | RSS MiB |\n|---|---|---|---|---|")
    for k, r in report["sequential"].items():
        print(row(k, r))
    print(f"\n## D3 {con['runs']} concurrent runs\n")
    print(f"all saved: {con['all_saved']}, {con['seconds']:.2f} s wall\n")
    print("| after | fds | threads | children | RSS MiB |\n|---|---|---|---|---|")
    print(row("concurrent", con["after"]))
    if not con["all_saved"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
