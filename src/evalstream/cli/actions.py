"""``evalstream demo``, ``recover``, ``push`` and ``report``: the commands that do long work.

Each shows a progress bar while it works when stderr is a terminal, and nothing otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstream._errors import ConfigError, EvalStreamError, ResumeAbandonedError
from evalstream.cli.interrupts import run_async
from evalstream.cli.output import progress

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator


def _ignore(**_: object) -> None:
    """The progress update of a command told to be quiet."""


def left_behind(workdir: Path | None, output_dir: str) -> str:
    """What an interrupted run left in ``workdir``, and the command that continues it."""
    from evalstream.durability.peek import peek_journal
    from evalstream.durability.runstate import read_status

    if workdir is None:
        return "the run had not started; nothing was written"
    try:
        status = read_status(workdir)
    except EvalStreamError:
        status = None
    if status is not None and status.state == "saved":
        return f"the run was saved first: {status.results_path}"
    journal = workdir / "journal"
    samples = peek_journal(journal).total_samples if journal.is_dir() else 0
    state = status.state if status is not None else "unmarked"
    return (
        f"{samples} samples journaled in {workdir} (run {state}); "
        f"continue with `evalstream recover {output_dir}`"
    )


def demo(args: argparse.Namespace) -> int:
    """Run the simulated evaluation and print its results."""
    from evalstream.cli.demo import format_results, run_demo

    started = time.perf_counter()
    workdir: list[Path] = []
    bar = nullcontext(_ignore) if args.quiet else progress("demo: logging", args.samples)
    with bar as update:

        def on_progress(done: int, total: int, phase: str) -> None:
            update(completed=done, total=total, description=f"demo: {phase}")

        result = run_async(
            lambda: run_demo(
                args.output_dir,
                samples=args.samples,
                concurrency=args.concurrency,
                seed=args.seed,
                on_progress=on_progress,
                on_started=workdir.append,
            ),
            kept=lambda: left_behind(workdir[0] if workdir else None, args.output_dir),
        )
    print(format_results(result))
    print(
        f"\n{sum(result.samples.values())} samples tracked and saved in "
        f"{time.perf_counter() - started:.1f}s"
    )
    return 0 if result.ok else 1


def _recover_one(run_dir: Path, args: argparse.Namespace) -> bool:
    from evalstream.run.recover import recover

    with progress(f"recover {run_dir.name}", None, unit="bytes") as update:
        result = run_async(
            lambda: recover(
                run_dir,
                output_dir=args.output_dir,
                model_name=args.model_name,
                on_progress=lambda done, total: update(completed=done, total=total),
            ),
            kept=lambda: (
                f"the journal of {run_dir} is kept; run `evalstream recover {args.target}` again"
            ),
        )
    partial = result.results.get("evalstream", {})
    print(f"recovered {sum(result.samples.values())} samples into {result.results_path}")
    incomplete = partial.get("incomplete_tasks", [])
    if incomplete:
        print(f"incomplete tasks: {', '.join(incomplete)}")
    return result.ok


def recover(args: argparse.Namespace) -> int:
    """Recover one run folder, or every dead run of an output folder."""
    from evalstream.durability.runstate import read_status
    from evalstream.runs.catalog import RECOVERABLE, list_runs
    from evalstream.runs.sharded import attempt_of

    target = Path(args.target)
    if not target.exists():
        raise ConfigError(f"{target} does not exist")
    if (target / "status.json").exists() or (target / "journal").is_dir():
        status = read_status(target) if (target / "status.json").exists() else None
        if status is not None and status.shard is not None:
            raise ConfigError(attempt_of(status, args.target))
        return 0 if _recover_one(target, args) else 1
    if not (target / ".evalstream").is_dir():
        raise ConfigError(
            f"{target} is neither an output folder (no .evalstream inside) nor a run folder "
            "(OUTPUT_DIR/.evalstream/RUN_ID); nothing to recover"
        )
    entries = list_runs(str(target))
    dead = [
        e
        for e in entries
        if e.status in RECOVERABLE
        and e.shard is None  # a shard is finished by its re-run and merge
        and e.run_dir
        and (Path(e.run_dir) / "journal").is_dir()
    ]
    for e in entries:  # a sharded run is finished by re-running its shards and merging
        if e.shard is not None and e.status == "sharded":
            print(f"run {e.run_id} (sharded, {e.shard}): {e.note}")
    if not dead:
        states = ", ".join(sorted({e.status for e in entries})) or "none"
        print(f"no dead runs to recover in {target} ({len(entries)} run(s): {states})")
        return 0
    failed: list[str] = []
    for entry in dead:  # every run it can; the others are reported, never a stop
        assert entry.run_dir is not None
        print(f"run {entry.run_id} ({entry.status}):")
        try:
            if not _recover_one(Path(entry.run_dir), args):
                failed.append(f"{entry.run_id}: an output failed")
        except ResumeAbandonedError as exc:  # not a failure: its predecessor is the run
            print(f"  {exc}")
        except EvalStreamError as exc:
            print(f"  not recovered: {exc}")
            failed.append(f"{entry.run_id}: {exc}")
    if failed:
        print(f"{len(failed)} of {len(dead)} run(s) not recovered:")
        for line in failed:
            print(f"  {line}")
    return 0 if not failed else 1


def read_token(args: argparse.Namespace) -> str | None:
    """The token of ``--token-file``, else None (then HF_TOKEN or ``hf auth login``)."""
    if not args.token_file:
        return None
    path = Path(args.token_file)
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    return token


def _partial_warning(results: dict[str, Any]) -> str:
    """What a push must say before publishing results that do not cover the whole run."""
    from evalstream.runs.catalog import describe_incomplete, incomplete_tasks, partial_source

    source = partial_source(results)
    incomplete = incomplete_tasks(results)
    if source is None and not incomplete:
        return ""
    what = f"a PARTIAL run ({source})" if source else "a run with incomplete tasks"
    tasks = describe_incomplete(incomplete, shown=len(incomplete)) if incomplete else ""
    return f"pushing {what}" + (f"; {tasks}" if tasks else "")


class _PrintedByTheCommand(logging.Filter):
    """Drops the Hub publisher's "push to REPO failed" line: ``push`` prints that outcome."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("push to ")


@contextmanager
def _outcome_printed_once() -> Iterator[None]:
    hub_log = logging.getLogger("evalstream.hub")
    only_once = _PrintedByTheCommand()
    hub_log.addFilter(only_once)
    try:
        yield
    finally:
        hub_log.removeFilter(only_once)


def push(args: argparse.Namespace) -> int:
    """Publish a saved run (a run folder, results file, or an output folder's latest run)."""
    from fsspec.implementations.local import LocalFileSystem

    from evalstream.runs.loading import resolve_run
    from evalstream.sinks.push import push_saved_run

    token = read_token(args)
    run = resolve_run(args.run, latest=args.latest, output_dir=args.output_dir)
    if not isinstance(run.fs, LocalFileSystem):
        raise ConfigError(f"push publishes local files; {run.where} is remote")
    where = run.run_dir or run.results_path
    warning = _partial_warning(run.results)
    if warning:
        print(f"evalstream: warning: {warning}", file=sys.stderr)
    with progress(f"push {run.label} to {args.org}", None), _outcome_printed_once():
        outcome = run_async(
            lambda: push_saved_run(
                where, args.org, public=args.public, token=token, endpoint=args.endpoint or None
            ),
            kept=lambda: (
                "a push is one commit: it was made whole or not at all (the run's "
                "files are untouched); run the same push again"
            ),
        )
    if outcome.ok:
        print(
            f"pushed {len(outcome.files)} files to {outcome.repo_id} in commit {outcome.commit_oid}"
        )
        return 0
    print(f"evalstream: push to {outcome.repo_id} failed: {outcome.error}", file=sys.stderr)
    return 1


def report(args: argparse.Namespace) -> int:
    """Write the HTML report of one or more runs."""
    from evalstream.runs.catalog import list_runs
    from evalstream.runs.loading import resolve_run
    from evalstream.runs.report import write_report

    runs = []
    for target in args.runs:
        is_output = os.path.isdir(os.path.join(target, ".evalstream")) or os.path.isdir(
            os.path.join(target, "results")
        )
        if is_output and not args.latest:  # every saved run of an output folder, in order
            runs += [resolve_run(e.results) for e in list_runs(target) if e.results]
        else:
            runs.append(resolve_run(target, latest=args.latest, output_dir=args.output_dir))
    if not runs:
        raise ConfigError(f"no saved runs in {', '.join(args.runs)}")
    with progress("report", None) as update:
        path = write_report(runs, args.output, samples=args.samples, on_progress=update)
    print(f"wrote {path} ({len(runs)} run(s), {path.stat().st_size / 1e6:.1f} MB)")
    return 0
