"""The long crash-injection run: SIGKILL the logging child N times, recover, count what was lost.

    .venv/bin/python scripts/crash_test.py --kills 200 [--jobs 2] [--seed 1000] [--keep DIR]

Each kill starts ``tests/crash_child.py`` with a new seed (a quarter of them with
``durable=True``, batch sizes 1 to 256, journal segments of 16 KiB to 64 MiB), kills it after
a random number of output lines, recovers the run and checks every sample the child reported
durable (see ``tests/crash_child.py``). Prints one line per violation and a summary; exits 1 if
any promised sample was lost or any check failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from crash_child import CrashOutcome, config_of, kill_and_recover


async def run(kills: int, jobs: int, first_seed: int, root: Path) -> list[CrashOutcome]:
    """Kill and recover ``kills`` children, ``jobs`` at a time; print progress every 10."""
    outcomes: list[CrashOutcome] = []
    limiter = anyio.CapacityLimiter(jobs)

    async def one(seed: int) -> None:
        async with limiter:
            outcome = await kill_and_recover(root, seed)
        outcomes.append(outcome)
        for problem in outcome.problems:
            print(f"seed {seed}: {problem}")
        if len(outcomes) % 10 == 0:
            print(f"{len(outcomes)}/{kills} kills, {sum(o.lost for o in outcomes)} lost")

    async with anyio.create_task_group() as tg:
        for seed in range(first_seed, first_seed + kills):
            tg.start_soon(one, seed)
    return outcomes


def summary(outcomes: list[CrashOutcome], seconds: float) -> str:
    """The run's totals, by durability mode and by where the kill landed."""
    killed = [o for o in outcomes if o.killed]
    modes = Counter("durable" if config_of(o.seed).durable else "flush()" for o in killed)
    during_save = sum(o.last_line == "SAVING" for o in killed)
    return "\n".join(
        [
            (
                f"kills: {len(killed)} of {len(outcomes)} runs ({dict(modes)}; "
                f"{during_save} during save())"
            ),
            f"samples promised durable: {sum(o.promised for o in killed)}",
            f"samples recovered: {sum(o.recovered for o in killed)}",
            f"promised samples lost: {sum(o.lost for o in killed)}",
            f"runs with a failed check: {sum(bool(o.problems) for o in outcomes)}",
            f"time: {seconds:.0f} s",
        ]
    )


def main() -> int:
    """Parse arguments, run, print the summary; 1 if anything was lost or wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1000, help="first seed")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evalstream-crash-") as tmp:
        root = args.keep or Path(tmp)
        outcomes = anyio.run(run, args.kills, args.jobs, args.seed, root)
    print(summary(outcomes, time.perf_counter() - started))
    bad = any(o.problems or o.lost for o in outcomes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
