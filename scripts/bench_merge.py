"""Merge benchmark: N samples in S shards (default 1M in 16) merged into one run, twice the size.

The shards are written straight in the shard layout (the real message encoder, frames, chunk
objects and manifests, a chunk per 4096 samples), so the timing is the merge's alone. Each merge
runs in a fresh process, which reports its wall time and its peak resident memory (ru_maxrss),
and that of the details worker processes it started (RUSAGE_CHILDREN). It runs at N/4 and at N
samples: memory that does not grow with the sample count shows as the same peak, up to the
arrays every run keeps (8 bytes per sample and metric, plus 8 per sample for duplicate keys in
the merge and 32 for the hashes in the details worker).

    .venv/bin/python scripts/bench_merge.py [--samples 1000000] [--shards 16] [--tasks 8]
    .venv/bin/python scripts/bench_merge.py --smoke      # 8,000 samples in 4 shards
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from evalstream import Doc, ModelInfo, ModelResponse, TaskSpec
from evalstream._messages import (
    ENCODER,
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    SampleBatch,
    ScoredSample,
    TasksDeclared,
)
from evalstream.durability.frames import frame
from evalstream.durability.runstate import RunSettings
from evalstream.shards.info import ShardInfo
from evalstream.shards.manifest import ShardManifest
from evalstream.shards.objects import MANIFEST, chunk_name

MB = 1 << 20
CHUNK_SAMPLES = 4096
MERGE = """
import json, resource, sys, time, anyio
from evalstream import merge
t = time.perf_counter()
r = anyio.run(lambda: merge(sys.argv[1], sys.argv[2]))
print(json.dumps({
    "seconds": time.perf_counter() - t,
    "samples": sum(r.result.samples.values()),
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "workers_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    "ok": r.result.ok,
}))
"""


def sample(task: str, i: int) -> ScoredSample:
    """A multiple-choice sample: prompt, four choices, one loglik each, two metrics."""
    doc = Doc(
        query=f"{task} question {i}: which of the following is true?",
        choices=[" A", " B", " C", " D"],
        gold_index=i % 4,
        ctx=f"The following are questions.\n\n{task} question {i}\nAnswer:",
        id=str(i),
    )
    outputs = tuple(
        ModelResponse(result=[-(1 + (i * 7 + c) % 13) / 3], input_tokens=[i % 997, c, 7])
        for c in range(4)
    )
    metrics = {"acc": float(i % 3 == 0), "loss": ((i * 2654435761) % 1000) / 250.0}
    return ScoredSample(task_name=task, doc=doc, outputs=outputs, metrics=metrics)


class Chunks:
    """Numbered chunk files of one attempt's journal."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0

    def cut(self, frames: list[bytes]) -> None:
        """Write ``frames`` as the next chunk."""
        path = self.folder / chunk_name(self.n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(frames))
        self.n += 1


def write_shards(out: Path, run: str, samples: int, shards: int, tasks: list[TaskSpec]) -> None:
    """``samples`` samples over ``tasks`` in ``shards`` complete shard attempts under ``out``."""
    per_task = samples // len(tasks)
    settings = RunSettings(output_dir=str(out))
    for k in range(shards):
        info = ShardInfo(run=run, index=k, count=shards)
        manifest = ShardManifest(
            run=run, index=k, count=shards, attempt=f"bench-{k}", state="running", host="bench",
            pid=0, start_time=time.time(), updated=time.time(), settings=settings,
        )  # fmt: skip
        folder = out / manifest.prefix
        head = [
            ArgsInfo(job_id=str(k)),
            ModelInfoLogged(info=ModelInfo(model_name="bench/model")),
            TasksDeclared(tasks=tuple(tasks)),
        ]
        frames = [frame(ENCODER.encode(m)) for m in head]
        chunks = Chunks(folder)
        lo, hi = k * per_task // shards, (k + 1) * per_task // shards
        batch: list[ScoredSample] = []
        done = 0
        for i in range(lo, hi):
            for task in tasks:
                batch.append(sample(task.name, i))
                if len(batch) == 256:
                    frames.append(frame(ENCODER.encode(SampleBatch(samples=tuple(batch)))))
                    batch.clear()
                    done += 256
                    if done % CHUNK_SAMPLES == 0:
                        chunks.cut(frames)
                        frames = []
        if batch:
            frames.append(frame(ENCODER.encode(SampleBatch(samples=tuple(batch)))))
        tail = [NumDocs(task_name=t.name, original_num_docs=per_task, effective_num_docs=hi - lo)
                for t in tasks] + [EndOfRun(end_time=time.time())]  # fmt: skip
        frames.extend(frame(ENCODER.encode(m)) for m in tail)
        chunks.cut(frames)
        complete = msgspec.structs.replace(manifest, state="complete", chunks=chunks.n)
        (folder / MANIFEST).write_bytes(msgspec.json.encode(complete))
        assert info.folder in manifest.prefix


def merge_once(out: Path, run: str) -> dict[str, float]:
    """One merge in a fresh process: its wall time and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", MERGE, str(out), run], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--out", default=None, help="a folder to use (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="8,000 samples in 4 shards")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.shards = 8_000, 4
    tasks = [TaskSpec(name=f"bench|t{t}|0", categories=["multichoice"]) for t in range(args.tasks)]
    root = Path(args.out or tempfile.mkdtemp(prefix="evalstream-bench-merge-"))
    print("| samples | shards | write shards s | merge s | merged samples/s "
          "| peak RSS merge MiB | peak RSS details worker MiB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for n in (args.samples // 4, args.samples):
            out = root / f"n{n}"
            started = time.perf_counter()
            write_shards(out, "bench", n, args.shards, tasks)
            written = time.perf_counter() - started
            r = merge_once(out, "bench")
            assert r["ok"] and int(r["samples"]) == n // args.tasks * args.tasks, r
            print(
                f"| {n:,} | {args.shards} | {written:.1f} | {r['seconds']:.1f} "
                f"| {r['samples'] / r['seconds']:,.0f} | {r['rss'] / MB:.0f} "
                f"| {r['workers_rss'] / MB:.0f} |",
                flush=True,
            )
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
