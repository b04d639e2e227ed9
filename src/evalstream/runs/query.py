"""SQL over every run of an output folder (a local path or an fsspec URL), on embedded DuckDB.

Three views: ``runs`` (what ``evalstream ls`` lists), ``results`` (each run's task, metric,
value and stderr, as ``show`` reads them) and ``samples`` (the details rows of every saved run,
with its ``run_id`` and ``task``). ``runs`` and ``results`` are small and built in Python from
the catalog and the results files; ``samples`` is DuckDB's ``read_parquet`` over the details
files, so a query reads only the columns and row groups it needs and the rows never pass
through Python. Files of both details layouts, and of runs whose metrics differ, are read
together by column name (``union_by_name``): a column a file lacks is NULL in its rows.

A remote folder is read through its fsspec filesystem, registered with DuckDB: DuckDB's own
``httpfs`` extension would be downloaded at run time, which a machine without internet (or with
a pinned environment) cannot do. Only saved runs (saved, recovered, merged) have details files;
a live or dead run is in ``runs`` only, until it is saved or recovered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from evalstream._errors import ConfigError, QueryError
from evalstream._naming import details_dir, details_glob, details_task, results_root
from evalstream.runs.catalog import display, filesystem, list_runs, read_json
from evalstream.stats.rows import metric_rows

if TYPE_CHECKING:
    import duckdb

    from evalstream.runs.catalog import RunEntry

VIEWS = ("runs", "results", "samples")

_RUNS = pa.schema(
    [
        ("run_id", pa.string()), ("model", pa.string()), ("date_id", pa.string()),
        ("status", pa.string()), ("tasks", pa.int64()), ("samples", pa.int64()),
        ("headline_metric", pa.string()), ("headline_value", pa.float64()),
        ("headline_stderr", pa.float64()), ("results_path", pa.string()),
        ("run_dir", pa.string()), ("started", pa.float64()), ("shard", pa.string()),
        ("note", pa.string()),
    ]
)  # fmt: skip
_RESULTS = pa.schema(
    [
        ("run_id", pa.string()), ("model", pa.string()), ("date_id", pa.string()),
        ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
        ("stderr", pa.float64()),
    ]
)  # fmt: skip
_FILES = pa.schema(
    [
        ("file", pa.string()), ("run_id", pa.string()), ("model", pa.string()),
        ("date_id", pa.string()), ("task", pa.string()),
    ]
)  # fmt: skip


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # an optional extra
        raise ConfigError(
            "querying runs needs DuckDB: pip install 'evalstream[query]' (or pip install duckdb)"
        ) from exc
    return duckdb


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None


def _run_row(e: RunEntry) -> dict[str, Any]:
    h = e.headline
    return {
        "run_id": e.run_id, "model": e.model, "date_id": e.date_id, "status": e.status,
        "tasks": e.tasks, "samples": e.samples, "headline_metric": h.metric if h else None,
        "headline_value": _number(h.value) if h else None,
        "headline_stderr": _number(h.stderr) if h else None, "results_path": e.results,
        "run_dir": e.run_dir, "started": e.started, "shard": e.shard, "note": e.note,
    }  # fmt: skip


class _Tables:
    """The views' inputs: the runs table, the results rows and the details files of each run."""

    def __init__(self, output_dir: str) -> None:
        self.fs: Any = filesystem(output_dir)[0]
        self.local = isinstance(self.fs, LocalFileSystem)
        contents: dict[str, dict[str, Any]] = {}
        entries = list_runs(output_dir, contents=contents)  # ConfigError when it is no folder
        self.runs = pa.Table.from_pylist([_run_row(e) for e in entries], schema=_RUNS)
        results: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        for e in entries:
            if e.results is None or e.date_id is None:
                continue
            path = e.results if self.local else self.fs._strip_protocol(e.results)
            if not self.fs.exists(path):
                continue  # a run folder whose results file is gone
            data = contents.get(e.results) or read_json(self.fs, path)
            model = (data.get("config_general") or {}).get("model_name") or e.model or "?"
            ident = {"run_id": e.run_id, "model": model, "date_id": e.date_id}
            for row in metric_rows(data.get("results") or {}):
                value, stderr = _number(row.value), _number(row.stderr)
                results.append({**ident, "task": row.task, "metric": row.metric,
                                "value": value, "stderr": stderr})  # fmt: skip
            folder = f"{results_root(path, model)}/{details_dir(model, e.date_id)}"
            for file in sorted(self.fs.glob(f"{folder}/{details_glob(e.date_id)}")):
                task = details_task(str(file).rsplit("/", 1)[-1], e.date_id)
                if task is not None:
                    files.append({**ident, "task": task, "file": self._url(str(file))})
        self.results = pa.Table.from_pylist(results, schema=_RESULTS)
        self.files = pa.Table.from_pylist(files, schema=_FILES)

    def _url(self, path: str) -> str:
        """A details file as DuckDB opens it: a local path, or a URL of the registered fs."""
        return path if self.local else str(display(self.fs, path))


def connect(output_dir: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``runs``, ``results`` and ``samples`` views of
    ``output_dir`` (blocking: it lists the runs and reads their results files, not the details)."""
    db = _duckdb()
    tables = _Tables(output_dir)
    con: duckdb.DuckDBPyConnection = db.connect(":memory:")
    if not tables.local:  # a fresh connection: nothing registered yet
        con.register_filesystem(tables.fs)
    con.register("_runs", tables.runs)
    con.register("_results", tables.results)
    con.register("_files", tables.files)
    con.execute("CREATE VIEW runs AS SELECT * FROM _runs")
    con.execute("CREATE VIEW results AS SELECT * FROM _results")
    urls = tables.files.column("file").to_pylist()
    if not urls:  # no saved run: an empty view, still queryable by its key columns
        con.execute("CREATE VIEW samples AS SELECT run_id, model, date_id, task FROM _files")
        return con
    listing = ", ".join("'" + u.replace("'", "''") + "'" for u in urls)
    con.execute(
        "CREATE VIEW samples AS SELECT f.run_id, f.model, f.date_id, f.task, "
        "d.* EXCLUDE (filename) "
        f"FROM read_parquet([{listing}], union_by_name = true, filename = true) AS d "
        "JOIN _files AS f ON d.filename = f.file"
    )
    return con


def query(output_dir: str, sql: str) -> pa.Table:
    """The result of ``sql`` over the ``runs``, ``results`` and ``samples`` views of every run
    in ``output_dir``, as a pyarrow Table (``.to_pandas()``, ``polars.from_arrow``).

    A query DuckDB refuses (a syntax error, a column or table that does not exist) raises
    QueryError with DuckDB's message, which names what is wrong and the candidates.
    """
    con = connect(output_dir)
    db = _duckdb()
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement with no result (CREATE, SET)
            return pa.table({})
        # to_arrow_table since DuckDB 1.4 (fetch_arrow_table, deprecated since, before)
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        table: pa.Table = fetch()
    except db.Error as exc:
        raise QueryError(f"query failed: {exc} (views: {', '.join(VIEWS)})") from None
    finally:
        con.close()
    return table


def runs_df(output_dir: str) -> pa.Table:
    """Every run of ``output_dir``, as ``evalstream ls`` lists it (the ``runs`` view)."""
    return query(output_dir, "SELECT * FROM runs")


def results_df(output_dir: str) -> pa.Table:
    """Every saved run's task, metric, value and stderr (the ``results`` view)."""
    return query(output_dir, "SELECT * FROM results")


def samples_df(output_dir: str) -> pa.Table:
    """Every details row of every saved run, with its run and task (the ``samples`` view).

    This loads them all; a SQL ``query`` reads only the columns and row groups it needs."""
    return query(output_dir, "SELECT * FROM samples")
