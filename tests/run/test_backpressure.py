"""Bounded memory and back-pressure: a slow disk makes producers wait; nothing is dropped."""

from __future__ import annotations

import os
import random
import signal
from typing import TYPE_CHECKING

import anyio
import pyarrow.parquet as pq

from evalstream import EvaluationTracker, ModelInfo
from evalstream.details.rows import read_rows

from _workload import TASKS, sample

if TYPE_CHECKING:
    from pathlib import Path

TASK = TASKS[0]


async def test_slow_details_writer_makes_producers_wait(tmp_path: Path) -> None:
    """With the details worker stopped, its pipe and inbox fill and producers block, then drain."""
    rng = random.Random(1)
    samples = [sample(rng, TASK, i) for i in range(2000)]
    finished = anyio.Event()
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=4, inbox_capacity=2) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks([TASK])
            assert tracker._coordinator is not None
            pids = tracker._coordinator.details.pids
            assert pids
            for pid in pids:  # the "disk" stalls: the workers take nothing
                os.kill(pid, signal.SIGSTOP)

            async def producer() -> None:
                for doc, outputs, metrics in samples:
                    await tracker.log_sample(TASK.name, doc, outputs, metrics)
                finished.set()

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(producer)
                    await anyio.wait_all_tasks_blocked()
                    details = next(s for s in tracker.stats() if s.name == "details")
                    assert not finished.is_set(), "the producer must be waiting, not done"
                    assert details.inbox_depth == details.inbox_capacity == 2
                    assert tracker.samples_logged < len(samples)
                    for pid in pids:
                        os.kill(pid, signal.SIGCONT)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            assert finished.is_set()
            result = await tracker.save()
    table = pq.read_table(result.details_paths[TASK.name])
    assert sorted(table.column("example").to_pylist()) == sorted(d.query for d, _, _ in samples)


async def test_details_are_on_disk_before_save_and_buffers_are_capped(tmp_path: Path) -> None:
    """Rows reach the segment files during the run; at most one batch per task is in memory."""
    rng = random.Random(2)
    tasks = TASKS[:3]
    batch = 16
    with anyio.fail_after(60):
        async with EvaluationTracker(tmp_path, batch_size=batch, inbox_capacity=4) as tracker:
            await tracker.log_model_info(ModelInfo(model_name="org/m"))
            await tracker.log_tasks(tasks)
            for i in range(3000):
                task = tasks[i % 3]
                doc, outputs, metrics = sample(rng, task, i)
                await tracker.log_sample(task.name, doc, outputs, metrics)
                for stats in tracker.stats():
                    assert stats.inbox_depth <= 4
                    assert stats.buffered_rows <= batch
                if i % 1000 == 999:
                    await tracker.flush()
                    assert tracker._coordinator is not None
                    on_disk = sum(
                        len(read_rows(t.segment))
                        for t in tracker._coordinator.details.tasks().values()
                    )
                    assert on_disk == i + 1
            await tracker.save()
