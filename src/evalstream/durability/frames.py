"""Length-prefixed, checksummed frames: the on-disk unit of details segments and the journal.

A frame is ``<u32 length><u32 crc32(payload)><payload>``, little-endian, with a non-empty
payload. Appending a frame is one ``write`` call, so a crash cuts at most the frames of the last
write. Reading stops at the first bad frame (a short header or payload, an empty payload, or a
bad checksum) and calls it:

- a *torn tail*, dropped silently, when nothing readable can follow it: the file ends inside the
  frame, or right after its bad payload, or every byte from the frame on is zero (the zero-filled
  tail some file systems leave after a power cut);
- *corruption* otherwise, named by file and byte offset: ``read_frames`` raises, and with
  ``strict=False`` returns the intact frames before it.

Accepted limit: a bit flip in a length field that points past the end of the file cannot be
told from a write cut by a crash, so it reads as a torn tail at that frame.
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
_CHUNK = 1 << 16


def frame(payload: bytes) -> bytes:
    """The bytes of one frame holding ``payload`` (which must not be empty)."""
    if not payload:
        raise ValueError("a frame's payload cannot be empty")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def frames(payloads: list[bytes]) -> bytes:
    """The bytes of one frame per payload, joined (each payload copied once)."""
    parts: list[bytes] = []
    for payload in payloads:
        parts.append(_HEADER.pack(len(payload), zlib.crc32(payload)))
        parts.append(payload)
    return b"".join(parts)


class FrameScan:
    """Where reading a frame file stopped, and why."""

    def __init__(self) -> None:
        self.frames = 0
        self.good_bytes = 0
        self.torn_tail = False
        self.corrupt_at: int | None = None


def _zeros_to_end(handle: BinaryIO) -> bool:
    """True when every byte from the handle's position to the end of the file is zero."""
    while chunk := handle.read(_CHUNK):
        if chunk.count(0) != len(chunk):
            return False
    return True


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
        if length == 0 or zlib.crc32(payload) != crc:
            handle.seek(offset)
            if _zeros_to_end(handle):
                scan.torn_tail = True
            else:
                handle.seek(offset + HEADER_SIZE + length)
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
