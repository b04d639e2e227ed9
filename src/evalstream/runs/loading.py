"""One saved run, found from what a user types: a results file, a run folder, a run id, or an
output folder.

``RUN`` may be a ``results_*.json`` file, a run folder (``OUTPUT_DIR/.evalstream/RUN_ID``, whose
status marker names its results file), a run id as ``evalstream ls`` prints it (looked up in
``OUTPUT_DIR/.evalstream``, the output folder given, else the current folder), or an output
folder with ``latest=True`` (its newest saved run). Details files are found beside the results,
as ``save()`` wrote them: ``details/MODEL/DATE/details_TASK_DATE.parquet``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow.parquet as pq

from evalstream._errors import ConfigError, RunStateError
from evalstream._naming import details_path, results_date_id, results_root
from evalstream.runs.catalog import (
    display,
    filesystem,
    list_runs,
    read_json,
    read_status_of,
    run_state,
    task_names,
)
from evalstream.runs.sharded import SHARDS, attempt_of

if TYPE_CHECKING:
    import pyarrow as pa

    from evalstream.runs.catalog import RunEntry


class LoadedRun:
    """A saved run's results, and where its details files are."""

    def __init__(self, fs: Any, results_path: str, run_dir: str | None = None) -> None:
        self.fs = fs
        self.results_path = results_path
        self.results: dict[str, Any] = read_json(fs, results_path)
        config = self.results.get("config_general") or {}
        self.model_name: str = config.get("model_name") or "?"
        self.date_id = results_date_id(results_path)
        self.run_dir = run_dir
        self.root = results_root(results_path, self.model_name)

    @property
    def label(self) -> str:
        """``model @ date`` for tables and plot legends."""
        return f"{self.model_name} @ {self.date_id}"

    @property
    def where(self) -> str:
        """The results file as the user would type it."""
        return display(self.fs, self.results_path)

    def tasks(self) -> list[str]:
        """The evaluated tasks, without the derived rows."""
        return task_names(self.results)

    def details_path(self, task: str) -> str:
        """Where ``save()`` wrote the details of ``task``."""
        return f"{self.root}/{details_path(self.model_name, self.date_id, task)}"

    def read_details(
        self, task: str, columns: list[str] | None = None, *, limit: int | None = None
    ) -> pa.Table | None:
        """The details of ``task`` (the first ``limit`` rows), or None without a details file.

        A file in lighteval 0.13's layout (``doc``, ``metric``, ``model_response``) is read as
        the flat ``columns`` asked for, so every tool reads both layouts.
        """
        path = self.details_path(task)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            file = pq.ParquetFile(handle)
            names = file.schema_arrow.names
            nested = columns is not None and set(_NESTED) <= set(names)
            wanted = list(_NESTED) if nested else [c for c in columns or names if c in names]
            table = _read(file, wanted, limit)
        return _as_flat(table, columns) if nested and columns is not None else table


_NESTED = ("doc", "metric", "model_response")


def _read(file: pq.ParquetFile, wanted: list[str], limit: int | None) -> pa.Table:
    if limit is None:
        return file.read(columns=wanted)
    import pyarrow as pa

    batches = []
    rows = 0
    for batch in file.iter_batches(batch_size=min(limit, 1024), columns=wanted):
        batches.append(batch.slice(0, limit - rows))
        rows += batches[-1].num_rows
        if rows >= limit:
            break
    schema = pa.schema([file.schema_arrow.field(c) for c in wanted])
    return pa.Table.from_batches(batches, schema=schema)


def metrics_dict(value: Any) -> dict[str, Any]:
    """One row's metrics as a dict, from either form the details store them in: a struct (a
    dict already), or a wide task's ``{name, value}`` pairs (over 256 metric names; a value is
    JSON text when the task's values were not all numbers)."""
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    return {
        pair["name"]: msgspec.json.decode(v) if isinstance(v := pair["value"], str) else v
        for pair in value
    }


def _as_flat(table: pa.Table, columns: list[str]) -> pa.Table:
    """The flat columns of a lighteval-layout table: ``example`` is the doc's query,
    ``full_prompt`` the response's ``input``, ``predictions`` its texts (else logprobs)."""
    import pyarrow as pa

    def rows(name: str) -> list[dict[str, Any]]:  # a struct, or JSON text when types were mixed
        values = table.column(name).to_pylist()
        return [msgspec.json.decode(v) if isinstance(v, str) else v or {} for v in values]

    docs, responses = rows("doc"), rows("model_response")
    metrics = table.column("metric").to_pylist()
    golds = [
        [g] if isinstance(g, int) else list(g or []) for g in (d.get("gold_index") for d in docs)
    ]
    flat: dict[str, list[Any]] = {
        "example": [d.get("query") for d in docs],
        "full_prompt": [r.get("input") for r in responses],
        "input_tokens": [[r.get("input_tokens") or []] for r in responses],
        "metrics": [metrics_dict(m) or None for m in metrics],
        "predictions": [r.get("text") or r.get("logprobs") or [] for r in responses],
        "choices": [d.get("choices") or [] for d in docs],
        "gold_index": golds,
        "gold": [
            [d["choices"][g] for g in gs if 0 <= g < len(d.get("choices") or [])]
            for d, gs in zip(docs, golds, strict=True)
        ],
    }
    return pa.table({c: _array(flat[c]) for c in columns if c in flat})


def _array(values: list[Any]) -> pa.Array:
    """``values`` as Arrow infers them, or as JSON text when they mix types (chat inputs among
    prompts, texts among logprobs)."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else msgspec.json.encode(v).decode() for v in values])


def _from_run_folder(fs: Any, path: str, target: str) -> LoadedRun:
    status, damage = read_status_of(fs, path)
    if status is None:
        raise RunStateError(f"the run in {target} is damaged: {damage or 'no status marker'}")
    if status.shard is not None:
        raise RunStateError(attempt_of(status, target))
    if status.state in ("saved", "recovered") and status.results_path:
        results_fs, results_path = filesystem(status.results_path)
        if not results_fs.exists(results_path):
            raise ConfigError(f"{target} names the results file {status.results_path}, gone")
        return LoadedRun(results_fs, results_path, run_dir=display(fs, path))
    state, _ = run_state(fs, path, status)
    hint = {
        "running": "it has no results until it saves",
        "resumed": f"it was resumed by {status.successor}: show that run",
    }.get(state, "run `evalstream recover` on it first")
    raise RunStateError(f"the run in {target} is {state}; {hint}")


def _by_run_id(target: str, output_dir: str | None) -> LoadedRun | None:
    """The saved run of run id ``target`` in ``output_dir`` (else the current folder): a run
    folder, or a sharded run's last merge; None when no run has that id."""
    if "/" in target or "://" in target or target in (".", ".."):
        return None
    fs, root = filesystem(output_dir or ".")
    folder = f"{root}/.evalstream/{target}"
    if fs.exists(f"{folder}/status.json"):
        return _from_run_folder(fs, folder, target)
    if not fs.isdir(f"{root}/{SHARDS}/{target}"):
        return None
    sharded = [e for e in list_runs(output_dir or ".") if e.shard and e.run_id == target]
    if sharded and sharded[0].results:
        return _loaded(sharded[0])
    note = sharded[0].note if sharded else "no shard of it uploaded a manifest"
    raise RunStateError(f"{target} is a sharded run with no merged results: {note}")


def resolve_run(target: str, *, latest: bool = False, output_dir: str | None = None) -> LoadedRun:
    """The saved run ``target`` names (blocking); raises ConfigError saying what is there.

    A ``target`` that is no path is taken as a run id of ``output_dir`` (default: the current
    folder), as ``evalstream ls`` prints it.
    """
    fs, path = filesystem(target)
    if not fs.exists(path):
        found = _by_run_id(target, output_dir)
        if found is not None:
            return found
        if "/" in target or "://" in target:
            raise ConfigError(f"{target} does not exist")
        where = output_dir if output_dir not in (None, ".") else "the current folder"
        raise ConfigError(
            f"{target} does not exist, nor is it a run id of {where}"
            f" (`evalstream ls {output_dir or '.'}` lists them; --output-dir names the folder)"
        )
    if fs.isfile(path):
        if not path.endswith(".json"):
            raise ConfigError(f"{target} is not a results_*.json file, a run or output folder")
        return LoadedRun(fs, path)
    if fs.exists(f"{path}/status.json"):
        return _from_run_folder(fs, path, target)
    entries = _saved_entries(target)
    if not latest:
        newest = entries[-1]
        example = f"{newest.run_id} --output-dir {target}" if newest.run_id else newest.results
        raise ConfigError(
            f"{target} is an output folder with {len(entries)} saved run(s); pass --latest "
            f"(show, compare, push, report) or one of them, e.g. {example} (evalstream ls "
            "lists them)"
        )
    return _loaded(entries[-1])


def _saved_entries(target: str) -> list[RunEntry]:
    """The saved runs of the output folder ``target``, oldest first; ConfigError if none."""
    fs, path = filesystem(target)
    if not (fs.isdir(f"{path}/results") or fs.isdir(f"{path}/.evalstream")):
        raise ConfigError(
            f"{target} holds no evalstream run: pass a results_*.json file, a run folder "
            "(OUTPUT_DIR/.evalstream/RUN_ID), a run id or an output folder with --latest"
        )
    entries = [e for e in list_runs(target) if e.results]
    if not entries:
        raise ConfigError(f"the output folder {target} holds no saved run yet")
    return entries


def _loaded(entry: RunEntry) -> LoadedRun:
    assert entry.results is not None
    results_fs, results_path = filesystem(entry.results)
    return LoadedRun(results_fs, results_path, run_dir=entry.run_dir)


def latest_pair(output_dir: str) -> tuple[LoadedRun, LoadedRun]:
    """The newest saved run of ``output_dir`` and the newest before it of the same model
    (blocking): "this run against the last one", what ``compare OUTPUT_DIR --latest`` shows."""
    entries = _saved_entries(output_dir)
    newest = entries[-1]
    before = [e for e in entries[:-1] if e.model == newest.model]
    if not before:
        raise ConfigError(
            f"{output_dir} holds one saved run of {newest.model} ({newest.run_id or newest.results}):"
            " --latest compares the two newest runs of the same model; pass two runs instead"
        )
    return _loaded(before[-1]), _loaded(newest)
