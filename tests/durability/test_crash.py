"""Crash injection: SIGKILL a logging child at random moments; recovery keeps every promise.

The ``-m kill`` group (``scripts/ci/kill.sh``, after the main suite) runs ``KILLS`` kills (two
children at a time); ``scripts/crash_test.py --kills 200`` runs the long version. See
``crash_child.py`` for the child's protocol and what is checked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import pytest

from crash_child import CrashOutcome, kill_and_recover

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.kill

KILLS = int(os.environ.get("EVALSTREAM_CRASH_KILLS", "20"))


async def test_sigkill_at_random_moments_loses_nothing_promised(tmp_path: Path) -> None:
    """Every sample a child reported durable survives its SIGKILL, once, with its exact row."""
    outcomes: list[CrashOutcome] = []
    limiter = anyio.CapacityLimiter(2)

    async def one(seed: int) -> None:
        async with limiter:
            outcomes.append(await kill_and_recover(tmp_path, seed))

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for seed in range(KILLS):
                tg.start_soon(one, seed)
    problems = [f"seed {o.seed}: {p}" for o in outcomes for p in o.problems]
    assert problems == []
    assert all(o.killed for o in outcomes)
    assert sum(o.lost for o in outcomes) == 0
    assert sum(o.promised for o in outcomes) > 0
