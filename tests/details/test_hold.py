"""A details worker holds decoded samples across batches and ingests them task by task: fewer,
larger groups (one segment frame, one live batch per task and window), and nothing held is
lost to a flush, the end of a run or a rebuild from the journal."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import pyarrow.parquet as pq

from evalstream._messages import ENCODER, SampleBatch, ScoredSample
from evalstream._types import Doc, ModelResponse
from evalstream.details.protocol import Output
from evalstream.details.rows import read_rows
from evalstream.details.worker import GROUP_ROWS, LIVE_IDLE, Worker, rebuild_details
from evalstream.durability.frames import frame, read_frames

if TYPE_CHECKING:
    from pathlib import Path


def _sample(task: str, i: int) -> ScoredSample:
    doc = Doc(query=f"q{i}", ctx=f"ctx q{i}", choices=[" A", " B"], gold_index=i % 2)
    outs = (ModelResponse(result=[-0.5], input_tokens=[i, 1], generated_tokens=[i]),)
    return ScoredSample(task_name=task, doc=doc, outputs=outs, metrics={"acc": float(i % 2)})


def _interleaved(batches: int, per_batch: int) -> list[bytes]:
    """Batches whose samples alternate between two tasks, as concurrent producers log them."""
    out = []
    for b in range(batches):
        samples = [_sample(("a|0", "b|0")[i % 2], b * per_batch + i) for i in range(per_batch)]
        out.append(ENCODER.encode(SampleBatch(samples=tuple(samples))))
    return out


def test_interleaved_tasks_are_ingested_once_per_window(tmp_path: Path) -> None:
    worker = Worker(tmp_path / "work", keep_rows=True)
    worker.hold_rows = 8
    for body in _interleaved(4, 4):
        worker.guarded(body)
    worker.sync()
    worker.close()
    for name in ("a|0", "b|0"):
        segment = worker.tasks[name].segment
        assert len(list(read_frames(segment))) == 2  # two windows of 8, not one frame a batch
        assert [r["example"] for r in read_rows(segment)] == [
            f"q{i}" for i in range(16) if ("a|0", "b|0")[i % 2] == name
        ]


def test_a_flush_ingests_what_is_held(tmp_path: Path) -> None:
    worker = Worker(tmp_path / "work", keep_rows=True)
    for body in _interleaved(3, 4):
        worker.guarded(body)
    assert worker.held_rows == 12 and not worker.tasks  # under the bound: all held
    worker.sync()
    state = worker.state(1)
    assert {n: t.samples for n, t in state.tasks.items()} == {"a|0": 6, "b|0": 6}
    assert all(t.pending_rows == 0 for t in state.tasks.values())
    assert worker.held_rows == 0 and not worker.held
    worker.close()
    worker.drop_live()


def test_the_end_of_a_run_writes_every_held_sample(tmp_path: Path) -> None:
    worker = Worker(tmp_path / "work", keep_rows=True)
    for body in _interleaved(3, 4):
        worker.guarded(body)
    state = worker.end(1, Output(root=str(tmp_path / "out"), model_name="org/m", date_id="d"))
    assert state.written is not None and state.written.error is None
    rows = {
        name: pq.read_table(tmp_path / "out" / rel).num_rows
        for name, rel in state.written.paths.items()
    }
    assert rows == {"a|0": 6, "b|0": 6}


def test_a_rebuild_from_the_journal_writes_every_held_sample(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "000000.wal").write_bytes(b"".join(frame(b) for b in _interleaved(3, 4)))
    written = rebuild_details(
        journal, tmp_path / "work", Output(root=str(tmp_path / "out"), model_name="m", date_id="d")
    )
    assert written.error is None
    rows = {n: pq.read_table(tmp_path / "out" / rel).num_rows for n, rel in written.paths.items()}
    assert rows == {"a|0": 6, "b|0": 6}


def test_a_dropped_run_forgets_what_is_held(tmp_path: Path) -> None:
    worker = Worker(tmp_path / "work", keep_rows=True)
    for body in _interleaved(2, 4):
        worker.guarded(body)
    worker.drop_live()
    worker.sync()
    assert not worker.tasks  # nothing held was ingested after the drop


def test_a_task_with_a_full_group_is_not_held(tmp_path: Path) -> None:
    """A batch of one task (lighteval's order, W1) goes straight through, and takes what is
    held with it: a finished task's tail is not held behind the next task's batches."""
    worker = Worker(tmp_path / "work", keep_rows=True)
    worker.hold_rows = 1000
    worker.guarded(ENCODER.encode(SampleBatch(samples=(_sample("a|0", 0),))))
    assert worker.held_rows == 1 and not worker.tasks
    full = [_sample("b|0", i) for i in range(GROUP_ROWS)]
    worker.guarded(ENCODER.encode(SampleBatch(samples=tuple(full))))
    assert worker.held_rows == 0 and not worker.held
    assert {n: t.counters.samples for n, t in worker.tasks.items()} == {"a|0": 1, "b|0": 256}
    worker.close()
    worker.drop_live()


def test_a_batch_of_metrics_only_samples_holds_nothing(tmp_path: Path) -> None:
    """lighteval's metrics logger sends samples the details skip: nothing held, no error."""
    worker = Worker(tmp_path / "work", keep_rows=True)
    only = msgspec.structs.replace(_sample("a|0", 0), scope="metrics")
    worker.guarded(ENCODER.encode(SampleBatch(samples=(only,))))
    worker.sync()
    assert worker.error is None and not worker.broken
    assert not worker.held and not worker.tasks


def test_a_task_not_fed_for_a_while_closes_its_live_part(tmp_path: Path) -> None:
    """W3's sixty tasks one after another: a finished task's writer is closed, not kept open
    to the end of the run (up to ``LIVE_OPEN_FILES`` of them)."""
    worker = Worker(tmp_path / "work", keep_rows=True)
    worker.hold_rows = 0
    worker.guarded(ENCODER.encode(SampleBatch(samples=(_sample("a|0", 0),))))
    for i in range(LIVE_IDLE + 1):
        worker.guarded(ENCODER.encode(SampleBatch(samples=(_sample("b|0", i),))))
    live = {n: t.live for n, t in worker.tasks.items()}
    assert live["a|0"] is not None and live["b|0"] is not None
    a, b = live["a|0"], live["b|0"]
    assert (a.rows, a.group_rows, a.is_open) == (1, 0, False)  # written and closed
    assert (b.rows, b.group_rows) == (0, LIVE_IDLE + 1)  # still filling its group
    assert len(a.parts) == 1
    state = worker.end(1, Output(root=str(tmp_path / "out"), model_name="m", date_id="d"))
    assert state.written is not None and state.written.error is None
