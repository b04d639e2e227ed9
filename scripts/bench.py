"""Side-by-side benchmark: evalstream against lighteval 0.13's EvaluationTracker (issue 7).

W1  lighteval's shape: 5 tasks x 20,000 four-choice loglikelihood samples, details saved.
W2  an inference server: 64 producers log as fast as they can for --w2-seconds, then save(),
    while a 1 ms ticker measures event-loop lag (lighteval: its sync calls run on the loop).
W3  scale: 1,000,000 samples over 60 tasks (57 MMLU-like subtasks + 3).

Every measurement runs in a fresh subprocess, so peak RSS is per run; growth is the peak minus
the RSS after imports and setup. Runs alternate between the two sides; the tables show medians,
the (min-max) spread and lighteval / evalstream ratios. lighteval runs when this interpreter
imports it (or with --lighteval-python); its side is scripts/bench_lighteval_worker.py, which
shares this module's inputs and measurement loops, so both sides do the same work.

Usage: .bench-venv/bin/python scripts/bench.py --workload all --repeat 3 [--json OUT]
       python scripts/bench.py --smoke          (tiny sizes, for CI: a few seconds)
"""

from __future__ import annotations

import argparse
import array
import contextlib
import functools
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

HERE = Path(__file__).resolve().parent
CHOICES = (" A", " B", " C", " D")
W3_OTHERS = (("arc:challenge", 25), ("hellaswag", 10), ("winogrande", 5))
MARKS = (100_000, 250_000, 500_000, 1_000_000)

# -- inputs: the same content for both sides ---------------------------------------------------


class Raw(NamedTuple):
    """One sample's content; each side builds its own Doc and responses from it."""

    i: int
    query: str  # ~160 characters
    tokens: list[int]  # 40 input tokens
    conts: list[list[int]]  # one continuation token per choice: [[t], [t], [t], [t]]
    logprobs: list[float]
    gold: int
    acc: int


_POOL: list[str] = []


def raws(n: int, seed: int, chunk: int = 2048) -> Iterator[Raw]:
    """``n`` samples, deterministic in ``seed``, made in numpy chunks (~5 µs a sample)."""
    import numpy as np

    if not _POOL:
        rng = random.Random(0)
        for _ in range(1024):
            _POOL.append(" ".join(rng.choice("abcdefghij") * rng.randint(3, 8) for _ in range(25)))
    gen = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        tokens = gen.integers(0, 50_000, (m, 40)).tolist()
        conts = gen.integers(0, 50_000, (m, 4, 1)).tolist()
        lps = -5.0 * gen.random((m, 4))
        gold = gen.integers(0, 4, m)
        acc = (lps.argmax(axis=1) == gold).astype(int).tolist()
        lps_l, gold_l = lps.tolist(), gold.tolist()
        for j in range(m):
            k = start + j
            query = f"Question {k}: {_POOL[(k * 7 + seed) % 1024]}"[:160]
            yield Raw(k, query, tokens[j], conts[j], lps_l[j], gold_l[j], acc[j])


def task_names(workload: str, n_tasks: int) -> list[str]:
    """Full task names (``name|fewshot``), the same on both sides."""
    if workload == "W3" and n_tasks > len(W3_OTHERS):
        subs = [(f"mmlu:sub{k:02d}", 5) for k in range(n_tasks - len(W3_OTHERS))]
        return [f"{n}|{f}" for n, f in (*subs, *W3_OTHERS)]
    return [f"mmlu:sub{k}|5" for k in range(n_tasks)]


# -- measurement -------------------------------------------------------------------------------


def _status_mb(key: str, pid: str = "self") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else math.nan


def rss_mb() -> float:
    """Current resident set size, MB."""
    return _status_mb("VmRSS")


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``), so import peaks don't count."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def dist(values: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """p50/p99/max of ``values`` (seconds), in ms by default."""
    s = sorted(values) or [math.nan]
    return {
        "p50": s[len(s) // 2] * scale,
        "p99": s[int((len(s) - 1) * 0.99)] * scale,
        "max": s[-1] * scale,
        "n": len(values),
    }


class Ticker:
    """Sleeps 1 ms in a loop and records how late it wakes (event-loop lag), per phase."""

    def __init__(self) -> None:
        self.phase, self.running = "log", True
        self.lags = {"log": array.array("d"), "save": array.array("d")}

    async def run(self) -> None:
        """Tick until ``running`` is cleared."""
        import anyio

        while self.running:
            start = time.perf_counter()
            await anyio.sleep(0.001)
            self.lags[self.phase].append(max(0.0, time.perf_counter() - start - 0.001))


class ChildrenPeak:
    """Peak RSS of child processes (evalstream may convert parquet in one), sampled every 50 ms."""

    def __init__(self) -> None:
        self.base_mb = self._children_mb()  # the already-started workers' RSS (setup)
        self.peak_mb = self.base_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20

    @staticmethod
    def _children_mb(pid: str = "self") -> float:
        # plain os calls and statm, not pathlib globs and a regex over status: this thread
        # shares the measured process's GIL, so what it costs is charged to the side measured
        total = 0.0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                children = handle.read().split()
            for child in children:
                with contextlib.suppress(OSError), open(f"/proc/{child}/statm") as handle:
                    resident = int(handle.read().split()[1]) * ChildrenPeak.PAGE_MB
                    total += resident + ChildrenPeak._children_mb(child)
        return total

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError):
                self.peak_mb = max(self.peak_mb, self._children_mb())

    def stop(self) -> float:
        """Stop sampling; the children's peak, MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_mb


class GcWatch:
    """Counts the garbage collector's full (gen 2) passes and their pauses."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._start = time.perf_counter()
            else:
                self.pauses.append(time.perf_counter() - self._start)

    def summary(self) -> dict[str, float]:
        """Number, total and longest gen-2 pause (ms)."""
        gc.callbacks.remove(self._callback)
        return {
            "n": len(self.pauses),
            "total_ms": sum(self.pauses) * 1e3,
            "max_ms": max(self.pauses, default=0.0) * 1e3,
        }


async def measure(
    p: dict[str, Any],
    build: Callable[[str, Raw], tuple[Any, ...]],
    log: Callable[..., Awaitable[None] | None],
    save: Callable[[], Awaitable[Any]],
) -> dict[str, Any]:
    """Run workload ``p`` through one side: ``build`` a sample, ``log`` it (timed), ``save``.

    ``log`` is awaited when it returns an awaitable (evalstream); a synchronous ``log``
    (lighteval) makes W2 producers yield after every sample, since it never yields itself.
    """
    import anyio
    import anyio.lowlevel

    names, clock, res = task_names(p["workload"], p["tasks"]), time.perf_counter, {}
    w2 = p["workload"] == "W2"
    pools = [itertools.cycle(list(raws(64, 1000 + k))) for k in range(p["producers"] if w2 else 0)]
    gc.collect()
    if p.get("gc_freeze"):
        gc.freeze()  # what a server can do once after start-up: later gen-2 passes skip all this
    base = rss_mb()
    reset_peak()
    watch, children = GcWatch(), ChildrenPeak()
    if w2:
        ticker, count, deadline = Ticker(), [0], clock() + p["seconds"]

        async def producer(k: int) -> None:
            name = names[k % len(names)]
            for r in pools[k]:
                if clock() >= deadline:
                    return
                pending = log(name, *build(name, r))
                await (pending if pending is not None else anyio.lowlevel.checkpoint())
                count[0] += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker.run)
            t0 = clock()
            async with anyio.create_task_group() as producers:
                for k in range(p["producers"]):
                    producers.start_soon(producer, k)
            res["log_s"] = clock() - t0
            pools.clear()
            ticker.phase, s = "save", clock()
            await save()
            res["save_s"], ticker.running = clock() - s, False
        res.update(
            samples=count[0], lag_log=dist(ticker.lags["log"]), lag_save=dist(ticker.lags["save"])
        )
    else:
        durs, logged, rss_at = array.array("d"), 0, {}
        per_task = [
            p["samples"] // len(names) + (k < p["samples"] % len(names)) for k in range(len(names))
        ]
        t0 = clock()
        for seed, (name, n) in enumerate(zip(names, per_task, strict=True)):
            for r in raws(n, seed):
                built = build(name, r)
                s = clock()
                pending = log(name, *built)
                if pending is not None:
                    await pending
                durs.append(clock() - s)
                logged += 1
                if logged in p["marks"]:
                    rss_at[logged] = rss_mb()
        res["log_s"], rss_at["end"] = clock() - t0, rss_mb()
        s = clock()
        await save()
        res.update(
            save_s=clock() - s,
            e2e_s=clock() - t0,
            samples=logged,
            rss_at=rss_at,
            caller_us=sum(durs) / logged * 1e6,
            caller_p99_us=dist(durs, 1e6)["p99"],
            caller_max_ms=max(durs) * 1e3,
            inputs_us=(res["log_s"] - sum(durs)) / logged * 1e6,
            caller_rate=logged / sum(durs),
            rss_first=rss_at[min(p["marks"])],
            rss_end=rss_at["end"],
        )
    res["samples_per_s"] = res["samples"] / res["log_s"]
    # own peak from the kernel; a child's sampled peak is added (it may not coincide: an upper bound)
    # the details workers start with the tracker, before ``base``: their RSS then (the
    # interpreter and its imports) is setup, as the imports of this process are; what they
    # grow by while the run goes is the run's, and is counted
    res["children_peak_mb"] = children.stop()
    res["children_base_mb"] = children.base_mb
    res["children_growth_mb"] = max(0.0, res["children_peak_mb"] - children.base_mb)
    own = _status_mb("VmHWM")
    peak = own + res["children_peak_mb"]
    res.update(
        rss_base_mb=base,
        peak_mb=peak,
        peak_growth_mb=own - base + res["children_growth_mb"],
        gc=watch.summary(),
    )
    return res


def check_outputs(out: Path, res: dict[str, Any]) -> dict[str, Any]:
    """Add output bytes, parquet rows, and per-task [acc, hash_examples] for cross-checking."""
    import pyarrow.parquet as pq

    files = [f for sub in ("results", "details") for f in (out / sub).rglob("*") if f.is_file()]
    final = json.loads(next((out / "results").rglob("results_*.json")).read_text())
    summary = final["summary_tasks"]
    res["output_mb"] = sum(f.stat().st_size for f in files) / 2**20
    res["rows"] = sum(pq.ParquetFile(f).metadata.num_rows for f in files if f.suffix == ".parquet")
    res["check"] = {
        t: [row.get("acc"), summary[t]["hashes"]["hash_examples"]]
        for t, row in final["results"].items()
        if t in summary
    }
    return res


def emit(result: dict[str, Any]) -> None:
    """Hand a worker's numbers to the orchestrator."""
    print("RESULT " + json.dumps(result), flush=True)


def doc_fields(task: str, r: Raw) -> dict[str, Any]:
    """W1's Doc fields both sides share, as keyword arguments (each side adds its own)."""
    return {
        "query": r.query,
        "choices": list(CHOICES),
        "gold_index": r.gold,
        "task_name": task,
        "id": str(r.i),
    }


def response_fields(r: Raw) -> dict[str, Any]:
    """W1's one lighteval 0.13 ModelResponse, as keyword arguments: the same on both sides."""
    return {
        "input": r.query,
        "input_tokens": r.tokens,
        "output_tokens": r.conts,
        "logprobs": r.logprobs,
        "argmax_logits_eq_gold": [False] * 4,
    }


@functools.cache
def _evalstream_types() -> tuple[Any, Any]:
    """evalstream's Doc and ModelResponse, imported once (not per sample: a ``from`` import in
    the builder cost ~1 µs a sample, charged to the inputs)."""
    from evalstream import Doc, ModelResponse

    return Doc, ModelResponse


def evalstream_sample(
    task: str, r: Raw, *, every_input_tokens: bool = False, shape: str = "seed"
) -> tuple[Any, Any, Any]:
    """One W1 sample as evalstream's Doc, its responses and its metrics.

    ``shape="v013"``: one lighteval 0.13 ModelResponse, the object lighteval's side logs (input
    tokens, one continuation token list and one logprob per choice). ``"seed"``: the older
    API's four responses, one per choice, with the same content; the prompt's tokens on the
    first response only, unless every one.
    """
    doc_type, response_type = _evalstream_types()
    doc = doc_type(**doc_fields(task, r), ctx=r.query)
    if shape == "v013":
        return doc, response_type(**response_fields(r)), {"acc": r.acc}
    outs = [
        response_type(
            result=[r.logprobs[k]],
            generated_tokens=r.conts[k],
            input_tokens=r.tokens if every_input_tokens or k == 0 else [],
        )
        for k in range(4)
    ]
    return doc, outs, {"acc": r.acc}


async def evalstream_run(p: dict[str, Any]) -> dict[str, Any]:
    """One evalstream measurement: 4 ModelResponses per doc, the same content as lighteval's one."""
    from evalstream import Doc, Runtime, TaskSpec

    every, shape = p["input_tokens"] == "each", p.get("shape", "seed")

    def build(task: str, r: Raw) -> tuple[Doc, Any, dict[str, int]]:
        return evalstream_sample(task, r, every_input_tokens=every, shape=shape)

    specs = [
        TaskSpec(name=n, categories=["multichoice"]) for n in task_names(p["workload"], p["tasks"])
    ]
    out = Path(p["out"])
    if not p.get("details_workers") and p.get("details_nice") is None:
        return await _evalstream_tracked(p, out, specs, build, None)
    options = {"details_nice": p["details_nice"]} if p.get("details_nice") is not None else {}
    async with Runtime(details_workers=p.get("details_workers") or None, **options) as runtime:
        return await _evalstream_tracked(p, out, specs, build, runtime)


async def _evalstream_tracked(
    p: dict[str, Any], out: Path, specs: list[Any], build: Any, runtime: Any
) -> dict[str, Any]:
    from evalstream import EvaluationTracker, ModelInfo

    async with EvaluationTracker(
        out,
        save_details=True,
        batch_size=p["batch_size"],
        runtime=runtime,
        details_layout=p.get("details_layout", "flat"),
    ) as t:
        await t.log_args_info(num_fewshot_seeds=1, job_id="0")
        await t.log_model_info(ModelInfo(model_name="org/model"))
        await t.log_tasks(specs)
        await t.flush()  # setup ends once the details workers answer (their imports are done)
        res = await measure(p, build, t.log_sample, t.save)
    return check_outputs(out, res)


# -- orchestrator ------------------------------------------------------------------------------

SIZES = {  # (tasks, samples)
    "full": {"W1": (5, 100_000), "W2": (8, 0), "W3": (60, 1_000_000)},
    "smoke": {"W1": (3, 600), "W2": (4, 0), "W3": (6, 1_200)},
}
_TABLES = """
W1 caller µs / log call (mean)                   | caller_us        | evalstream ≤ 5
W1 caller µs / log call (p99)                    | caller_p99_us    |
W1 caller longest call, ms                       | caller_max_ms    |
W1 outside log calls, µs / sample (inputs, GC)   | inputs_us        |
W1 log phase, s                                  | log_s            |
W1 save (lighteval: + aggregate), s              | save_s           |
W1 first sample → save() done, s                 | e2e_s            | ratio ≥ 10
W1 peak RSS growth, MB                           | peak_growth_mb   | ratio ≥ 10
W1 of which the details workers' growth, MB      | children_growth_mb |
W1 details workers' RSS at start (setup), MB     | children_base_mb |
W1 peak RSS, this process + workers, MB          | peak_mb          |
W1 gen-2 GC passes                               | gc.n             |
W1 gen-2 GC longest pause, ms                    | gc.max_ms        |
W1 output, MB                                    | output_mb        |
W2 samples logged                                | samples          |
W2 samples/s while logging                       | samples_per_s    |
W2 lag while logging p50, ms                     | lag_log.p50      |
W2 lag while logging p99, ms                     | lag_log.p99      | ≤ 2
W2 lag while logging max, ms                     | lag_log.max      | ≤ 20
W2 lag during save p50, ms                       | lag_save.p50     |
W2 lag during save p99, ms                       | lag_save.p99     | ≤ 2
W2 lag during save max, ms                       | lag_save.max     | ≤ 20
W2 save, s                                       | save_s           |
W2 gen-2 GC passes                               | gc.n             |
W2 gen-2 GC longest pause, ms                    | gc.max_ms        |
W2 peak RSS growth, MB                           | peak_growth_mb   |
W3 samples                                       | samples          |
W3 samples/s, log phase incl. building inputs    | samples_per_s    | ≥ 100,000
W3 samples/s, time inside log calls only         | caller_rate      | ≥ 100,000
W3 caller µs / log call (mean)                   | caller_us        |
W3 save, s                                       | save_s           |
W3 first sample → save() done, s                 | e2e_s            |
W3 RSS after imports, MB                         | rss_base_mb      |
W3 RSS at 100k samples, MB                       | rss_first        | flat
W3 RSS at end of logging, MB                     | rss_end          | flat
W3 peak RSS, MB                                  | peak_mb          | ≤ 250
W3 peak RSS growth, MB                           | peak_growth_mb   |
W3 of which the details workers' growth, MB      | children_growth_mb |
W3 details workers' RSS at start (setup), MB     | children_base_mb |
W3 gen-2 GC longest pause, ms                    | gc.max_ms        |
"""
ROWS: dict[str, list[tuple[str, str, str]]] = {}
for _line in _TABLES.strip().splitlines():  # workload label | key path in a run's dict | target
    _label, _key, _target = (part.strip() for part in _line[3:].split("|"))
    ROWS.setdefault(_line[:2], []).append((_label, _key, _target))


def params(args: argparse.Namespace, wl: str, side: str, out: Path) -> dict[str, Any]:
    """What one worker run measures."""
    tasks, samples = SIZES["smoke" if args.smoke else "full"][wl]
    if wl == "W3" and side == "lighteval" and not args.smoke:
        samples = args.w3_lighteval_samples
    seconds = (
        args.w2_seconds if side == "evalstream" else min(args.w2_seconds, args.w2_lighteval_seconds)
    )
    return {
        "workload": wl,
        "tasks": tasks,
        "samples": samples,
        "out": str(out),
        "producers": 64,
        "seconds": 0.25 if args.smoke else seconds,
        "batch_size": args.batch_size,
        "input_tokens": args.input_tokens,
        "shape": args.shape,
        "marks": [m for m in MARKS if m <= samples] or [samples],
        "gc_freeze": args.gc_freeze,
        "details_workers": args.details_workers,
        "details_nice": args.details_nice,
        "details_layout": args.details_layout,
    }


def run_worker(cmd: list[str], timeout: float, retries: int) -> dict[str, Any] | None:
    """Run one measurement; retry a crashed run (src may be mid-edit by another engineer)."""
    env = {
        **os.environ,
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TQDM_DISABLE": "1",
    }
    for attempt in range(retries + 1):
        try:
            proc = subprocess.run(
                cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired:
            print(f"  timed out after {timeout:.0f} s", file=sys.stderr)
            return None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                return result
        print(f"  run failed (exit {proc.returncode}):\n{proc.stderr[-1500:]}", file=sys.stderr)
        if attempt < retries:
            time.sleep(20)  # noqa: TID251 - back-off before retrying a crashed subprocess
    return None


def _get(run: dict[str, Any], path: str) -> float:
    value: Any = run
    for part in path.split("."):
        value = value[part]
    return float(value)


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def table(wl: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    """One workload's markdown table: median (min-max) per side, ratio lighteval / evalstream."""
    lines = [
        "| metric | evalstream | lighteval | lighteval / evalstream | target |",
        "|---|---|---|---|---|",
    ]
    for label, path, target in ROWS[wl]:
        cells, medians = [], []
        for side in ("evalstream", "lighteval"):
            vals = [_get(r, path) for r in runs.get(side, [])]
            medians.append(statistics.median(vals) if vals else math.nan)
            spread = f" ({_fmt(min(vals))}-{_fmt(max(vals))})" if len(vals) > 1 else ""
            cells.append(_fmt(medians[-1]) + spread if vals else "-")
        ratio = medians[1] / medians[0] if medians[0] else math.nan
        shown = "-" if math.isnan(ratio) else f"{_fmt(ratio)}x"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {shown} | {target} |")
    return "\n".join(lines)


def consistency(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Same work, same outputs: rows match samples; acc and hash_examples match across sides."""
    problems = [
        f"{side}: {r['rows']} parquet rows for {r['samples']} samples"
        for side, rs in runs.items()
        for r in rs
        if r["rows"] != r["samples"]
    ]
    es, le = runs.get("evalstream"), runs.get("lighteval")
    if es and le and es[0]["samples"] == le[0]["samples"]:
        for task, (acc, hx) in le[0]["check"].items():
            mine = es[0]["check"].get(task)
            if mine is None or abs(mine[0] - acc) > 1e-12 or mine[1] != hx:
                problems.append(f"{task}: lighteval acc/hash {acc}/{hx}, evalstream {mine}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--workload", choices=["W1", "W2", "W3", "all"], default="all")
    add("--repeat", type=int, default=3, help="runs per side, alternating (W3: --w3-repeat)")
    add("--w3-repeat", type=int, default=1)
    add("--smoke", action="store_true", help="tiny sizes, one run, for CI")
    add("--json", type=Path, help="save every run's raw numbers here")
    add("--w2-seconds", type=float, default=10.0)
    add(
        "--w2-lighteval-seconds",
        type=float,
        default=2.0,
        help="lighteval's W2 window (shorter: its save grows)",
    )
    add(
        "--w3-lighteval-samples",
        type=int,
        default=100_000,
        help="lighteval's W3 size (1M takes ~5 min and GBs)",
    )
    add("--batch-size", type=int, default=256, help="evalstream's batch_size")
    add("--details-workers", type=int, default=0, help="evalstream's worker processes (0: default)")
    add("--details-nice", type=int, default=None, help="Runtime(details_nice=...) (default: 10)")
    add(
        "--input-tokens",
        choices=["first", "each"],
        default="first",
        help="evalstream: the 40 input tokens on the first of the 4 responses (lighteval's content) or on each",
    )
    add(
        "--shape",
        choices=["seed", "v013"],
        default="seed",
        help="evalstream's responses: the older API's four, one per choice (default), or one"
        " lighteval 0.13 ModelResponse with the same content, the object lighteval's side logs",
    )
    add(
        "--details-layout",
        choices=["flat", "lighteval"],
        default="flat",
        help="evalstream's details_layout (lighteval always writes its own)",
    )
    add("--no-lighteval", action="store_true")
    add(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after setup in each side's process (measures the GC's share of lag)",
    )
    add(
        "--lighteval-python",
        type=Path,
        help="interpreter that imports lighteval (default: this one, if it can)",
    )
    add("--timeout", type=float, default=900.0, help="per run, seconds")
    add("--retries", type=int, default=2, help="re-runs of a crashed run")
    add("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import anyio

        emit(anyio.run(evalstream_run, json.loads(args.worker)))
        return 0

    le_python = (
        None
        if args.no_lighteval
        else args.lighteval_python
        or (sys.executable if importlib.util.find_spec("lighteval") else None)
    )
    sides = ["evalstream", *(["lighteval"] if le_python else [])]
    workloads = ["W1", "W2", "W3"] if args.workload == "all" else [args.workload]
    load = os.getloadavg()
    commit = subprocess.run(
        ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    versions: dict[str, str] = {}
    for dist_name in ("evalstream", "lighteval"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist_name] = importlib.metadata.version(dist_name)
    print(
        f"# evalstream vs lighteval, {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load[0]:.2f} at start\n"
        f"evalstream {versions.get('evalstream')} at {commit or '?'}, "
        f"lighteval {versions.get('lighteval') if le_python else 'not run'}"
    )
    report: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_start": load,
            "commit": commit,
            "versions": versions,
        },
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    failed = False
    for wl in workloads:
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
        repeat = 1 if args.smoke else args.w3_repeat if wl == "W3" else args.repeat
        for rep in range(repeat):
            for side in sides if rep % 2 == 0 else sides[::-1]:  # alternate who goes first
                if args.smoke and side == "lighteval" and wl != "W1":
                    continue  # lighteval's import alone takes ~8 s
                out = Path(tempfile.mkdtemp(prefix=f"bench-{wl}-{side}-"))
                p = json.dumps(params(args, wl, side, out))
                cmd = (
                    [sys.executable, __file__, "--worker", p]
                    if side == "evalstream"
                    else [str(le_python), str(HERE / "bench_lighteval_worker.py"), p]
                )
                print(f"  {wl} run {rep + 1}/{repeat}: {side}", file=sys.stderr, flush=True)
                result = run_worker(cmd, args.timeout, args.retries)
                shutil.rmtree(out, ignore_errors=True)
                failed |= result is None
                runs[side] += [result] if result is not None else []
        print(f"\n## {wl}\n\n{table(wl, runs)}")
        for problem in consistency(runs):
            print(f"- CHECK FAILED: {problem}")
            failed = True
        report[wl] = runs
    report["machine"]["load_end"] = os.getloadavg()
    print(
        f"\nmedian (min-max) over runs; load average {report['machine']['load_end'][0]:.2f} at end"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
