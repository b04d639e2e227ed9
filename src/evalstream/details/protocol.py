"""What crosses the boundary between a run and its details worker processes.

Frozen msgspec Structs, as the journal's messages are: the parent and the worker encode and
decode them with one shared encoder each, never by hand.
"""

from __future__ import annotations

import msgspec


class DetailsWritten(msgspec.Struct, frozen=True):
    """What the details workers wrote at the end of the run: relative paths, or an error."""

    paths: dict[str, str]
    warnings: list[str]
    error: str | None = None
