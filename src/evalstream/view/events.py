"""A run's progress as server-sent events, from wherever the view can see the run.

- **A run of this process** (a live run of the ``Runtime`` the view was given): its tracker's
  ``Progress`` snapshots, every ``interval`` and at once when it ends (``run/progress.py``),
  encoded as they are, so whatever ``Progress`` carries (samples per task, rate, the durable
  count, inbox depths, ``estimates`` and ``baseline`` when the run has them) reaches the page.
- **A run of another process writing into the output folder**: only what its files say. The
  status marker gives its state (``dead`` once its lock is free) and start time; its journal,
  read without decoding the samples (``durability/peek.py``), gives the model, the samples per
  task written so far, and the docs each task declared; the rate is the difference between two
  reads. Inbox depths, estimates and the baseline live in that process's memory: they are not
  in the files, so they are absent. Each poll decodes only the frames appended since the last
  (``JournalTail``), so following a run costs what it writes, not its journal's size. A remote
  (fsspec) folder shows the state only.
- **A saved run**: one event with its results file's samples per task and each metric's value
  and 95 % interval (``results``), then the end.

Every event is ``event: progress`` with a JSON object with the ``Progress`` keys (plus
``source``: ``process``, ``folder`` or ``saved``); the stream closes with ``event: end``, so the
page's ``EventSource`` does not reconnect.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from fsspec.implementations.local import LocalFileSystem

from evalstream.durability.peek import JournalTail
from evalstream.run.progress import ENDED, updates
from evalstream.runs.catalog import (
    filesystem,
    read_json,
    read_status_of,
    run_state,
    sample_counts,
)
from evalstream.stats.rows import metric_rows

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from evalstream.run.runtime import LiveRun
    from evalstream.runs.catalog import RunEntry

_ENCODER = msgspec.json.Encoder()
END = b"event: end\ndata: {}\n\n"


def event(payload: dict[str, Any]) -> bytes:
    """One ``progress`` event."""
    return b"event: progress\ndata: " + _ENCODER.encode(payload) + b"\n\n"


async def process_updates(run: LiveRun, interval: float) -> AsyncGenerator[dict[str, Any]]:
    """The snapshots of a run of this process until it has ended."""
    take = run.progress
    assert take is not None  # the view lists only runs whose tracker set it
    snapshots = updates(take, lambda: run.ended, interval)
    try:
        async for snapshot in snapshots:
            payload = msgspec.to_builtins(snapshot)
            payload["source"] = "process"
            yield payload
    finally:  # a page that leaves closes this generator: close the tracker's too, now
        close = getattr(snapshots, "aclose", None)
        if close is not None:
            await close()


def _blank(run_id: str, state: str, source: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "state": state,
        "elapsed": 0.0,
        "samples": 0,
        "tasks": {},
        "rate": 0.0,
        "durable": 0,
        "inboxes": {},
        "waiting": 0,
        "source": source,
    }


class FolderWatch:
    """What the files of a run folder (another process's run) say, read again on each poll."""

    def __init__(self, fs: Any, folder: str, run_id: str) -> None:
        self.fs = fs
        self.folder = folder
        self.run_id = run_id
        self._last: tuple[float, int] | None = None  # (monotonic time, samples) of the last read
        self.tail: JournalTail | None = None
        self.cost = 0.0  # seconds the last read took

    def read(self) -> dict[str, Any]:
        """One snapshot (blocking)."""
        began = time.monotonic()
        payload = _blank(self.run_id, "dead", "folder")
        status, damage = read_status_of(self.fs, self.folder)
        if status is not None and not damage:
            payload["state"], payload["note"] = run_state(self.fs, self.folder, status)
            payload["elapsed"] = (
                time.time() if payload["state"] == "running" else status.updated
            ) - status.start_time
        else:
            payload["state"], payload["note"] = "damaged" if damage else "dead", damage
        journal = f"{self.folder}/journal"
        if isinstance(self.fs, LocalFileSystem) and self.fs.isdir(journal):
            if self.tail is None:
                self.tail = JournalTail(Path(journal))
            peek = self.tail.read()
            samples = peek.total_samples
            payload.update(
                model=peek.model_name,
                tasks=dict(peek.samples),
                samples=samples,
                durable=samples,
                expected=dict(peek.expected),
            )
            now = time.monotonic()
            if self._last is not None and now > self._last[0]:
                payload["rate"] = max(0.0, (samples - self._last[1]) / (now - self._last[0]))
            self._last = (now, samples)
        self.cost = time.monotonic() - began
        return payload


async def folder_updates(watch: FolderWatch, interval: float) -> AsyncGenerator[dict[str, Any]]:
    """A folder's snapshots every ``interval`` (or five times the read's cost) until the run is
    no longer ``running``."""
    while True:
        payload = await anyio.to_thread.run_sync(watch.read)
        yield payload
        if payload["state"] != "running":
            return
        await anyio.sleep(max(interval, 5 * watch.cost))


def saved_snapshot(entry: RunEntry) -> dict[str, Any]:
    """A saved run as one snapshot: its samples per task and its results (blocking); a run
    with neither results nor a run folder of its own (sharded), its ``ls`` line."""
    payload = _blank(entry.run_id or "", entry.status, "saved")
    payload.update(model=entry.model, note=entry.note, samples=entry.samples or 0)
    if entry.results is None:  # a sharded run not merged yet: what ``ls`` says of it
        return payload
    fs, path = filesystem(entry.results)
    data = read_json(fs, path)
    tasks = sample_counts(data)
    payload.update(tasks=tasks, samples=sum(tasks.values()), durable=sum(tasks.values()))
    results: dict[str, dict[str, Any]] = {}
    for row in metric_rows(data.get("results") or {}):
        results.setdefault(row.task, {})[row.metric] = {
            "value": row.value,
            "stderr": row.stderr,
            "low": row.low,
            "high": row.high,
        }
    payload["results"] = results
    config = data.get("config_general") or {}
    start, end = config.get("start_time"), config.get("end_time")
    if isinstance(start, int | float) and isinstance(end, int | float):
        payload["elapsed"] = end - start
    return payload


async def stream(updates: AsyncGenerator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """``updates`` as server-sent events, then ``end`` (also when a snapshot says the run
    ended: a late subscriber gets the last state and the end, never a hanging stream)."""
    async with contextlib.aclosing(updates) as snapshots:
        async for payload in snapshots:
            yield event(payload)
            if payload["state"] in ENDED:
                break
    yield END
