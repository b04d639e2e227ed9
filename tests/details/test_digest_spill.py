"""A task's per-sample digests spill to a file chunk by chunk and read back exactly.

W3's million samples held 32 MB of digests in the details worker; full chunks now go to a file
beside the task's segment. The column must give back every value in order, keep what it could
not write, and the worker's hashes must stay lighteval's.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._messages import ENCODER, SampleBatch, ScoredSample
from evalstream._types import Doc, ModelResponse
from evalstream.details.worker import Worker
from evalstream.stats.hashing import GrowableU64, compile_hashes, sample_hashes

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

_DIGEST = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_DIGEST, max_size=9), max_size=12), st.sampled_from([1, 3, 8]))
def test_a_spilled_column_gives_back_every_value_in_order(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], chunk: int
) -> None:
    spill = tmp_path_factory.mktemp("spill") / "t.h0"
    column = GrowableU64(chunk, spill)
    expected: list[int] = []
    for batch in batches:
        column.extend(batch)
        expected.extend(batch)
        # every full chunk is on disk, at most one part-filled chunk in memory
        assert (spill.stat().st_size if spill.exists() else 0) == len(expected) // chunk * chunk * 8
    assert len(column) == len(expected)
    assert column.values.tolist() == expected
    assert str(column.values.dtype) == "uint64"


def test_a_chunk_that_cannot_be_written_stays_in_memory(tmp_path: Path) -> None:
    """The spill's folder is a file for a while: nothing is lost, and the chunks kept meanwhile
    are written, in order, with the first full chunk after the way is clear."""
    blocker = tmp_path / "segments"
    blocker.write_bytes(b"in the way")
    column = GrowableU64(4, blocker / "t.h0")
    column.extend(range(10))
    assert column.values.tolist() == list(range(10))
    blocker.unlink()
    column.extend(range(10, 13))
    assert (blocker / "t.h0").stat().st_size == 12 * 8
    assert column.values.tolist() == list(range(13))


def _sample(task: str, i: int) -> ScoredSample:
    rng = random.Random(i)
    doc = Doc(query=f"q{i}", ctx=f"ctx {i}", choices=["A", "B"], gold_index=i % 2)
    outs = tuple(
        ModelResponse(
            result=[-rng.random()], input_tokens=[i, k], generated_tokens=[rng.randrange(99)]
        )
        for k in range(2)
    )
    return ScoredSample(task_name=task, doc=doc, outputs=outs, metrics={"acc": i % 2})


def test_the_worker_s_hashes_over_spilled_digests_are_lighteval_s(tmp_path: Path) -> None:
    """9,000 samples: two full 4,096-value chunks per column spilled, the rest in memory."""
    worker = Worker(tmp_path / "work", keep_rows=False)
    samples = [_sample("t|0", i) for i in range(9000)]
    for start in range(0, len(samples), 256):
        worker.guarded(ENCODER.encode(SampleBatch(samples=tuple(samples[start : start + 256]))))
    worker.sync()
    state = worker.state(1)
    assert state.error is None
    spills = sorted((tmp_path / "work" / "segments").glob("*.h[0-3]"))
    assert [p.stat().st_size for p in spills] == [2 * 4096 * 8] * 4
    per_sample = [sample_hashes(s.doc, s.outputs) for s in samples]
    columns = [[row[k] for row in per_sample] for k in range(4)]
    expected = compile_hashes([np.array(c, dtype=np.uint64) for c in columns])
    assert state.tasks["t|0"].summary["hashes"] == expected
    worker.close()


def test_lost_digests_are_the_run_s_error_not_the_worker_s(tmp_path: Path) -> None:
    """A spill file deleted under the run: the answer says so (the worker serves other runs)."""
    worker = Worker(tmp_path / "work", keep_rows=False)
    for start in range(0, 4352, 256):
        batch = tuple(_sample("t|0", i) for i in range(start, start + 256))
        worker.guarded(ENCODER.encode(SampleBatch(samples=batch)))
    for spill in (tmp_path / "work" / "segments").glob("*.h[0-3]"):
        spill.unlink()
    state = worker.state(1)
    assert state.error is not None and "digests of 't|0'" in state.error
    assert worker.broken
    worker.close()


def test_a_task_without_new_samples_is_not_compiled_again(tmp_path: Path) -> None:
    """Every answer carries the tasks' hashes (each flush, not only the end): a task that got
    no sample since the last answer keeps its compiled hashes (its spill files are not read
    again), and one that did is compiled anew."""
    worker = Worker(tmp_path / "work", keep_rows=False)

    def log(start: int, stop: int) -> None:
        for first in range(start, stop, 256):
            batch = tuple(_sample("t|0", i) for i in range(first, min(stop, first + 256)))
            worker.guarded(ENCODER.encode(SampleBatch(samples=batch)))

    log(0, 4352)
    first = worker.state(1)
    assert first.error is None
    for spill in (tmp_path / "work" / "segments").glob("*.h[0-3]"):
        spill.unlink()  # read again, they would fail the answer
    again = worker.state(2)
    assert again.error is None
    assert again.tasks["t|0"].summary == first.tasks["t|0"].summary
    log(4352, 4608)
    assert "digests of 't|0'" in str(worker.state(3).error)
    worker.close()
