"""``evalstream schema``: the JSON Schema of the results file this version writes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_schema_parser(sub: Any) -> None:
    """The ``schema`` subcommand."""
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of the results file (versioned: `schema_version`)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=schema)


def schema(args: argparse.Namespace) -> int:
    """Print the schema to stdout (validate with any JSON Schema 2020-12 validator)."""
    from evalstream.sinks.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0
