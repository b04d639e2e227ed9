"""Crash injection: a child that logs and promises, a parent that kills it and checks the promise.

``python tests/crash_child.py OUTPUT_DIR SEED`` runs a tracker in which ``PRODUCERS`` concurrent
tasks log ``PER_PRODUCER`` samples each, producer ``p`` logging doc ``f"{p}-{i}"`` for
``i = 0, 1, ...`` in order. Every sample's task, doc, outputs and metrics are a pure function of
``(p, i)``, so the parent can rebuild any row. The child prints, one line each, flushed:

- ``WORKDIR <path>`` once the run is set up (its model and tasks are durable);
- ``LOGGED <n>`` every 16 samples (a clock the parent kills by);
- ``DURABLE <n0>,<n1>,...``: after ``await tracker.flush()`` returned, the number of samples
  each producer had logged (``log_sample`` returned) before that flush began; with
  ``durable=True`` no flush is needed: every returned ``log_sample`` is durable;
- ``SAVING`` and ``SAVED`` around ``save()``.

Producer ``p``'s samples reach the journal in the order it logged them, so a DURABLE line
promises exactly the set ``{(p, i) | i < n_p}``. ``kill_and_recover`` (the parent) SIGKILLs
the child after a random number of lines, recovers the run and checks: every promised sample is
in the details parquet and in the metrics, each producer's recovered samples are a prefix (no
hole), no sample twice, every row equal to the one logged, and the partial results section
consistent with the parquet. Only evalstream is imported at the child's start.
"""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

PRODUCERS = 16
PER_PRODUCER = 160
TASK_NAMES = [f"crash|t{k}|0" for k in range(6)]
MODEL = "crash/model"


@dataclass(frozen=True)
class ChildConfig:
    """How the child of one seed runs: durability mode, batch size and journal sizes."""

    durable: bool
    batch_size: int
    segment_bytes: int
    flush_every: int


def config_of(seed: int) -> ChildConfig:
    """The child's configuration for ``seed`` (every fourth seed runs with ``durable=True``)."""
    rng = random.Random(seed)
    return ChildConfig(
        durable=seed % 4 == 1,
        batch_size=rng.choice([1, 8, 64, 256]),
        segment_bytes=rng.choice([16 << 10, 256 << 10, 64 << 20]),
        flush_every=rng.choice([64, 4096]),
    )


def task_of(p: int, i: int) -> str:
    """The task of producer ``p``'s ``i``-th sample."""
    return TASK_NAMES[(p * 5 + i) % len(TASK_NAMES)]


def planned() -> dict[str, int]:
    """How many samples each task gets when no producer is killed."""
    counts = dict.fromkeys(TASK_NAMES, 0)
    for p in range(PRODUCERS):
        for i in range(PER_PRODUCER):
            counts[task_of(p, i)] += 1
    return counts


def metrics_of(p: int, i: int) -> dict[str, float]:
    """The metric values of sample ``(p, i)``."""
    return {"acc": float((p * 7 + i) % 3 == 0), "score": ((p * 31 + i * 17) % 101) / 100}


def sample_of(p: int, i: int) -> tuple[Doc, list[ModelResponse], dict[str, float]]:
    """The doc, outputs and metrics of sample ``(p, i)``; the doc's query is its key."""
    key = f"{p}-{i}"
    doc = Doc(
        query=key,
        choices=["A", "B", "C", "D"],
        gold_index=(p + i) % 4,
        ctx=f"context of {key}\n" + "x" * ((p * 13 + i * 7) % 200),
        instruction="Answer.",
        id=key,
    )
    outputs = [
        ModelResponse(
            result=[f"answer {key}"],
            input_tokens=[p, i, (p * i) % 1000],
            generated_tokens=[i % 50, p],
        )
    ]
    return doc, outputs, metrics_of(p, i)


def expected_row(p: int, i: int) -> dict[str, Any]:
    """The details columns that sample ``(p, i)`` must have in the parquet."""
    doc, outputs, metrics = sample_of(p, i)
    return {
        "example": doc.query,
        "full_prompt": doc.ctx,
        "gold": doc.golds(),
        "predictions": [f"answer {p}-{i}"],
        "input_tokens": [outputs[0].input_tokens],
        "cont_tokens": [outputs[0].generated_tokens],
        "metrics": metrics,
    }


# -- the child ------------------------------------------------------------------------------


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def child(output_dir: str, seed: int) -> None:
    """Log every producer's samples, printing what is durable, then save."""
    config = config_of(seed)
    rng = random.Random(seed + 1)
    tracker = EvaluationTracker(
        output_dir,
        bootstrap_iters=0,
        batch_size=config.batch_size,
        flush_every=config.flush_every,
        durable=config.durable,
    )
    tracker.journal.segment_bytes = config.segment_bytes
    done = [0] * PRODUCERS
    total = 0
    finished = False
    progress = anyio.Event()

    async def producer(p: int) -> None:
        nonlocal total, progress
        for i in range(PER_PRODUCER):
            doc, outputs, metrics = sample_of(p, i)
            await tracker.log_sample(task_of(p, i), doc, outputs, metrics)
            done[p] += 1
            total += 1
            if total % 16 == 0:
                _say(f"LOGGED {total}")
            progress.set()
            progress = anyio.Event()
            await anyio.lowlevel.checkpoint()  # a real harness awaits its model here

    async def flusher() -> None:
        while not finished:
            target = total + rng.randint(1, 200)
            while total < target and not finished:
                await progress.wait()
            snapshot = list(done)
            if not config.durable:
                await tracker.flush()
            _say("DURABLE " + ",".join(map(str, snapshot)))

    async with tracker:
        await tracker.log_model_info(ModelInfo(model_name=MODEL))
        await tracker.log_tasks([TaskSpec(name=t, categories=["generative"]) for t in TASK_NAMES])
        for task, n in planned().items():
            await tracker.log_num_docs(task, n, n)
        await tracker.flush()
        _say(f"WORKDIR {tracker.workdir}")
        async with anyio.create_task_group() as tg:
            tg.start_soon(flusher)
            async with anyio.create_task_group() as producers:
                for p in range(PRODUCERS):
                    producers.start_soon(producer, p)
            finished = True
            progress.set()
        _say("SAVING")
        await tracker.save()
    _say("SAVED")


# -- the parent -----------------------------------------------------------------------------


@dataclass
class CrashOutcome:
    """What one kill and recovery found."""

    seed: int
    killed: bool = False
    last_line: str = ""
    promised: int = 0
    recovered: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)


async def kill_and_recover(root: Path, seed: int) -> CrashOutcome:
    """Run the child of ``seed`` under ``root``, SIGKILL it at a random line, recover, check."""
    from anyio.streams.buffered import BufferedByteReceiveStream

    from evalstream.durability.runstate import read_status
    from evalstream.run.recover import recover

    rng = random.Random(seed * 7919 + 17)
    kill_on_saving = rng.random() < 0.1
    kill_at = rng.randint(2, 1 + PRODUCERS * PER_PRODUCER // 16)  # WORKDIR + LOGGED lines
    out = root / f"run-{seed}"
    out.mkdir(parents=True)
    outcome = CrashOutcome(seed)
    lines: list[str] = []
    with (out / "child.err").open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, __file__, str(out), str(seed)], stdout=subprocess.PIPE, stderr=err
        )
        async with process:
            assert process.stdout is not None
            reader = BufferedByteReceiveStream(process.stdout)
            while True:
                try:
                    line = (await reader.receive_until(b"\n", 1 << 20)).decode()
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    break
                lines.append(line)
                due = line == "SAVING" if kill_on_saving else len(lines) >= kill_at
                if due and not outcome.killed and line != "SAVED":
                    process.kill()
                    outcome.killed = True
            code = await process.wait()
    if code not in (0, -signal.SIGKILL):
        raise RuntimeError(f"child {seed} failed ({code}): {(out / 'child.err').read_text()}")
    outcome.last_line = lines[-1] if lines else ""
    workdir = Path(lines[0].removeprefix("WORKDIR "))
    status = read_status(workdir)
    if "SAVED" in lines or (status is not None and status.state == "saved"):
        outcome.killed = False  # it finished before the kill landed: nothing to recover
        return outcome
    promised = [0] * PRODUCERS
    for line in lines:
        if line.startswith("DURABLE "):
            promised = [int(n) for n in line.removeprefix("DURABLE ").split(",")]
    outcome.promised = sum(promised)
    result = await recover(workdir)
    check_recovered(result, promised, outcome)
    return outcome


def check_recovered(result: Any, promised: list[int], outcome: CrashOutcome) -> None:
    """Compare a recovered run with the promise; record every violation in ``outcome``."""
    import pyarrow.parquet as pq

    problems = outcome.problems
    final = json.loads(Path(result.results_path).read_text())
    section = final["evalstream"]
    if section["partial"] is not True:
        problems.append("the recovered results are not marked partial")
    got: dict[int, set[int]] = {p: set() for p in range(PRODUCERS)}
    expected_docs = planned()
    for task in TASK_NAMES:
        path = result.details_paths.get(task)
        rows = pq.read_table(path).to_pylist() if path else []
        declared = section["tasks"].get(task, {})
        if declared.get("samples") != len(rows):
            problems.append(f"{task}: {len(rows)} parquet rows, section says {declared}")
        complete = len(rows) == expected_docs[task]
        if (task in section["incomplete_tasks"]) == complete:
            problems.append(f"{task}: incomplete_tasks wrong for {len(rows)} rows")
        sums = {"acc": 0.0, "score": 0.0}
        for row in rows:
            p, i = map(int, row["example"].split("-"))
            if task_of(p, i) != task:
                problems.append(f"{row['example']} is in {task}, not {task_of(p, i)}")
            if i in got[p]:
                problems.append(f"{row['example']} recovered twice")
            got[p].add(i)
            want = expected_row(p, i)
            if {k: row[k] for k in want} != want:
                problems.append(f"{row['example']}: row differs from the logged sample")
            for metric, value in metrics_of(p, i).items():
                sums[metric] += value
        scores = final["results"].get(task, {})
        for metric, total in sums.items():
            if rows and not math.isclose(scores.get(metric, math.nan), total / len(rows)):
                problems.append(f"{task}: {metric} {scores.get(metric)} != {total / len(rows)}")
        if result.samples.get(task, 0) != len(rows):
            problems.append(f"{task}: metrics counted {result.samples.get(task)} samples")
    for p, indices in got.items():
        if indices != set(range(len(indices))):
            problems.append(f"producer {p}: recovered samples are not a prefix")
        outcome.lost += max(0, promised[p] - len(indices))
    outcome.recovered = sum(len(v) for v in got.values())
    if outcome.lost:
        problems.append(f"{outcome.lost} promised samples lost")


if __name__ == "__main__":
    anyio.run(child, sys.argv[1], int(sys.argv[2]))
