"""Query benchmark: ``select task, avg(acc) ... group by task`` over N details rows (default 1M).

One run of N / R samples is written through the real tracker (``--tasks`` tasks, a prompt, two
choices and their log-likelihoods per sample), then its results file and details folder are
replicated R times under other date ids, so the output folder holds R saved runs and N rows.
The same question is then answered side by side, each in a fresh process (its own imports,
cold page cache aside):

- evalstream.query (DuckDB over the details parquet files, reading only the columns it needs);
- pandas: ``read_parquet`` of every details file (all columns, as a notebook does), then groupby;
- pandas reading only the per-sample metrics column (``metric``, or ``metrics`` in the flat layout);
- lighteval's ``load_details_datasets`` (when lighteval is importable), then groupby in Python.

    .bench-venv/bin/python scripts/bench_query.py [--samples 1000000] [--copies 10] [--tasks 4]
    .bench-venv/bin/python scripts/bench_query.py --layout flat   # without lighteval's loader
    .venv/bin/python scripts/bench_query.py --smoke      # 20,000 samples, 2 copies

The default layout is ``details_layout="lighteval"``, the one lighteval 0.13's loader reads
(with ``datasets`` 5 it refuses the flat layout's ``specifics`` map column), so the three read
the same files. The bench venv needs ``duckdb`` (``.bench-venv/bin/pip install duckdb``).
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

MODEL = "bench/model"
SQL = "SELECT task, avg({column}.acc) AS acc, count(*) AS n FROM samples GROUP BY task"
METRICS = {"flat": "metrics", "lighteval": "metric"}  # each layout's per-sample metrics struct

EVALSTREAM = """
import sys, time
t = time.perf_counter()
import evalstream
table = evalstream.query(sys.argv[1], sys.argv[2])
rows = {r["task"]: (r["acc"], r["n"]) for r in table.to_pylist()}
print(time.perf_counter() - t, repr(rows))
"""
PANDAS = """
import glob, sys, time
t = time.perf_counter()
import pandas as pd
column = sys.argv[3]
columns = None if sys.argv[2] == "all" else [column]
frames = []
for path in sorted(glob.glob(sys.argv[1] + "/details/bench/model/*/details_*.parquet")):
    date_id = path.rsplit("/", 2)[-2]
    task = path.rsplit("/", 1)[-1][len("details_"):-len("_" + date_id + ".parquet")]
    frame = pd.read_parquet(path, columns=columns)
    frame["task"] = task
    frames.append(frame)
df = pd.concat(frames, ignore_index=True)
df["acc"] = [m["acc"] for m in df[column]]
grouped = df.groupby("task")["acc"].agg(["mean", "count"])
rows = {task: (float(r["mean"]), int(r["count"])) for task, r in grouped.iterrows()}
print(time.perf_counter() - t, repr(rows))
"""
LIGHTEVAL = """
import sys, time
from collections import defaultdict
t = time.perf_counter()
from lighteval.logging.evaluation_tracker import EvaluationTracker
date_ids = sys.argv[2].split(",")
tasks = [t.rsplit("|", 1)[0] for t in sys.argv[3].split(",")]  # 0.13 matches without |fewshot
sums, counts = defaultdict(float), defaultdict(int)
for date_id in date_ids:
    tracker = EvaluationTracker(output_dir=sys.argv[1])
    tracker.general_config_logger.model_name = "bench/model"
    for name, dataset in tracker.load_details_datasets(date_id, tasks).items():
        task = name if name.endswith("|0") else name + "|0"
        for m in dataset[sys.argv[4]]:
            sums[task] += m["acc"]
            counts[task] += 1
rows = {t: (sums[t] / counts[t], counts[t]) for t in counts}
print(time.perf_counter() - t, repr(rows))
"""


async def write_run(out: Path, samples: int, tasks: list[str], layout: str) -> str:
    """One saved run of ``samples`` samples spread over ``tasks``; returns its results file."""
    async with EvaluationTracker(out, bootstrap_iters=0, details_layout=layout) as tracker:  # type: ignore[arg-type]
        await tracker.log_model_info(ModelInfo(model_name=MODEL))
        await tracker.log_tasks([TaskSpec(name=t) for t in tasks])
        for i in range(samples):
            task = tasks[i % len(tasks)]
            query = f"Question {i}: which is right?"
            prompt = f"Answer the question.\n{query}\nAnswer:"
            doc = Doc(query=query, choices=[" A", " B"], gold_index=0, ctx=prompt, id=str(i))
            right = (i * 2654435761) % 1000 < 620
            outputs = [
                ModelResponse(result=[-0.5 if right else -1.5], input_tokens=[1, 2, i % 500]),
                ModelResponse(result=[-1.5 if right else -0.5], input_tokens=[1, 3, i % 500]),
            ]
            await tracker.log_sample(task, doc, outputs, {"acc": float(right)})
        return (await tracker.save()).results_path


def replicate(out: Path, results: str, copies: int) -> list[str]:
    """``copies`` saved runs in all: the run's results and details under new date ids."""
    date_id = Path(results).stem.removeprefix("results_")
    details = out / "details" / MODEL / date_id
    date_ids = [date_id]
    for k in range(1, copies):
        other = f"{date_id[:-6]}{k:06d}"
        date_ids.append(other)
        shutil.copyfile(results, Path(results).with_name(f"results_{other}.json"))
        folder = out / "details" / MODEL / other
        folder.mkdir(parents=True)
        for file in details.iterdir():
            name = file.name.replace(date_id, other)
            (folder / name).hardlink_to(file)
    return date_ids


def timed(code: str, *args: str) -> tuple[float, dict[str, tuple[float, int]]] | None:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"  failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    seconds, rows = done.stdout.split(" ", 1)
    return float(seconds), ast.literal_eval(rows)


def importable(name: str) -> bool:
    return (
        subprocess.run(
            [sys.executable, "-c", f"import {name}"], check=False, capture_output=True
        ).returncode
        == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="details rows in all")
    parser.add_argument("--copies", type=int, default=10, help="saved runs they are spread over")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument(
        "--layout",
        choices=sorted(METRICS),
        default="lighteval",
        help="details layout (lighteval 0.13's loader reads its own; with datasets 5 it refuses "
        "the flat layout's map column)",
    )
    parser.add_argument("--smoke", action="store_true", help="20,000 samples, 2 copies")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.copies = 20_000, 2
    tasks = [f"bench|task{k}|0" for k in range(args.tasks)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t = time.perf_counter()
        results = anyio.run(write_run, out, args.samples // args.copies, tasks, args.layout)
        date_ids = replicate(out, results, args.copies)
        rows = args.samples // args.copies * args.copies
        print(
            f"{rows:,} details rows ({args.layout} layout) in {args.copies} runs written in {time.perf_counter() - t:.1f} s"
        )
        column = METRICS[args.layout]
        sql = SQL.format(column=column)
        contenders = [("evalstream.query (DuckDB)", EVALSTREAM, (str(out), sql))]
        if importable("pandas"):
            contenders += [
                ("pandas read_parquet, all columns", PANDAS, (str(out), "all", column)),
                (f"pandas read_parquet, {column} column", PANDAS, (str(out), "metrics", column)),
            ]
        else:
            print("pandas is not importable: skipped")
        if importable("lighteval"):
            args_ = (str(out), ",".join(date_ids), ",".join(tasks), column)
            contenders.append(("lighteval load_details_datasets", LIGHTEVAL, args_))
        else:
            print("lighteval is not importable (scripts/setup-bench-venv): skipped")
        answers, base = {}, None
        for name, code, argv in contenders:
            got = timed(code, *argv)
            if got is None:
                print(f"{name:38s} failed")
                continue
            seconds, answer = got
            answers[name] = answer
            base = base or seconds
            print(f"{name:38s} {seconds:7.2f} s   x{seconds / base:5.1f} of DuckDB")
        first = next(iter(answers.values()))
        for name, answer in answers.items():
            same = answer.keys() == first.keys() and all(
                answer[t][1] == first[t][1] and abs(answer[t][0] - first[t][0]) < 1e-9
                for t in first
            )
            if not same:
                print(f"{name} disagrees: {json.dumps(answer)} vs {json.dumps(first)}")
                return 1
        print(
            f"every answer agrees: {sum(n for _, n in first.values()):,} rows, {len(first)} tasks"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
