"""Argument types of the command line: numbers in range and output folders, refused at parse time.

argparse turns the ``ArgumentTypeError`` into ``evalstream COMMAND: error: argument --x: ...``
and exit 2, before any work starts: ``--samples 0`` is refused rather than run as 8 samples, and
an ``--output-dir`` that names a file is refused rather than failing deep inside the run with
"Not a directory".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """An integer type that refuses values below ``minimum`` (``why`` says the reason)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{reason}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def seconds(text: str) -> float:
    """A duration in seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return value


def output_folder(text: str) -> str:
    """A folder to write runs into: a URL as given; a local path must not be (inside) a file."""
    if "://" in text:
        return text
    path = Path(text).expanduser()
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if ancestor == path and not path.is_dir():
                raise argparse.ArgumentTypeError(f"OUTPUT_DIR {text} is a file, not a folder")
            if not ancestor.is_dir():
                raise argparse.ArgumentTypeError(
                    f"OUTPUT_DIR {text} is inside {ancestor}, which is a file"
                )
            break
    return text
