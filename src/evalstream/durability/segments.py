"""A journal's segments on disk: their numbering, reading them back, and what the reading found.

The journal (``journal.py``) writes segments ``000000.wal``, ``000001.wal``, ... in order and
never removes one while its run lives, so the folder is its own table of contents: the numbers
run from 0 without a hole. Reading checks that, because a segment deleted from the middle (a
clean-up script, a disk that lost a file) leaves every frame of the others intact: read alone,
the journal would look whole and the samples of the missing segment would vanish without a
word. A hole in the numbering is a ``SegmentGap``; readers carry on past it (the segments after
it are good data) and report it, the way they report a corrupt frame.

Not detectable: a segment missing at the end (a run may simply have stopped there), and a
segment replaced by another one's bytes (frames carry no sequence number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from evalstream._errors import JournalCorruptError
from evalstream._messages import DECODER, RunMessage
from evalstream.durability.frames import HEADER_SIZE, FrameScan, iter_frames

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SUFFIX = ".wal"


def segment_name(number: int) -> str:
    """The file name of segment ``number``."""
    return f"{number:06d}{SUFFIX}"


def segment_number(path: Path) -> int | None:
    """The number in a segment's name (``000003.wal``: 3); None for a name without one."""
    stem = path.name.removesuffix(SUFFIX)
    return int(stem) if stem.isascii() and stem.isdigit() else None


def _order(path: Path) -> tuple[bool, int, str]:
    number = segment_number(path)
    return number is None, number or 0, path.name


def segment_paths(folder: Path) -> list[Path]:
    """The journal segments of ``folder``, oldest first (by number, not by spelling)."""
    return sorted(folder.glob(f"*{SUFFIX}"), key=_order)


class SegmentGap(msgspec.Struct, frozen=True, kw_only=True):
    """Segments ``first`` to ``last`` (numbers, inclusive) missing between two present ones.

    Their frames are gone, so how many messages they held is unknown; ``estimated_bytes`` is
    their count times the size of the largest rotated segment still there (every rotated
    segment is about ``segment_bytes`` long), None when no rotated segment is left to go by.
    """

    folder: str
    first: int
    last: int
    after: str | None
    """The segment before the gap; None when the gap starts at segment 0."""
    before: str
    """The segment after the gap, where reading resumes."""
    estimated_bytes: int | None = None

    @property
    def missing(self) -> list[str]:
        """The file names of the missing segments."""
        return [segment_name(n) for n in range(self.first, self.last + 1)]

    def describe(self) -> str:
        """One sentence for a warning: what is missing, where, and what it costs."""
        names = self.missing
        what = (
            f"journal segment {names[0]} is"
            if len(names) == 1
            else f"{len(names)} journal segments ({names[0]} to {names[-1]}) are"
        )
        where = f"after {self.after} and " if self.after is not None else ""
        size = (
            f", about {self.estimated_bytes:,} bytes judging by the segments around it"
            if self.estimated_bytes is not None
            else ""
        )
        return (
            f"{what} missing from {self.folder} ({where}before {self.before}): the messages "
            f"it held are lost (how many is unknown{size}); the segments after it were read"
        )


def segment_gaps(folder: Path, paths: list[Path] | None = None) -> list[SegmentGap]:
    """The holes in the numbering of ``folder``'s segments (a listing and stats; blocking)."""
    paths = segment_paths(folder) if paths is None else paths
    numbered = [(n, p) for p in paths if (n := segment_number(p)) is not None]
    rotated = [p.stat().st_size for _, p in numbered[:-1]]
    size = max(rotated) if rotated else None
    gaps = []
    expected, previous = 0, None
    for number, path in numbered:
        if number > expected:
            count = number - expected
            gaps.append(
                SegmentGap(
                    folder=str(folder),
                    first=expected,
                    last=number - 1,
                    after=previous,
                    before=path.name,
                    estimated_bytes=count * size if size else None,
                )
            )
        expected, previous = number + 1, path.name
    return gaps


class JournalRead(msgspec.Struct):
    """What reading a journal found: messages, and any torn tail, corruption or gap."""

    messages: list[RunMessage]
    torn_tail: bool = False
    corrupt: str | None = None
    gaps: list[SegmentGap] = []


class JournalScan:
    """What ``scan_journal`` found once its iterator is exhausted."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0  # of the frames read so far, for progress reports
        self.skipped = 0
        self.torn_tail = False
        self.corrupt: str | None = None
        self.gaps: list[SegmentGap] = []

    def problems(self) -> list[str]:
        """What was lost, one sentence each (for RunResult.warnings); empty when nothing."""
        out = [gap.describe() for gap in self.gaps]
        if self.corrupt is not None:
            out.append(
                f"the journal is corrupt in segment {self.corrupt}: reading stopped there, "
                "the messages after it are lost"
            )
        if self.skipped:
            out.append(
                f"{self.skipped} journal frame(s) with a valid checksum could not be decoded "
                "by this version of evalstream and were skipped"
            )
        return out


def scan_journal(
    folder: Path, *, strict: bool = False, scan: JournalScan | None = None
) -> Iterator[RunMessage]:
    """Decode the messages of ``folder``'s segments one at a time (blocking), in order.

    A torn tail of the last segment (frames cut by a crash) is dropped silently. A frame whose
    checksum holds but whose message does not decode is skipped and counted in ``scan.skipped``.
    Missing segments (``segment_gaps``) are listed in ``scan.gaps`` and reading goes on after
    them (or raises JournalCorruptError there when ``strict``). A corrupt frame, or a torn tail
    of any earlier segment (the journal fsyncs a segment before starting the next, so only the
    last can be cut), stops reading there and is reported in ``scan.corrupt`` (or raised when
    ``strict``): everything before it is kept.
    """
    scan = scan if scan is not None else JournalScan()
    paths = segment_paths(folder)
    scan.gaps = segment_gaps(folder, paths)
    gap_before = {gap.before: gap for gap in scan.gaps}
    for n, path in enumerate(paths):
        gap = gap_before.get(path.name)
        if gap is not None and strict:
            raise JournalCorruptError(
                f"{gap.describe()}; the {scan.messages} messages before it are intact "
                "(read with strict=False to keep them and those after the gap)"
            )
        frames = FrameScan()
        with path.open("rb") as handle:
            for payload in iter_frames(handle, frames):
                scan.bytes += HEADER_SIZE + len(payload)
                try:
                    message = DECODER.decode(payload)
                except msgspec.DecodeError:
                    scan.skipped += 1  # its checksum holds: a message this version cannot read
                    continue
                scan.messages += 1
                yield message
            reason = "corrupt frame"
        if frames.torn_tail and n < len(paths) - 1:
            frames.corrupt_at = frames.good_bytes
            reason = "torn frame before the last segment"
        if frames.torn_tail and frames.corrupt_at is None:
            scan.torn_tail = True
        if frames.corrupt_at is not None:
            scan.corrupt = f"{path} at byte offset {frames.corrupt_at}"
            if strict:
                raise JournalCorruptError(
                    f"{reason} in journal segment {scan.corrupt}; the {scan.messages} messages "
                    "before it are intact (read with strict=False to keep them)"
                )
            return


def read_journal(folder: Path, *, strict: bool = False) -> JournalRead:
    """Every message of ``folder``'s segments in memory (see ``scan_journal``; blocking)."""
    scan = JournalScan()
    messages = list(scan_journal(folder, strict=strict, scan=scan))
    return JournalRead(
        messages=messages, torn_tail=scan.torn_tail, corrupt=scan.corrupt, gaps=scan.gaps
    )
