"""The details worker protocol: every message survives its direction's real encoder and
decoder, a reply that is not one is a clear EvalStreamError at the parent, and the parent and a
real worker process talk it end to end."""

from __future__ import annotations

import json
import random
import sys
import typing
from pathlib import Path

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream import EvalStreamError
from evalstream._messages import DECODER, ENCODER, SampleBatch, ScoredSample, TasksDeclared
from evalstream.details import pool
from evalstream.details.pool import PoolWorker
from evalstream.details.protocol import (
    FROM_PARENT,
    TO_PARENT,
    TO_WORKER,
    DetailsWritten,
    Drop,
    End,
    Failed,
    Flush,
    Forward,
    FromWorker,
    Open,
    Output,
    State,
    TaskState,
    ToWorker,
    decode_reply,
)

from _workload import TASKS, sample

OUTPUT = Output(root="/tmp/out", model_name="org/m", date_id="2026-01-01T00-00-00")
BATCH = ENCODER.encode(
    SampleBatch(
        samples=tuple(
            ScoredSample(task_name=TASKS[0].name, doc=doc, outputs=tuple(outs), metrics=metrics)
            for doc, outs, metrics in (sample(random.Random(i), TASKS[0], i) for i in range(3))
        )
    )
)
TO_WORKER_EXAMPLES: list[ToWorker] = [
    Open(channel=1, workdir="/tmp/w", keep_rows=True, shard=2, layout="lighteval", umask=0o077),
    Open(channel=1, workdir="/tmp/w", keep_rows=False, shard=0),
    Forward(channel=3, payload=BATCH),
    Flush(channel=4, request=7),
    End(channel=5, request=8, output=OUTPUT),
    End(channel=5, request=9),
    Drop(channel=6),
]
TASK = TaskState(
    segment="/tmp/w/segments/0-00000.seg",
    samples=3,
    pending_rows=1,
    summary={"hashes": {"hash_examples": "ab12"}, "truncated": 0, "effective_few_shots": 4.5},
)
FROM_WORKER_EXAMPLES: list[FromWorker] = [
    State(request=1, tasks={"lb|gsm8k|5": TASK}),
    State(request=2, tasks={}, error="disk full"),
    State(
        request=3,
        tasks={"lb|gsm8k|5": TASK},
        written=DetailsWritten({"lb|gsm8k|5": "details/a.parquet"}, ["a warning"], None),
    ),
    State(request=4, tasks={}, written=DetailsWritten({}, [], "OSError: read-only")),
    Failed(request=5, error="the details worker holds no state for this run"),
]


def test_the_examples_cover_every_message() -> None:
    """A message added to a union needs its round-trip example here."""
    assert {type(m) for m in TO_WORKER_EXAMPLES} == set(typing.get_args(ToWorker))
    assert {type(m) for m in FROM_WORKER_EXAMPLES} == set(typing.get_args(FromWorker))


@pytest.mark.parametrize("message", TO_WORKER_EXAMPLES, ids=repr)
def test_every_message_to_the_worker_round_trips(message: ToWorker) -> None:
    """What the parent encodes, the worker decodes to an equal message."""
    assert FROM_PARENT.decode(TO_WORKER.encode(message)) == message


def test_a_forwarded_batch_stays_the_journals_bytes() -> None:
    """The batch is carried as opaque bytes: the worker gets the journal's frame unchanged."""
    forwarded = FROM_PARENT.decode(TO_WORKER.encode(Forward(channel=1, payload=BATCH)))
    assert isinstance(forwarded, Forward)
    assert forwarded.payload == BATCH
    assert DECODER.decode(forwarded.payload) == DECODER.decode(BATCH)


@pytest.mark.parametrize("message", FROM_WORKER_EXAMPLES, ids=repr)
def test_every_reply_round_trips_as_one_line(message: FromWorker) -> None:
    """What the worker encodes is one line, which the parent decodes to an equal message."""
    line = TO_PARENT.encode(message)
    assert b"\n" not in line
    assert decode_reply(line) == message


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)
_TAGGED = st.fixed_dictionaries(
    {"type": st.sampled_from(["State", "Failed", "Open", "DetailsWritten", "Bogus"])},
    optional={"request": _JSON, "tasks": _JSON, "error": _JSON, "written": _JSON},
)


@settings(max_examples=300, deadline=None)
@given(
    st.binary() | _JSON.map(json.dumps).map(str.encode) | _TAGGED.map(json.dumps).map(str.encode)
)
def test_a_reply_is_a_message_or_a_clear_error(line: bytes) -> None:
    """Whatever a worker writes, the parent gets a typed reply or an EvalStreamError, never a
    raw msgspec error."""
    try:
        reply = decode_reply(line)
    except EvalStreamError as exc:
        assert "unreadable reply" in str(exc)
        assert isinstance(exc.__cause__, msgspec.DecodeError)
    else:
        assert isinstance(reply, State | Failed)


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b'{"type": "Bogus", "request": 1}', b'{"type": "State"}', b"[]"],
)
async def test_a_garbage_reply_breaks_the_worker_with_an_evalstream_error(
    garbage: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker answering something that is not a reply fails the run's request clearly."""
    fake = (  # answers the first byte it reads with ``garbage``, then waits for EOF
        "import sys; sys.stdin.buffer.read(1); "
        f"sys.stdout.buffer.write({garbage!r} + b'\\n'); sys.stdout.flush(); sys.stdin.buffer.read()"
    )
    monkeypatch.setattr(pool, "command", lambda: [sys.executable, "-c", fake])
    worker = PoolWorker(nice=0)
    try:
        with anyio.fail_after(30), pytest.raises(EvalStreamError, match="unreadable reply"):
            await worker.channel().flush()
        assert not worker.healthy
    finally:
        await worker.aclose()


async def test_the_parent_and_a_real_worker_talk_the_typed_protocol(tmp_path: Path) -> None:
    """Open, forward tasks and samples, flush, end with an output, drop: typed answers."""
    name = TASKS[0].name
    worker = PoolWorker(nice=0)
    try:
        with anyio.fail_after(60):
            run, dropped = worker.channel(), worker.channel()
            for n, channel in enumerate((run, dropped)):
                await channel.open(tmp_path / f"work{n}", keep_rows=True, shard=0)
                await channel.message(ENCODER.encode(TasksDeclared(tasks=(TASKS[0],))))
                await channel.message(BATCH)
            flushed = await run.flush()
            assert isinstance(flushed, State)
            assert (flushed.error, flushed.written) == (None, None)
            assert flushed.tasks[name].samples == 3
            assert Path(flushed.tasks[name].segment).is_file()
            assert flushed.tasks[name].summary["hashes"]

            output = Output(root=str(tmp_path / "out"), model_name="org/m", date_id="d")
            ended = await run.end(output)
            assert isinstance(ended, State) and ended.written is not None
            assert ended.written.error is None
            assert list(ended.written.paths) == [name]
            assert (tmp_path / "out" / ended.written.paths[name]).is_file()

            await dropped.close()  # never ended: the worker is told to forget it
            for forgotten in (run, dropped):
                answer = await forgotten.flush()
                assert isinstance(answer, Failed)
                assert "no state for this run" in answer.error
    finally:
        await worker.aclose()
