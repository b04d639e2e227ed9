"""``evalstream ls``, ``show`` and ``compare``: what an output folder holds, one run, two runs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from evalstream._errors import ConfigError
from evalstream.cli.output import Output, fmt, fmt_p
from evalstream.runs.catalog import incomplete_tasks, list_runs, partial_source, timings_note
from evalstream.runs.loading import latest_pair, resolve_run
from evalstream.stats.paired import BOOTSTRAP, EXACT
from evalstream.stats.rows import metric_rows

if TYPE_CHECKING:
    import argparse

    from evalstream.runs.catalog import RunEntry
    from evalstream.runs.loading import LoadedRun


def _headline(entry: RunEntry) -> str:
    h = entry.headline
    if h is None:
        return "-"
    err = f" ± {fmt(h.stderr)}" if h.stderr is not None else ""
    return f"{h.metric} {fmt(h.value)}{err}"


def ls(args: argparse.Namespace) -> int:
    """Every run of an output folder."""
    out = Output(json_mode=args.json)
    entries = list_runs(args.output_dir)
    if out.json_mode:
        out.emit_json(msgspec.to_builtins(entries))
        return 0
    if not entries:
        out.line(f"no runs in {args.output_dir}")
        return 0
    columns = ["run id", "model", "date_id", "status", "tasks", "samples", "headline", "note"]
    rows = [
        [
            e.run_id or "-", e.model or "-", e.date_id or "-", e.status, str(e.tasks),
            fmt(e.samples), _headline(e), e.note,
        ]
        for e in entries
    ]  # fmt: skip
    out.table(f"{len(entries)} run(s) in {args.output_dir}", columns, rows)
    return 0


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each task and metric with its stderr and normal-approximation 95 % interval."""
    return [
        {"task": r.task, "metric": r.metric, "value": r.value, "stderr": r.stderr,
         "ci_low": r.low, "ci_high": r.high}
        for r in metric_rows(results.get("results") or {})
    ]  # fmt: skip


def _flat(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", fmt(value)))
    return out


def show(args: argparse.Namespace) -> int:
    """One run's results, config and summary."""
    out = Output(json_mode=args.json)
    run = resolve_run(args.run, latest=args.latest, output_dir=args.output_dir)
    rows = result_rows(run.results)
    partial = run.results.get("evalstream")
    incomplete = incomplete_tasks(run.results)
    if out.json_mode:
        out.emit_json(
            {
                "results_path": run.where, "run_dir": run.run_dir, "model": run.model_name,
                "date_id": run.date_id, "results": rows,
                "config": run.results.get("config_general"),
                "summary": run.results.get("summary_general"), "evalstream": partial,
                "incomplete": msgspec.to_builtins(incomplete),
            }
        )  # fmt: skip
        return 0
    out.line(
        f"{run.label}\nresults: {run.where}" + (f"\nrun: {run.run_dir}" if run.run_dir else "")
    )
    source = partial_source(run.results)
    if source is not None:
        out.line(f"PARTIAL ({source})")
    for t in incomplete:
        docs = f"of {t.expected} docs" if t.expected is not None else "(docs never declared)"
        out.line(f"INCOMPLETE: {t.task} logged {t.logged} samples {docs}")
    out.line()
    table = [
        [r["task"], r["metric"], fmt(r["value"]), fmt(r["stderr"]),
         f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if r["ci_low"] is not None else "-"]
        for r in rows
    ]  # fmt: skip
    last = None
    for row in table:  # the task name once per block of its metrics
        row[0], last = ("" if row[0] == last else row[0]), row[0]
    out.table(
        "results (95 % CI: value ± 1.96 x stderr)",
        ["task", "metric", "value", "stderr", "95 % CI"],
        table,
    )
    config = run.results.get("config_general") or {}
    note = timings_note(run.results)
    title = f"config ({note})" if note else "config"
    out.table(title, ["key", "value"], [list(kv) for kv in _flat(config)])
    summary = run.results.get("summary_general") or {}
    out.table("summary", ["key", "value"], [list(kv) for kv in _flat(summary)])
    return 0


def _ci(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"[{low:+.4f}, {high:+.4f}]"


def _pair(args: argparse.Namespace) -> tuple[LoadedRun, LoadedRun]:
    """Runs A and B: two RUNs, or one OUTPUT_DIR with --latest (its newest two of a model)."""
    if args.run_b is None:
        if not args.latest:
            raise ConfigError(
                "compare needs two runs (RUN_A RUN_B), or one OUTPUT_DIR with --latest (its "
                "newest run against the one before of the same model)"
            )
        return latest_pair(args.run_a)
    return (
        resolve_run(args.run_a, latest=args.latest, output_dir=args.output_dir),
        resolve_run(args.run_b, latest=args.latest, output_dir=args.output_dir),
    )


def compare(args: argparse.Namespace) -> int:
    """Two runs per task and metric, with a paired test on their shared docs."""
    from evalstream.runs.compare import compare_runs

    out = Output(json_mode=args.json)
    a, b = _pair(args)
    rows = compare_runs(a, b, iters=args.iters, seed=args.seed)
    if out.json_mode:
        out.emit_json({"a": a.where, "b": b.where, "rows": msgspec.to_builtins(rows)})
        return 0
    out.line(f"A: {a.label}  ({a.where})\nB: {b.label}  ({b.where})\n")
    table = []
    for r in rows:
        p = r.paired
        table.append(
            [
                r.task, r.metric, fmt(r.a), fmt(r.b),
                f"{r.difference:+.4f}" if r.difference is not None else "-",
                _ci(p.ci_low, p.ci_high) if p else "-", fmt_p(p.p_value) if p else "-",
                p.test if p else "-", str(r.shared_docs) if r.shared_docs else "-",
                "; ".join(r.flags) if r.comparable else "NOT COMPARABLE: " + "; ".join(r.flags),
            ]
        )  # fmt: skip
    out.table(
        "B - A per task and metric",
        ["task", "metric", "A", "B", "B-A", "95 % CI", "p", "test", "docs", "flags"],
        table,
    )
    out.line(
        f"Paired on the docs both runs scored. {EXACT}: exact binomial test on the discordant "
        f"docs of 0/1 metrics. {BOOTSTRAP}: {args.iters} resamples of the docs (seed "
        f"{args.seed}); the interval is the bootstrap percentile interval in both cases."
    )
    return 0
