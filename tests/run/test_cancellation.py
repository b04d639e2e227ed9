"""The caller's cancellation at random points: 50 runs in child processes, each checked for
the right status and for every acknowledged sample in the recovered (or saved) details."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

CHILD = Path(__file__).parents[1] / "cancel_child.py"
CHILDREN, RUNS, PARALLEL = 10, 5, 6


async def test_caller_cancellation_at_random_points_loses_nothing(tmp_path: Path) -> None:
    """Each run whose scope fired is marked cancelled (or saved, if save() finished first),
    and every sample whose log_sample returned is recovered; no BrokenResourceError."""
    reports: list[dict[str, object]] = []
    limiter = anyio.CapacityLimiter(PARALLEL)

    async def child(seed: int) -> None:
        async with limiter:
            done = await anyio.run_process(
                [sys.executable, str(CHILD), str(tmp_path / f"c{seed}"), str(seed), str(RUNS)],
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        reports.extend(json.loads(line) for line in done.stdout.decode().splitlines())

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for seed in range(CHILDREN):
                tg.start_soon(child, seed)
    assert len(reports) == CHILDREN * RUNS
    for report in reports:
        assert report["missing"] == 0, report
        expected = {"cancelled", "saved"} if report["fired"] else {"saved"}
        assert report["state"] in expected, report
    fired_while_logging = [r for r in reports if r["fired"] and r["state"] == "cancelled"]
    assert len(fired_while_logging) >= CHILDREN * RUNS // 2, reports
    assert sum(1 for r in fired_while_logging if r["acked"]) >= CHILDREN * RUNS // 3, reports
