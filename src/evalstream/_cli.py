"""The ``evalstream`` command line: ``demo`` now; ``push`` and ``recover`` build on the same API."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import anyio

from evalstream._demo import format_results, run_demo
from evalstream._errors import EvalStreamError

if TYPE_CHECKING:
    from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    result = anyio.run(
        lambda: run_demo(
            args.output_dir,
            samples=args.samples,
            concurrency=args.concurrency,
            seed=args.seed,
            quiet=args.quiet,
        )
    )
    print(format_results(result))
    print(
        f"\n{sum(result.samples.values())} samples tracked and saved in "
        f"{time.perf_counter() - started:.1f}s"
    )
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="evalstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a simulated async evaluation, tracked end to end")
    demo.add_argument("--output-dir", default="evalstream-out")
    demo.add_argument("--samples", type=int, default=20_000)
    demo.add_argument("--concurrency", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except EvalStreamError as exc:
        print(f"evalstream: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
