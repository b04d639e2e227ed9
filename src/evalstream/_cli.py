"""The ``evalstream`` command line: ``demo``, ``push`` (a saved run to the Hub), ``recover``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

import anyio

from evalstream._demo import format_results, run_demo
from evalstream._errors import EvalStreamError
from evalstream.shards.cli import add_merge_parser

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


def _push(args: argparse.Namespace) -> int:
    from evalstream.sinks.push import push_saved_run

    outcome = anyio.run(
        lambda: push_saved_run(
            args.run, args.org, public=args.public, endpoint=args.endpoint or None
        )
    )
    if outcome.ok:
        print(
            f"pushed {len(outcome.files)} files to {outcome.repo_id} in commit {outcome.commit_oid}"
        )
        return 0
    print(f"evalstream: push to {outcome.repo_id} failed: {outcome.error}", file=sys.stderr)
    return 1


def _recover(args: argparse.Namespace) -> int:
    from evalstream.durability.recovery import recover

    result = anyio.run(
        lambda: recover(args.run_dir, output_dir=args.output_dir, model_name=args.model_name)
    )
    partial = result.results.get("evalstream", {})
    print(f"recovered {sum(result.samples.values())} samples into {result.results_path}")
    incomplete = partial.get("incomplete_tasks", [])
    if incomplete:
        print(f"incomplete tasks: {', '.join(incomplete)}")
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
    push = sub.add_parser("push", help="publish a saved run to the Hugging Face Hub")
    push.add_argument("run", help="the run folder (OUTPUT_DIR/.evalstream/RUN_ID) or results JSON")
    push.add_argument("--org", required=True, help="organisation (or user) to push to")
    push.add_argument("--public", action="store_true", help="public repo (default: _private)")
    push.add_argument(
        "--endpoint",
        default=os.environ.get("HF_ENDPOINT", ""),
        help="Hub URL (default: $HF_ENDPOINT or huggingface.co); token: $HF_TOKEN",
    )
    push.set_defaults(func=_push)
    rec = sub.add_parser("recover", help="write results and details of a dead run's journal")
    rec.add_argument("run_dir", help="the run folder, OUTPUT_DIR/.evalstream/RUN_ID")
    rec.add_argument("--output-dir", default=None, help="write elsewhere than the run's own")
    rec.add_argument("--model-name", default=None, help="if the run died before logging it")
    rec.set_defaults(func=_recover)
    add_merge_parser(sub)
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
