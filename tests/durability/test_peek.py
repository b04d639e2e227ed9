"""Reading a live journal's counts again and again: each read decodes only what was appended."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.durability.peek import JournalTail, peek_journal

if TYPE_CHECKING:
    from pathlib import Path

TASKS = ["t|a|0", "t|b|0"]


async def test_a_tail_reads_only_new_frames_and_agrees_with_a_full_peek(tmp_path: Path) -> None:
    """After each flush the tail's counts equal a full peek's; a read with nothing new decodes
    nothing, and later reads decode fewer bytes than the journal holds."""
    async with EvaluationTracker(tmp_path, bootstrap_iters=0, batch_size=8) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/tail"))
        await tracker.log_tasks([TaskSpec(name=t) for t in TASKS])
        await tracker.log_num_docs(TASKS[0], 90, 90)
        tail = JournalTail(tracker.journal.folder)
        logged = 0
        for step in (10, 30, 50):
            for i in range(logged, logged + step):
                doc = Doc(query=f"q{i}", choices=["A"], gold_index=0, id=str(i))
                await tracker.log_sample(
                    TASKS[i % 2], doc, [ModelResponse(result=[0.0])], {"acc": 1.0}
                )
            logged += step
            await tracker.flush()
            got = tail.read()
            full = peek_journal(tracker.journal.folder)
            assert got.samples == full.samples and got.total_samples == logged
            assert (got.model_name, got.expected) == ("org/tail", {TASKS[0]: 90})
            if logged > 10:
                assert 0 < tail.decoded < full.bytes
            assert tail.read().total_samples == logged and tail.decoded == 0
        await tracker.save()
    assert tail.read().total_samples == logged  # the journal is gone: the counts stay
