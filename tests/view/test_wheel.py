"""The built wheel ships the view's page and its chart library, with uPlot's license.

In the browser group (``scripts/ci/browser.sh``), which may fetch the build backend from PyPI:
pip builds the wheel from this checkout in isolation, as a user's install does.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[2]
STATIC = ROOT / "src" / "evalstream" / "view" / "static"


def test_the_wheel_holds_every_static_file(tmp_path: Path) -> None:
    """Every file of view/static (uPlot, its license, the page) is in the wheel, byte for byte."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("evalstream-*.whl")
    expected = {f"evalstream/view/static/{p.name}": p.read_bytes() for p in STATIC.iterdir()}
    assert {"uPlot.iife.min.js", "uPlot.LICENSE", "index.html"} <= {
        p.name for p in STATIC.iterdir()
    }
    with zipfile.ZipFile(wheel) as archive:
        for name, content in expected.items():
            assert archive.read(name) == content, name
