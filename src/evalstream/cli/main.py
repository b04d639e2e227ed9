"""The ``evalstream`` command line: the argument parser; the subcommands live in ``cli/``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING

from evalstream._errors import EvalStreamError
from evalstream.cli.arguments import at_least, output_folder
from evalstream.cli.interop import add_interop_parsers
from evalstream.cli.interrupts import Interrupted, command_ending
from evalstream.cli.merge import add_merge_parser
from evalstream.cli.query import add_query_parser
from evalstream.cli.schema import add_schema_parser
from evalstream.cli.view import add_view_parser

if TYPE_CHECKING:
    from collections.abc import Sequence

DESCRIPTION = """\
Record, inspect and publish LLM evaluation runs.

Looking at runs:  evalstream ls OUTPUT_DIR, show RUN, compare RUN_A RUN_B, report RUN... -o FILE
SQL over runs:    evalstream query OUTPUT_DIR "select ... from runs | results | samples"
Live view:        evalstream view OUTPUT_DIR (a local web app: progress, estimates, samples)
After a crash:    evalstream recover OUTPUT_DIR (every dead run in it) or a run folder
Publishing:       evalstream push RUN --org ORG (token: $HF_TOKEN or --token-file)
Trying it out:    evalstream demo

RUN is a results_*.json file, a run folder (OUTPUT_DIR/.evalstream/RUN_ID), a run id as ls
prints it (looked up in --output-dir, default the current folder) or an output folder with
--latest. compare OUTPUT_DIR --latest: its newest run against the one before."""

_Fmt = argparse.ArgumentDefaultsHelpFormatter


def _version() -> str:
    from importlib.metadata import version

    return f"evalstream {version('evalstream')}"


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evalstream.cli.actions import demo as run

    p = sub.add_parser(
        "demo",
        help="run a simulated async evaluation, tracked end to end",
        description="Evaluate a simulated model (random latency) on 8 tasks and save the run.",
        formatter_class=_Fmt,
    )
    p.add_argument(
        "--output-dir",
        type=output_folder,
        default="evalstream-out",
        help="where the run is written",
    )
    p.add_argument(
        "--samples",
        type=at_least(8, "one sample per task"),
        default=20_000,
        help="samples over all 8 tasks",
    )
    p.add_argument("--concurrency", type=at_least(1), default=64, help="model requests in flight")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


_RUN_HELP = "results_*.json, a run folder, a run id (as ls prints it) or OUTPUT_DIR with --latest"
_LOOKUP_HELP = (
    "the output folder a run id is looked up in (default: %(default)s, the current folder)"
)


def _add_run(p: argparse.ArgumentParser) -> None:
    """RUN, --latest and --output-dir: how show and push name one run."""
    p.add_argument("run", help=_RUN_HELP)
    p.add_argument("--latest", action="store_true", help="the newest saved run of OUTPUT_DIR")
    p.add_argument("--output-dir", default=".", help=_LOOKUP_HELP)


def _add_views(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evalstream.cli import views

    json_help = "print JSON instead of tables"
    p = sub.add_parser("ls", help="list the runs of an output folder", formatter_class=_Fmt)
    p.add_argument("output_dir", help="the output folder (a path or an fsspec URL)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=views.ls)
    p = sub.add_parser(
        "show", help="one run's results with stderr and 95%% CIs, config and summary"
    )
    _add_run(p)
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=views.show)
    p = sub.add_parser(
        "compare",
        help="two runs per task and metric, with a paired test on their shared docs",
        formatter_class=_Fmt,
    )
    p.add_argument("run_a", help=f"the baseline run: {_RUN_HELP}")
    p.add_argument(
        "run_b",
        nargs="?",
        help="the run compared with it (differences are B - A); without it, RUN_A is an "
        "OUTPUT_DIR and --latest compares its newest run with the one before of the same model",
    )
    p.add_argument(
        "--latest", action="store_true", help="an OUTPUT_DIR stands for its newest saved run"
    )
    p.add_argument("--output-dir", default=".", help=_LOOKUP_HELP)
    p.add_argument("--iters", type=at_least(1), default=2000, help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=views.compare)


def _add_actions(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evalstream.cli import actions

    p = sub.add_parser(
        "push", help="publish a saved run to the Hugging Face Hub", formatter_class=_Fmt
    )
    _add_run(p)
    p.add_argument("--org", required=True, help="organisation (or user) to push to")
    p.add_argument("--public", action="store_true", help="a public repo (default: _private)")
    p.add_argument(
        "--token-file",
        default=None,
        help="file holding a write token (default: $HF_TOKEN, else `hf auth login`'s token)",
    )
    p.add_argument(
        "--endpoint",
        default=os.environ.get("HF_ENDPOINT", ""),
        help="Hub URL (default: $HF_ENDPOINT, else huggingface.co)",
    )
    p.set_defaults(func=actions.push)
    p = sub.add_parser(
        "recover",
        help="rebuild results and details of dead runs from their journals",
        formatter_class=_Fmt,
    )
    p.add_argument("target", help="OUTPUT_DIR (every dead run in it) or one run folder")
    p.add_argument(
        "--output-dir", type=output_folder, default=None, help="write elsewhere than the run's own"
    )
    p.add_argument("--model-name", default=None, help="if the run died before logging it")
    p.set_defaults(func=actions.recover)
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (plots, suites, samples)",
        formatter_class=_Fmt,
    )
    p.add_argument("runs", nargs="+", help="runs in order (checkpoints); OUTPUT_DIR = all its runs")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write")
    p.add_argument("--latest", action="store_true", help="only the newest run of OUTPUT_DIR")
    p.add_argument("--output-dir", default=".", help=_LOOKUP_HELP)
    p.add_argument("--samples", type=at_least(0), default=20, help="details rows shown per task")
    p.set_defaults(func=actions.report)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="evalstream",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_views(sub)
    _add_actions(sub)
    add_merge_parser(sub)
    add_query_parser(sub)
    add_interop_parsers(sub, _RUN_HELP, _LOOKUP_HELP)
    add_schema_parser(sub)
    add_view_parser(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Every command ends the same way when cut short (``cli/interrupts.py``): a reader that closed
    the pipe (``| head``) changes nothing (the command finishes, its exit code is its own), and
    SIGINT or SIGTERM ends it with one line saying what was kept, exit 130 or 143.
    """
    args = build_parser().parse_args(argv)
    with command_ending():
        try:
            code: int = args.func(args)
        except EvalStreamError as exc:
            print(f"evalstream: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Interrupted)
            stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
            print(f"evalstream: {stop}", file=sys.stderr)
            return stop.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
