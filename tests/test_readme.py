"""The README's code runs as written: its Async and Sync API snippets, in a scratch folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def _snippet(section: str) -> str:
    text = README.read_text()
    body = text[text.index(f"## {section}") :]
    match = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert match, f"README section {section!r} has no python snippet"
    return match.group(1)


@pytest.mark.parametrize("section", ["Async API", "Sync API"])
def test_readme_snippet_runs_as_written(tmp_path: Path, section: str) -> None:
    code = _snippet(section)
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (results,) = (tmp_path / "out" / "results").rglob("results_*.json")
    written = json.loads(results.read_text())
    assert written["results"], "the snippet saved no results"
