"""A task whose live parquet file is kept writes no segment: its frames are the spool's replay.

Every test runs the same messages through two workers: one with the run's spool (frames only
replayed, from the forwarded batches, when a segment is read or a live file given up) and one
without it, which writes every frame as it is ingested (the worker before the spool). The frames
read back, the rows a mid-run ``details`` read sees, the segment files that do get written, the
parquet files' bytes and the hashes and counters must all be equal: abandoned after N batches,
kept, given up at the end, interleaved and held, with categories changed mid-run, both layouts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream._messages import ENCODER, SampleBatch, ScoredSample, TasksDeclared, TaskSpec
from evalstream._types import Doc, ModelResponse
from evalstream.details.protocol import Output
from evalstream.details.rows import read_rows, segment_frames
from evalstream.details.worker import Worker
from evalstream.durability.frames import read_frames

_TASKS = ("a|0", "b|0", "c|0")


def _sample(task: str, acc: Any, specific: dict[str, Any], tokens: list[int], v013: bool) -> Any:
    doc = Doc(
        query=f"q{len(tokens)}", ctx="ctx", choices=[" A", " B"], gold_index=1,
        specific=specific or None, images=[bytes(tokens[:2])] if len(tokens) % 3 == 1 else None,
    )  # fmt: skip
    if v013:
        outs: tuple[ModelResponse, ...] = (
            ModelResponse(text=["A"], input_tokens=tokens, output_tokens=[tokens[:1]]),
        )
    else:
        outs = tuple(
            ModelResponse(result=[-0.5 * k], input_tokens=tokens, generated_tokens=[k])
            for k in range(2)
        )
    return ScoredSample(task_name=task, doc=doc, outputs=outs, metrics={"acc": acc})


_SAMPLES = st.builds(
    _sample,
    st.sampled_from(_TASKS),
    st.one_of(st.floats(0, 1), st.integers(0, 1), st.just("x")),
    st.one_of(st.just({}), st.just({"k": "v"}), st.just({"k": 1})),
    st.lists(st.integers(0, 255), min_size=1, max_size=6),
    st.booleans(),
)
_STABLE = st.builds(_sample, st.sampled_from(_TASKS), st.floats(0, 1), st.just({"k": "v"}),
                    st.lists(st.integers(0, 255), min_size=1, max_size=6), st.just(False))  # fmt: skip
_CATEGORIES = st.sampled_from([[], ["multichoice"], ["generative_logprob"]])
_MESSAGES = st.lists(
    st.one_of(
        st.lists(_SAMPLES, min_size=1, max_size=6).map(
            lambda b: ENCODER.encode(SampleBatch(samples=tuple(b)))
        ),
        st.lists(_STABLE, min_size=1, max_size=6).map(
            lambda b: ENCODER.encode(SampleBatch(samples=tuple(b)))
        ),
        _CATEGORIES.map(
            lambda c: ENCODER.encode(
                TasksDeclared(tasks=tuple(TaskSpec(name=t, categories=c) for t in _TASKS))
            )
        ),
    ),
    min_size=1,
    max_size=8,
)


def _run(
    messages: list[bytes], root: Path, *, spool: bool, layout: str, hold: int, give_up: bool
) -> dict[str, Any]:
    """Feed ``messages`` (a mid-run flush and read halfway), end the run; what it wrote."""
    worker = Worker(root / "work", keep_rows=True, layout=layout)
    worker.hold_rows = hold
    if not spool:
        worker.spool = None  # every frame written as it is ingested
    half = len(messages) // 2
    for body in messages[:half]:
        worker.guarded(body)
    worker.sync()  # what a Flush does before the lighteval facade reads ``details``
    mid = {n: read_rows(t.segment) for n, t in worker.tasks.items()}
    for body in messages[half:]:
        worker.guarded(body)
    worker.sync()
    frames = {n: list(segment_frames(t.segment)) for n, t in worker.tasks.items()}
    segments = {n: t.segment.read_bytes() for n, t in worker.tasks.items() if t.segment.exists()}
    kept = {n for n, t in worker.tasks.items() if t.live is not None and not t.live.abandoned}
    if give_up:  # a live file given up at the end (its parts could not be joined, say)
        for task in worker.tasks.values():
            if task.live is not None:
                task.live.abandon()
    state = worker.end(1, Output(root=str(root / "out"), model_name="org/m", date_id="d"))
    assert state.error is None and state.written is not None and state.written.error is None
    files = {n: (root / "out" / rel).read_bytes() for n, rel in state.written.paths.items()}
    summaries = {n: (t.samples, t.pending_rows, t.summary) for n, t in state.tasks.items()}
    return {
        "mid": mid, "frames": frames, "segments": segments, "kept": kept, "files": files,
        "summaries": summaries, "warnings": state.written.warnings,
    }  # fmt: skip


def _both(messages: list[bytes], layout: str, hold: int, give_up: bool) -> tuple[Any, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        options = {"layout": layout, "hold": hold, "give_up": give_up}
        spooled = _run(messages, root / "spool", spool=True, **options)  # type: ignore[arg-type]
        written = _run(messages, root / "frames", spool=False, **options)  # type: ignore[arg-type]
    return spooled, written


@settings(max_examples=60, deadline=None)
@given(
    _MESSAGES,
    st.sampled_from(["flat", "lighteval"]),
    st.sampled_from([0, 4, 2048]),
    st.booleans(),
)
def test_the_spool_gives_every_output_the_segments_gave(
    messages: list[bytes], layout: str, hold: int, give_up: bool
) -> None:
    spooled, written = _both(messages, layout, hold, give_up)
    assert spooled["mid"] == written["mid"]  # the lighteval facade's mid-run ``details``
    assert spooled["frames"] == written["frames"]
    assert spooled["files"] == written["files"]  # the parquet files, byte for byte
    assert spooled["warnings"] == written["warnings"]
    assert spooled["summaries"] == written["summaries"]  # hashes, counters, nothing pending
    assert spooled["kept"] == written["kept"]
    # a task whose live file was kept wrote no segment; one given up wrote the same file
    assert set(spooled["segments"]) == set(written["segments"]) - spooled["kept"]
    for name, data in spooled["segments"].items():
        assert data == written["segments"][name]


def test_a_schema_change_after_n_batches_replays_them_into_the_segment(tmp_path: Path) -> None:
    """Three batches kept live, then a metric turns to text: the segment holds all four frames,
    the first three replayed from the spool, byte for byte the frames written as they came."""
    stable = [ENCODER.encode(SampleBatch(samples=(_sample("t|0", 0.5, {}, [k], False),)))
              for k in range(1, 4)]  # fmt: skip
    change = ENCODER.encode(SampleBatch(samples=(_sample("t|0", "yes", {}, [9], False),)))
    spooled, written = _both([*stable, change], "flat", 0, False)
    assert spooled["kept"] == set() and spooled["segments"] == written["segments"]
    assert len(spooled["frames"]["t|0"]) == 4
    assert spooled["files"] == written["files"]


def test_a_kept_task_writes_no_segment(tmp_path: Path) -> None:
    worker = Worker(tmp_path / "work", keep_rows=True)
    worker.hold_rows = 0
    for k in range(3):
        worker.guarded(ENCODER.encode(SampleBatch(samples=(_sample("t|0", 0.5, {}, [k], False),))))
    worker.sync()
    task = worker.tasks["t|0"]
    assert not task.segment.exists() and len(list(segment_frames(task.segment))) == 3
    assert [r["example"] for r in read_rows(task.segment)] == ["q1", "q1", "q1"]
    worker.close()
    worker.drop_live()


def test_a_failed_spool_write_keeps_rows_pending_and_retries(tmp_path: Path) -> None:
    """The spool's folder cannot be created (a file is in its way): the rows stay pending and the
    error is reported; once the way is clear the next flush writes them and clears it."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "segments").write_bytes(b"in the way")
    worker = Worker(workdir, keep_rows=True)
    worker.hold_rows = 0
    body = ENCODER.encode(SampleBatch(samples=(_sample("t|0", 0.5, {}, [1], False),)))
    worker.guarded(body)
    assert worker.error is not None and "details spool" in worker.error
    assert worker.state(1).tasks["t|0"].pending_rows == 1
    worker.sync()  # the segments' writes succeed, the spool's still fails: still an error
    assert worker.error is not None and worker.state(2).tasks["t|0"].pending_rows == 1
    (workdir / "segments").unlink()
    worker.sync()
    assert worker.error is None and worker.state(3).tasks["t|0"].pending_rows == 0
    assert len(list(read_frames(workdir / "segments" / "0.spool"))) == 2  # the batch, the ingest
    assert len(read_rows(worker.tasks["t|0"].segment)) == 1
    worker.close()
    worker.drop_live()
