"""One shard process: ``python tests/shard_child.py OUTPUT_DIR RUN INDEX COUNT PER_TASK``.

Logs shard INDEX of COUNT of the shared workload (``_shards.workload(PER_TASK)``), printing one
line each, flushed: ``RESUMED <n>`` at the start (samples a dead earlier attempt already holds,
skipped here), ``DURABLE <task>/<doc id>,...`` after every ``flush()`` returned (the samples
logged since the previous such line: the object store holds them now), then ``SAVED``. The
parent may SIGKILL it at any line and start it again: the new attempt resumes the dead one.
"""

from __future__ import annotations

import sys

import anyio

from evalstream import EvaluationTracker, ShardInfo

from _shards import log_counts, open_run, shard_items, workload

FLUSH_EVERY = 8


def say(line: str) -> None:
    """One line to the parent, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(out: str, run: str, index: int, count: int, per_task: int) -> None:
    work = workload(per_task)
    info = ShardInfo(run=run, index=index, count=count, upload_interval=0.2)
    async with EvaluationTracker(out, shard=info, batch_size=4) as tracker:
        done = tracker.logged_keys()
        say(f"RESUMED {len(done)}")
        if not done:
            await open_run(tracker, work, count)
        since: list[str] = []
        for task, doc, outputs, metrics in shard_items(work, index, count):
            if (task, doc.id) in done:
                continue
            await tracker.log_sample(task, doc, outputs, metrics)
            since.append(f"{task}/{doc.id}")
            if len(since) == FLUSH_EVERY:
                await tracker.flush()
                say(f"DURABLE {','.join(since)}")
                since = []
        await log_counts(tracker, work, index, count)
        await tracker.save()
    say("SAVED")


if __name__ == "__main__":
    out, run, index, count, per_task = sys.argv[1:6]
    anyio.run(main, out, run, int(index), int(count), int(per_task))
