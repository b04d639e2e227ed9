"""Memory benchmark: a million samples over 60 tasks through the tracker, details saved.

Prints the process's resident memory (current, and peak so far) after 100k samples, after
1M samples, and after ``save()``, with the logging rate, the size of the working folder
(journal and details segments) before save, and the time save takes. Flat memory means the
1M line is close to the 100k line: only the metric and hash arrays grow with the run
(40 bytes per sample and metric, about 60 MB at 1M samples with two metrics).

    .venv/bin/python scripts/bench_memory.py [--samples 1000000] [--tasks 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

MB = 1 << 20


def rss() -> str:
    """Current and peak resident set size of this process, in MiB."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return f"RSS {current / MB:7.1f} MiB (peak {peak / MB:7.1f} MiB)"


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def files_size(paths: list[str]) -> int:
    """Bytes of the files ``paths``."""
    return sum(Path(p).stat().st_size for p in paths)


def sample(task: str, i: int) -> tuple[Doc, list[ModelResponse], dict[str, float]]:
    """A multiple-choice sample of about 1.5 KB: prompt, four choices, one loglik each."""
    doc = Doc(
        query=f"{task} question {i}: which of the following is true?",
        choices=[f"choice {c} of question {i}" for c in "ABCD"],
        gold_index=i % 4,
        ctx=f"The following are multiple choice questions.\n\n{'example ' * 60}\nQ{i}",
        instruction="Answer with the letter.",
        num_asked_few_shots=5,
        num_effective_few_shots=5,
        id=str(i),
    )
    outputs = [
        ModelResponse(
            result=[-((i * 7 + c) % 97) / 10],
            input_tokens=[(i + c + t) % 32000 for t in range(48)],
            generated_tokens=[(i + c) % 32000],
        )
        for c in range(4)
    ]
    return doc, outputs, {"acc": float(i % 3 == 0), "acc_norm": float(i % 5 < 2)}


async def bench(out: Path, samples: int, n_tasks: int, producers: int) -> None:
    """Log ``samples`` samples from ``producers`` tasks, printing memory on the way; save."""
    tasks = [TaskSpec(name=f"bench|task{k}|5", categories=["multichoice"]) for k in range(n_tasks)]
    checkpoints = {min(100_000, samples), samples}
    logged = 0
    print(f"start: {rss()}")
    started = time.perf_counter()
    async with EvaluationTracker(out, bootstrap_iters=0) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="bench/model"))
        await tracker.log_tasks(tasks)

        async def producer(k: int) -> None:
            nonlocal logged
            for i in range(k, samples, producers):
                task = tasks[i % n_tasks].name
                await tracker.log_sample(task, *sample(task, i))
                logged += 1
                if logged in checkpoints:
                    elapsed = time.perf_counter() - started
                    print(
                        f"{logged:>9,} samples: {rss()}  "
                        f"({logged / elapsed:,.0f} samples/s, {elapsed:.0f} s)",
                        flush=True,
                    )
                await anyio.lowlevel.checkpoint()  # a harness awaits its model here

        async with anyio.create_task_group() as tg:
            for k in range(producers):
                tg.start_soon(producer, k)
        await tracker.flush()
        journal = folder_size(tracker.workdir / "journal")
        segments = folder_size(tracker.workdir / "segments")
        print(f"working folder: journal {journal / MB:.0f} MiB, segments {segments / MB:.0f} MiB")
        saving = time.perf_counter()
        result = await tracker.save()
    saved = time.perf_counter() - saving
    parquet = files_size(list(result.details_paths.values()))
    print(f"after save: {rss()}  (save took {saved:.0f} s; parquet {parquet / MB:.0f} MiB)")
    print(f"total: {time.perf_counter() - started:.0f} s for {sum(result.samples.values()):,}")


def main() -> None:
    """Parse arguments and run the benchmark in a temporary folder (or ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--out", type=Path, help="keep the outputs here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="evalstream-bench-"))
    try:
        anyio.run(bench, out, args.samples, args.tasks, args.producers)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
