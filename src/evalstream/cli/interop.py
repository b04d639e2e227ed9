"""``evalstream export RUN --format F -o PATH`` and ``evalstream import SOURCE --format F
OUTPUT_DIR``: a saved run written in another harness's format, or another harness's run
recorded as an evalstream run (``interop/``)."""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from evalstream._errors import ConfigError
from evalstream.interop.formats import EXPORT_OUTPUTS, EXPORTERS, IMPORTERS

if TYPE_CHECKING:
    from collections.abc import Callable


def _resolve(registry: dict[str, str], name: str) -> Callable[..., list[str]]:
    module, _, function = registry[name].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:  # the format's optional extra is missing
        raise ConfigError(
            f"--format {name} needs {exc.name!r}: pip install 'evalstream[{name}]'"
        ) from exc
    found: Callable[..., list[str]] = getattr(loaded, function)
    return found


def export(args: argparse.Namespace) -> int:
    """Write one saved run in another format."""
    from evalstream.runs.loading import resolve_run

    run = resolve_run(args.run, latest=args.latest, output_dir=args.output_dir)
    for path in _resolve(EXPORTERS, args.format)(run, args.output):
        print(path)
    return 0


def _renames(pairs: list[str]) -> dict[str, str]:
    """``--task-name OLD=NEW`` options as a mapping; a malformed one is a clear error."""
    renames: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ConfigError(
                f"--task-name {pair!r}: give OLD=NEW (the foreign task, its new name)"
            )
        if old in renames:
            raise ConfigError(f"--task-name names {old!r} twice")
        renames[old] = new
    return renames


def import_(args: argparse.Namespace) -> int:
    """Record a foreign run as an evalstream run in OUTPUT_DIR."""
    importer = _resolve(IMPORTERS, args.format)
    renames = _renames(args.task_name)
    written = importer(args.source, args.output_dir, task_names=renames or None)
    for path in written:
        print(path)
    return 0


def add_interop_parsers(sub: Any, run_help: str, lookup_help: str) -> None:
    """The ``export`` and ``import`` subcommands."""
    notes = [f"--format {name}: {text}." for name, text in sorted(EXPORT_OUTPUTS.items())]
    p = sub.add_parser(
        "export",
        help="write a saved run in another harness's format",
        epilog="\n\n".join(notes) or None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help=run_help)
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS) or None)
    p.add_argument("-o", "--output", required=True, help="the file (or folder) to write")
    p.add_argument("--latest", action="store_true", help="the newest saved run of OUTPUT_DIR")
    p.add_argument("--output-dir", default=".", help=lookup_help)
    p.set_defaults(func=export)
    p = sub.add_parser(
        "import",
        help="record another harness's run as an evalstream run",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("source", help="the foreign run (a log file, or a results file or folder)")
    p.add_argument("output_dir", help="the output folder the imported run is written to")
    p.add_argument("--format", required=True, choices=sorted(IMPORTERS) or None)
    p.add_argument(
        "--task-name",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="record the foreign task OLD as NEW (repeatable), e.g. arc_easy=lighteval|arc:easy|0,"
        " so compare pairs it with another harness's run of the same docs",
    )
    p.set_defaults(func=import_)
