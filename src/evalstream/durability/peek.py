"""What a run's journal holds, read cheaply: model, tasks, samples per task, whether save began.

``evalstream ls`` shows runs that never saved (running, dead) from their journal. Decoding every
message fully would build every doc and response; instead each frame is decoded into small
Structs that carry only the fields counted here (msgspec skips the others without building
them), under the same tags as the real messages. Missing segments are listed (``gaps``), as recovery
and resume list them, so ``ls`` can say what a recovery would lose before running one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from evalstream.durability.frames import FrameScan, iter_frames
from evalstream.durability.segments import SegmentGap, segment_gaps, segment_paths

if TYPE_CHECKING:
    from pathlib import Path


class _Sample(msgspec.Struct):
    task_name: str
    scope: str = "both"


class _Batch(msgspec.Struct, tag="SampleBatch"):
    samples: list[_Sample]


class _Model(msgspec.Struct):
    model_name: str = ""


class _ModelLogged(msgspec.Struct, tag="ModelInfoLogged"):
    info: _Model


class _Task(msgspec.Struct):
    name: str


class _Tasks(msgspec.Struct, tag="TasksDeclared"):
    tasks: list[_Task]


class _NumDocs(msgspec.Struct, tag="NumDocs"):
    task_name: str
    effective_num_docs: int = 0


class _End(msgspec.Struct, tag="EndOfRun"):
    pass


class _Args(msgspec.Struct, tag="ArgsInfo"):
    pass


class _Version(msgspec.Struct, tag="TaskVersion"):
    pass


_DECODER = msgspec.msgpack.Decoder(
    _Batch | _ModelLogged | _Tasks | _NumDocs | _End | _Args | _Version
)


class JournalSummary(msgspec.Struct, kw_only=True):
    """The counts of a journal's intact frames."""

    model_name: str | None = None
    samples: dict[str, int] = {}
    expected: dict[str, int] = {}
    reached_save: bool = False
    bytes: int = 0
    readable: bool = True
    gaps: list[SegmentGap] = []
    """Segments missing from the numbering (``segments.segment_gaps``): their samples are lost."""

    @property
    def total_samples(self) -> int:
        """Samples over every task."""
        return sum(self.samples.values())


class _Counts:
    """What the frames of a journal add to its summary, one payload at a time."""

    def __init__(self, summary: JournalSummary) -> None:
        self.summary = summary
        self.metrics: dict[str, int] = {}
        self.details: dict[str, int] = {}

    def take(self, payload: bytes) -> bool:
        """Count one frame's message; False when it cannot be decoded."""
        try:
            message = _DECODER.decode(payload)
        except msgspec.DecodeError:
            return False
        summary = self.summary
        if isinstance(message, _Batch):
            for s in message.samples:
                counts = self.details if s.scope == "details" else self.metrics
                counts[s.task_name] = counts.get(s.task_name, 0) + 1
        elif isinstance(message, _ModelLogged):
            summary.model_name = message.info.model_name or None
        elif isinstance(message, _Tasks):
            for declared in message.tasks:
                self.metrics.setdefault(declared.name, 0)
        elif isinstance(message, _NumDocs):
            summary.expected[message.task_name] = message.effective_num_docs
        elif isinstance(message, _End):
            summary.reached_save = True
        return True

    def finish(self) -> JournalSummary:
        """The summary with its samples per task (a task's larger count of the two scopes)."""
        metrics, details = self.metrics, self.details
        self.summary.samples = {
            task: max(metrics.get(task, 0), details.get(task, 0))
            for task in metrics.keys() | details.keys()
        }
        return self.summary


def peek_journal(folder: Path) -> JournalSummary:
    """Count what the journal in ``folder`` holds (blocking); stops at the first bad frame."""
    summary = JournalSummary(samples={}, expected={})
    counts = _Counts(summary)
    paths = segment_paths(folder)
    summary.gaps = segment_gaps(folder, paths)
    for path in paths:
        summary.bytes += path.stat().st_size
        scan = FrameScan()
        with path.open("rb") as handle:
            for payload in iter_frames(handle, scan):
                if not counts.take(payload):
                    summary.readable = False
                    break
        if scan.corrupt_at is not None:
            summary.readable = False
    return counts.finish()


class JournalTail:
    """A live journal's counts for a watcher that reads them again and again (``evalstream
    view`` following another process's run).

    Each ``read()`` decodes only the frames appended since the last one, from where it stopped
    in each segment, so following a run costs what the run writes, not its journal's size. A
    frame still being written reads as a torn tail and is read whole the next time. Gaps and
    corruption are ``peek_journal``'s business (a recovery's question, not a watcher's).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.summary = JournalSummary(samples={}, expected={})
        self._counts = _Counts(self.summary)
        self._offsets: dict[str, int] = {}  # segment name -> bytes of whole frames counted
        self.decoded = 0
        """Bytes of frames the last ``read()`` decoded."""

    def read(self) -> JournalSummary:
        """The counts now (blocking)."""
        self.decoded = 0
        for path in segment_paths(self.folder):
            start = self._offsets.get(path.name, 0)
            scan = FrameScan()
            try:
                with path.open("rb") as handle:
                    handle.seek(start)
                    for payload in iter_frames(handle, scan):
                        if not self._counts.take(payload):
                            self.summary.readable = False
                            break
            except FileNotFoundError:  # the run saved meanwhile and removed its journal
                continue
            self._offsets[path.name] = start + scan.good_bytes
            self.decoded += scan.good_bytes
        self.summary.bytes = sum(self._offsets.values())
        return self._counts.finish()
