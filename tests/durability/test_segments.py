"""Journal segments: a segment missing from the numbering is a gap, named by every reader."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from evalstream import JournalCorruptError
from evalstream._messages import DECODER, ENCODER, NumDocs
from evalstream.durability.frames import read_frames
from evalstream.durability.journal import Journal
from evalstream.durability.peek import peek_journal
from evalstream.durability.segments import read_journal, segment_gaps, segment_paths

if TYPE_CHECKING:
    from pathlib import Path


def _message(i: int) -> NumDocs:
    return NumDocs(task_name=f"task{i}", original_num_docs=i, effective_num_docs=i)


def _written(folder: Path, n: int) -> list[Path]:
    """Messages 0..n-1 in a journal rotated every 512 bytes; its segments."""

    async def main() -> None:
        journal = Journal(folder, segment_bytes=512)
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            for i in range(n):
                await journal.append(ENCODER.encode(_message(i)))
                await journal.wait_synced()
            await journal.close()

    anyio.run(main)
    return segment_paths(folder)


def _names(folder: Path, **kwargs: bool) -> list[str]:
    return [m.task_name for m in read_journal(folder, **kwargs).messages]  # type: ignore[union-attr]


def test_a_deleted_middle_segment_is_a_gap_and_reading_goes_on(tmp_path: Path) -> None:
    """Segment 2 deleted: the gap is named, with an estimate; the segments after it are read."""
    paths = _written(tmp_path, 300)
    assert len(paths) > 5
    lost = [DECODER.decode(p).task_name for p in read_frames(paths[2])]
    assert lost
    paths[2].unlink()
    read = read_journal(tmp_path)
    (gap,) = read.gaps
    assert (gap.first, gap.last, gap.after, gap.before) == (2, 2, "000001.wal", "000003.wal")
    assert gap.missing == ["000002.wal"]
    assert gap.estimated_bytes is not None and gap.estimated_bytes >= 512
    assert "journal segment 000002.wal is missing" in gap.describe()
    assert _names(tmp_path) == [f"task{i}" for i in range(300) if f"task{i}" not in lost]
    assert read.corrupt is None
    with pytest.raises(JournalCorruptError, match=r"000002\.wal is missing"):
        read_journal(tmp_path, strict=True)


def test_missing_first_and_several_segments_are_gaps(tmp_path: Path) -> None:
    """A hole at the start (no 000000) and a run of missing ones are each one gap."""
    paths = _written(tmp_path, 300)
    for i in (0, 3, 4, 5):
        paths[i].unlink()
    gaps = segment_gaps(tmp_path)
    assert [(g.first, g.last, g.after, g.before) for g in gaps] == [
        (0, 0, None, "000001.wal"),
        (3, 5, "000002.wal", "000006.wal"),
    ]
    assert "3 journal segments (000003.wal to 000005.wal) are missing" in gaps[1].describe()


def test_an_intact_journal_and_a_lost_last_segment_have_no_gap(tmp_path: Path) -> None:
    """Numbers from 0 without a hole: no gap (a missing last segment cannot be told apart)."""
    paths = _written(tmp_path, 300)
    assert segment_gaps(tmp_path) == []
    paths[-1].unlink()
    assert segment_gaps(tmp_path) == []


def test_peek_lists_the_same_gap(tmp_path: Path) -> None:
    """``ls``'s cheap reader (peek) sees the gap recovery and resume see."""
    paths = _written(tmp_path, 300)
    paths[1].unlink()
    assert peek_journal(tmp_path).gaps == read_journal(tmp_path).gaps != []


def test_segments_are_ordered_by_number(tmp_path: Path) -> None:
    """Past 999999 the names grow a digit: order by number, not spelling."""
    for name in ("1000000.wal", "999999.wal", "000000.wal"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in segment_paths(tmp_path)] == [
        "000000.wal",
        "999999.wal",
        "1000000.wal",
    ]
