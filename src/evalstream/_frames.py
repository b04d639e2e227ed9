"""Length-prefixed, checksummed frames: the on-disk unit of details segments and the journal.

A frame is ``<u32 length><u32 crc32(payload)><payload>``, little-endian. Appending a frame is one
``write`` call, so a crash cuts at most the last frame. Reading drops a torn tail (a short header,
a short payload, or a bad checksum on the very last frame) and raises on a bad checksum anywhere
else, naming the file and offset: data before it is still returned by ``read_frames(strict=False)``.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, BinaryIO

from evalstream._errors import JournalCorruptError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_HEADER = struct.Struct("<II")
HEADER_SIZE = _HEADER.size


def frame(payload: bytes) -> bytes:
    """The bytes of one frame holding ``payload``."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class FrameScan:
    """Where reading a frame file stopped, and why."""

    def __init__(self) -> None:
        self.frames = 0
        self.good_bytes = 0
        self.torn_tail = False
        self.corrupt_at: int | None = None


def iter_frames(handle: BinaryIO, scan: FrameScan | None = None) -> Iterator[bytes]:
    """Yield payloads from ``handle`` (streaming), stopping at a torn tail or a corrupt frame."""
    scan = scan if scan is not None else FrameScan()
    offset = 0
    while True:
        header = handle.read(HEADER_SIZE)
        if not header:
            return
        if len(header) < HEADER_SIZE:
            scan.torn_tail = True
            return
        length, crc = _HEADER.unpack(header)
        payload = handle.read(length)
        if len(payload) < length:
            scan.torn_tail = True
            return
        if zlib.crc32(payload) != crc:
            if handle.read(1):
                scan.corrupt_at = offset
            else:
                scan.torn_tail = True
            return
        offset += HEADER_SIZE + length
        scan.frames += 1
        scan.good_bytes = offset
        yield payload


def read_frames(path: Path, *, strict: bool = True) -> Iterator[bytes]:
    """Yield the payloads of ``path``; a corrupt middle frame raises when ``strict``."""
    scan = FrameScan()
    with path.open("rb") as handle:
        yield from iter_frames(handle, scan)
    if scan.corrupt_at is not None and strict:
        raise JournalCorruptError(
            f"{path}: corrupt frame at byte offset {scan.corrupt_at}; the "
            f"{scan.frames} frames before it are intact (recover with strict=False)"
        )
