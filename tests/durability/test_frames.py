"""Framed files: torn tails are dropped, corrupt middles are named, data before them survives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evalstream import JournalCorruptError
from evalstream.durability.frames import frame, frames, read_frames

if TYPE_CHECKING:
    from pathlib import Path


def _write(path: Path, payloads: list[bytes]) -> bytes:
    data = b"".join(frame(p) for p in payloads)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("cut", [1, 4, 7, 9, 12])
def test_torn_tail_is_dropped(tmp_path: Path, cut: int) -> None:
    """A frame cut anywhere by a crash is dropped; every whole frame before it is read."""
    path = tmp_path / "seg"
    data = _write(path, [b"alpha", b"beta", b"gamma-gamma"])
    path.write_bytes(data[: len(data) - cut])
    assert list(read_frames(path)) == [b"alpha", b"beta"]


def test_corrupt_middle_frame_names_file_and_offset(tmp_path: Path) -> None:
    """A bad checksum before the tail raises with the offset; non-strict reading keeps the prefix."""
    path = tmp_path / "seg"
    data = bytearray(_write(path, [b"one", b"two", b"three"]))
    offset = len(frame(b"one"))
    data[offset + 9] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match=f"offset {offset}"):
        list(read_frames(path))
    assert list(read_frames(path, strict=False)) == [b"one"]


def test_frames_joins_what_frame_makes_one_by_one(tmp_path: Path) -> None:
    """The journal's thread frames a group at once: the same bytes, read back in order."""
    payloads = [b"one", bytes(range(256)) * 600, b"three"]
    data = frames(payloads)
    assert data == b"".join(frame(p) for p in payloads)
    path = tmp_path / "seg"
    path.write_bytes(data)
    assert list(read_frames(path)) == payloads
