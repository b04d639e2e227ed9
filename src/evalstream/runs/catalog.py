"""The runs of an output folder (a local path or an fsspec URL), and what state each is in.

A run shows up as a run folder (``.evalstream/RUN_ID`` with its status marker and, until it is
saved, its journal), as a results file (``results/MODEL/results_DATE.json``), or both. A
``running`` run whose process is gone is ``dead``; only a local run on this host can be checked,
so a run of another host stays ``running`` with a note. A run that was recovered is listed once:
the dead run's id, state ``recovered``, with the results file the recovery wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import msgspec
from fsspec.implementations.local import LocalFileSystem

from evalstream._errors import ConfigError, StorageError
from evalstream._naming import RESULTS_GLOB, results_date_id
from evalstream.durability.owner import alive, read_holder
from evalstream.durability.peek import peek_journal
from evalstream.durability.runstate import RunStatus
from evalstream.runs.sharded import SHARDS, ShardAttempt, ShardedRun, folder_attempt, sharded_runs
from evalstream.stats.rows import metric_rows

RECOVERABLE = frozenset({"dead", "failed", "cancelled"})
"""States whose journal ``evalstream recover`` replays."""


class Headline(msgspec.Struct, frozen=True):
    """The first metric of a run's ``all`` row (or of its first task)."""

    metric: str
    value: float | None
    stderr: float | None


class RunEntry(msgspec.Struct, kw_only=True):
    """One run of an output folder, as ``evalstream ls`` shows it."""

    run_id: str | None
    model: str | None
    date_id: str | None
    status: str
    tasks: int
    samples: int | None
    headline: Headline | None
    results: str | None  # results file, as a local path or URL
    run_dir: str | None
    started: float | None
    note: str = ""
    shard: str | None = None  # a sharded run (``N shards``): its line, its last merge's results
    merge_of: str | None = None  # a results file a merge of the sharded run of this name wrote


def filesystem(target: str) -> tuple[Any, str]:
    """(fsspec filesystem, path in it) of a local path or URL."""
    fs, path = fsspec.core.url_to_fs(target)
    return fs, str(path).rstrip("/") or "/"


def display(fs: Any, path: str) -> str:
    """A path as the user would type it: plain for local files, a URL otherwise."""
    return path if isinstance(fs, LocalFileSystem) else str(fs.unstrip_protocol(path))


_SECTIONS = ("config_general", "results", "versions", "config_tasks", "summary_tasks")


def read_json(fs: Any, path: str) -> dict[str, Any]:
    """A results file, checked for the shape every reader here relies on.

    A truncated or wrong-shaped file (a copy cut short, a hand edit, another tool's JSON under
    the name) raises StorageError naming it: a listing shows it as ``damaged`` and goes on; a
    command given that one file says so, never a traceback.
    """
    try:
        data = json.loads(fs.cat_file(path))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise StorageError(f"{display(fs, path)} is not a readable results file: {exc}") from exc
    problem = _shape_problem(data)
    if problem is not None:
        raise StorageError(f"{display(fs, path)} is not a results file: {problem}")
    return data  # type: ignore[no-any-return]


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    for key in _SECTIONS:
        if key in data and not isinstance(data[key], dict):
            return f"its {key!r} is a {type(data[key]).__name__}, not an object"
    for task, row in (data.get("results") or {}).items():
        if not isinstance(row, dict):
            return f"results[{task!r}] is a {type(row).__name__}, not an object of metrics"
    return None


def headline(results: dict[str, Any]) -> Headline | None:
    """The metric a run is summed up by: the first of its ``all`` row, else of its first task."""
    rows = results.get("results") or {}
    row = rows.get("all") or next(iter(rows.values()), None)
    if not row:
        return None
    first = next(iter(metric_rows({"": row})), None)
    return Headline(first.metric, first.value, first.stderr) if first else None


def task_names(results: dict[str, Any]) -> list[str]:
    """The evaluated tasks (not the derived ``_average`` and ``all`` rows)."""
    return [t for t in results.get("results") or {} if t != "all" and ":_average|" not in t]


def sample_counts(results: dict[str, Any]) -> dict[str, int]:
    """Samples per task: the recovery section's counts, else the summary's per-sample counters."""
    partial = (results.get("evalstream") or {}).get("tasks")
    if partial:
        return {t: int(v.get("samples") or 0) for t, v in partial.items()}
    out = {}
    for task, summary in (results.get("summary_tasks") or {}).items():
        if "truncated" in summary and "non_truncated" in summary:
            out[task] = int(summary["truncated"]) + int(summary["non_truncated"])
    return out


class Incomplete(msgspec.Struct, frozen=True):
    """A task that logged fewer samples than its docs (``expected`` None: never declared)."""

    task: str
    logged: int
    expected: int | None


def incomplete_tasks(results: dict[str, Any]) -> list[Incomplete]:
    """The tasks of a results file with fewer samples than docs: from the recovery's (or
    merge's) section when there is one, else each task's ``effective_num_docs`` (what the
    harness declared with ``log_num_docs``) against the samples its summary counts."""
    section = (results.get("evalstream") or {}).get("tasks")
    if section:
        return [
            Incomplete(task, int(v.get("samples") or 0), v.get("expected"))
            for task, v in section.items()
            if not v.get("complete")
        ]
    counts = sample_counts(results)
    out = []
    for task, config in (results.get("config_tasks") or {}).items():
        effective = config.get("effective_num_docs")
        logged = counts.get(task)
        if isinstance(effective, int) and logged is not None and logged < effective:
            out.append(Incomplete(task, logged, effective))
    return out


def partial_source(results: dict[str, Any]) -> str | None:
    """Why a results file is partial (a recovery, a partial merge), or None when it is not."""
    section = results.get("evalstream") or {}
    if not section.get("partial"):
        return None
    if section.get("recovered_from"):
        return "recovered from a dead run: only the samples it journaled"
    if section.get("merged"):
        return "merged from unfinished shards: only the samples they uploaded"
    return "partial"


def timings_note(results: dict[str, Any]) -> str | None:
    """Whose times ``config_general`` holds when they are not the run's own: a recovery's or a
    merge's (the replay into a fresh tracker started and ended then)."""
    section = results.get("evalstream") or {}
    if section.get("recovered_from"):
        return (
            "recovered: its start, end and evaluation times are the recovery's, not the run's "
            f"(which started in {section['recovered_from']})"
        )
    if section.get("merged"):
        return "merged: its start, end and evaluation times are the merge's, not the shards'"
    return None


def describe_incomplete(tasks: list[Incomplete], shown: int = 2) -> str:
    """``N incomplete task(s): TASK logged/docs, ...``: the first ``shown`` named."""
    named = [f"{t.task} {t.logged}/{t.expected if t.expected is not None else '?'}" for t in tasks]
    more = f", +{len(named) - shown} more" if len(named) > shown else ""
    return f"{len(tasks)} incomplete task(s): {', '.join(named[:shown])}{more}"


def _results_entry_or_damage(
    fs: Any, path: str, contents: dict[str, dict[str, Any]] | None
) -> RunEntry:
    """The run of a results file, or a ``damaged`` line naming it (the listing goes on)."""
    try:
        return _results_entry(fs, path, contents)
    except StorageError as exc:
        return RunEntry(
            run_id=None,
            model=None,
            date_id=results_date_id(path),
            status="damaged",
            tasks=0,
            samples=None,
            headline=None,
            results=None,
            run_dir=None,
            started=None,
            note=str(exc),
        )


def _results_entry(fs: Any, path: str, contents: dict[str, dict[str, Any]] | None) -> RunEntry:
    data = read_json(fs, path)
    if contents is not None:
        contents[display(fs, path)] = data
    config = data.get("config_general") or {}
    counts = sample_counts(data)
    incomplete = incomplete_tasks(data)
    note = describe_incomplete(incomplete) if incomplete else ""
    section = data.get("evalstream") or {}
    if section.get("partial"):
        note = f"partial: {note}" if note else "partial"
    return RunEntry(
        merge_of=(section.get("merged") or {}).get("run"),
        run_id=None,
        model=config.get("model_name"),
        date_id=results_date_id(path),
        status="saved",
        tasks=len(task_names(data)),
        samples=sum(counts.values()) if counts else None,
        headline=headline(data),
        results=display(fs, path),
        run_dir=None,
        started=config.get("start_time"),
        note=note,
    )


def _key(path: str) -> tuple[str, str]:
    """Results files are matched to run folders by model folder and file name."""
    p = Path(path)
    return p.parent.name, p.name


def run_state(fs: Any, folder: str, status: RunStatus) -> tuple[str, str]:
    """(state as ``ls`` shows it, a note): a ``running`` run whose lock nobody holds is ``dead``."""
    if status.state != "running":
        return status.state, ""
    if not isinstance(fs, LocalFileSystem):
        return "running", f"on {status.host}: cannot check from here"
    if alive(Path(folder), status):
        holder = read_holder(Path(folder))  # the live run, or a recover working on it
        return "running", holder.describe() if holder is not None else f"pid {status.pid}"
    return "dead", f"pid {status.pid} holds it no more: evalstream recover"


def read_status_of(fs: Any, folder: str) -> tuple[RunStatus | None, str]:
    """The status marker of ``folder`` (None if absent), or why it could not be read."""
    path = f"{folder}/status.json"
    try:
        if not fs.exists(path):
            return None, ""
        return msgspec.json.decode(fs.cat_file(path), type=RunStatus), ""
    except (msgspec.DecodeError, OSError) as exc:
        return None, f"{display(fs, path)} cannot be read: {exc}"


def _folder_entry(fs: Any, folder: str) -> tuple[RunEntry, RunStatus | None]:
    status, damage = read_status_of(fs, folder)
    state, note = run_state(fs, folder, status) if status else ("dead", "no status marker")
    if damage:
        state, note = "damaged", damage
    entry = RunEntry(
        run_id=status.run_id if status else Path(folder).name,
        model=None,
        date_id=None,
        status=state,
        tasks=0,
        samples=None,
        headline=None,
        results=status.results_path if status else None,
        run_dir=display(fs, folder),
        started=status.start_time if status else None,
        note=note,
    )
    if status is not None and status.state == "resumed":
        entry.note = f"resumed by {status.successor}"
    journal = f"{folder}/journal"
    if not status or status.state not in ("saved", "recovered", "resumed"):
        if isinstance(fs, LocalFileSystem) and fs.isdir(journal):
            peek = peek_journal(Path(journal))
            entry.model = peek.model_name
            entry.tasks = len(peek.samples)
            entry.samples = peek.total_samples
            if peek.reached_save and entry.status == "dead":
                entry.note += "; died while saving"
        elif entry.status in RECOVERABLE:
            entry.note = "no journal left: nothing to recover"
        elif damage and fs.isdir(journal):
            entry.note += "; its journal is kept"
    return entry, status


def _merge(folder: RunEntry, saved: RunEntry) -> RunEntry:
    """A run folder joined with the results file it names."""
    return msgspec.structs.replace(
        saved,
        run_id=folder.run_id,
        status=folder.status,
        run_dir=folder.run_dir,
        started=folder.started or saved.started,
        note="; ".join(n for n in (folder.note, saved.note) if n),
    )


def _sharded_entry(
    fs: Any, root: str, output_dir: str, run: ShardedRun, saved: dict[tuple[str, str], RunEntry]
) -> RunEntry:
    """One line for a sharded run, joined with the results of its last merge (taken out of
    ``saved``): ``saved`` when that merge read the shards as they are, ``sharded`` before."""
    entry = RunEntry(
        run_id=run.run, model=run.model, date_id=None, status="sharded", tasks=run.tasks,
        samples=sum(s.samples for s in run.shards), headline=None, results=None,
        run_dir=None, started=run.started,
    )  # fmt: skip
    merged = saved.pop(_key(run.merged_results), None) if run.merged_results else None
    if merged is not None:
        entry = msgspec.structs.replace(merged, run_id=run.run, started=run.started)
    entry.status = "saved" if run.up_to_date else "sharded"
    # the shards' note says the merge was partial: keep only the results' incomplete tasks
    tasks = merged.note.removeprefix("partial").removeprefix(": ") if merged else ""
    entry.note = "; ".join(n for n in (run.describe(output_dir), tasks) if n)
    entry.shard = f"{len(run.shards)} shards"
    entry.run_dir = display(fs, f"{root}/{SHARDS}/{run.run}")
    return entry


def list_runs(
    output_dir: str, *, contents: dict[str, dict[str, Any]] | None = None
) -> list[RunEntry]:
    """Every run in ``output_dir``, oldest first (blocking); ConfigError if it is no folder.

    ``contents``, when given, is filled with each readable results file's parsed content under
    its ``RunEntry.results`` name, for a caller that needs more of it than the listing keeps
    (``query``): each file is read once.
    """
    fs, root = filesystem(output_dir)
    if not fs.exists(root):
        raise ConfigError(f"{output_dir} does not exist")
    if not fs.isdir(root):
        raise ConfigError(f"{output_dir} is a file, not an output folder")
    files = {_key(p): p for p in sorted(fs.glob(f"{root}/{RESULTS_GLOB}")) if fs.isfile(p)}
    saved = {key: _results_entry_or_damage(fs, path, contents) for key, path in files.items()}
    folders: list[tuple[RunEntry, RunStatus | None]] = []
    attempts: dict[str, ShardAttempt] = {}  # shard attempts' local folders, not runs of their own
    attempt_states: dict[str, str] = {}
    if fs.isdir(f"{root}/.evalstream"):
        for folder in sorted(fs.ls(f"{root}/.evalstream", detail=False)):
            folder = str(folder).rstrip("/")
            # a run folder has a status marker or a journal (not, e.g., .evalstream/shards)
            if fs.exists(f"{folder}/status.json") or fs.isdir(f"{folder}/journal"):
                entry, status = _folder_entry(fs, folder)
                attempt = folder_attempt(status, entry.status) if status else None
                if attempt is not None:
                    attempts[attempt.attempt] = attempt
                    attempt_states[attempt.attempt] = entry.status
                else:
                    folders.append((entry, status))
    entries = [
        _sharded_entry(fs, root, output_dir, run, saved)
        for run in sharded_runs(fs, root, attempts, attempt_states)
    ]
    by_results: dict[tuple[str, str], list[RunEntry]] = {}
    for entry, status in folders:
        if status is not None and status.results_path and _key(status.results_path) in saved:
            by_results.setdefault(_key(status.results_path), []).append(entry)
            continue
        if status is not None and status.results_path:
            entry.note = f"results file {status.results_path} is gone"
        entries.append(entry)
    for key, entry in saved.items():
        if entry.merge_of:
            entry.note = "; ".join(
                n for n in (f"a merge of sharded run {entry.merge_of}", entry.note) if n
            )
        claimed = by_results.get(key, [])
        # a recovery saves through a fresh run folder: the dead run's folder names the run
        owner = next((e for e in claimed if e.status == "recovered"), None)
        owner = owner or (claimed[0] if claimed else None)
        entries.append(_merge(owner, entry) if owner else entry)
    entries.sort(key=lambda e: (e.started or 0.0, e.date_id or "", e.run_id or ""))
    return entries
