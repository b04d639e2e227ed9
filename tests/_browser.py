"""Shared by the browser tests (``-m browser``, scripts/ci/browser.sh): Debian's chromium, and
the flags that keep it off this machine's closed network (Playwright's own browser download
cannot work here)."""

from __future__ import annotations

import os
import shutil

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The chromium binary (``$EVALSTREAM_CHROMIUM``, else on PATH), or the test is skipped."""
    found = os.environ.get("EVALSTREAM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.skip(
            "no chromium binary: `apt-get install chromium` (scripts/ci/browser.sh does) "
            "or set EVALSTREAM_CHROMIUM"
        )
    return found
