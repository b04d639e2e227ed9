"""The benchmark scripts still run (tiny sizes); timing is never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.mark.parametrize(
    ("script", "expect"),
    [
        ("bench.py", "## W1"),
        ("bench_stats.py", "|"),
        ("bench_hub_requests.py", "1 commit"),
        ("bench_merge.py", "| 8,000 | 4 |"),
        ("bench_daemon.py", "all saved: True"),
        ("bench_caller.py", "| log_samples (loop CPU, best pass) |"),
        ("bench_query.py", "every answer agrees: 20,000 rows"),
        ("bench_worker.py", "| ingest, CPU µs per sample |"),
    ],
)
def test_benchmark_runs_in_smoke_mode(script: str, expect: str, tmp_path: Path) -> None:
    """`SCRIPT --smoke` exits 0 and prints its result table."""
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_TOKEN", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout, done.stdout[-2000:]
