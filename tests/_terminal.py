"""A pseudo-terminal for a child's stderr: what a command draws there (progress bars, cursor)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def read_terminal(primary: int, on_text: Callable[[str], None] | None = None) -> str:
    """Everything drawn on the terminal whose primary side is ``primary`` until the child
    closes it; ``on_text(seen)`` runs after each chunk (to act on what is drawn so far)."""
    seen = ""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
        if on_text is not None:
            on_text(seen)
    os.close(primary)
    return seen
