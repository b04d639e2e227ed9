"""``evalstream query OUTPUT_DIR SQL``: SQL over the ``runs``, ``results`` and ``samples`` views
of every run in an output folder (``runs/query.py``), as a table, JSON rows or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from evalstream.cli.output import Output, fmt

_EXAMPLE = (
    "views: runs (one row per run, as ls), results (run_id, model, date_id, task, metric, value, "
    "stderr), samples (run_id, model, date_id, task and the details columns). Example: "
    'evalstream query OUT "select task, avg(metrics.acc) from samples group by task"'
)


def add_query_parser(sub: Any) -> None:
    """The ``query`` subcommand."""
    p = sub.add_parser(
        "query",
        help="SQL over every run of an output folder (DuckDB): runs, results, samples",
        description=_EXAMPLE,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("output_dir", help="the output folder (a path or an fsspec URL)")
    p.add_argument("sql", help="one SQL query over the views runs, results and samples")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    form.add_argument("--csv", action="store_true", help="print CSV (nested values as JSON)")
    p.set_defaults(func=query)


def _cell(value: Any) -> str:
    """A value as one table or CSV cell: nested values as JSON, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def query(args: argparse.Namespace) -> int:
    """Run the query and print its rows."""
    from evalstream.runs.query import query as run_query

    table = run_query(args.output_dir, args.sql)
    rows = table.to_pylist()
    if args.json:
        Output(json_mode=True).emit_json(rows)
        return 0
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([_cell(v) for v in row.values()] for row in rows)
        return 0
    cells = [[fmt(v) if isinstance(v, float) else _cell(v) for v in row.values()] for row in rows]
    Output().table(f"{len(rows)} row(s)", table.column_names, cells)
    return 0
