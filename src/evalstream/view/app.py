"""The live view as an ASGI app (Starlette): ``evalstream view`` serves it, a server mounts it.

``view_app(output_dir, runtime=...)`` lists the runs of ``output_dir`` (``runs/catalog.py``, as
``evalstream ls``: local folders and fsspec URLs) and the live runs of ``runtime`` (this
process's, whatever folder they write to). Routes, all GET, relative to where it is mounted:

- ``/``: the page (``static/index.html``); ``/static/...``: its script, styles and uPlot;
- ``/api/runs``: ``{"output_dir", "runs": [...]}``, each run as ``ls --json`` shows it plus
  ``key`` (what the other routes take as ``run``) and ``live`` (a run of this process);
- ``/api/events?run=KEY``: server-sent events of the run's progress (``events.py``);
- ``/api/samples?run=KEY&task=T[&correct=1|0][&metric=M][&q=TEXT][&page=N][&size=N]``: one
  page of a saved run's details (``samples.py``).

A bad parameter is answered 400 with ``{"error": ...}`` saying which and what it takes; a run
the view does not know, 404. Nothing is loaded from the network: the page's files are here.
"""

from __future__ import annotations

import functools
import time
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evalstream._errors import (
    ConfigError,
    EvalStreamError,
    StorageError,
    UnknownRunError,
    ViewRequestError,
)
from evalstream.runs.catalog import display, filesystem, list_runs
from evalstream.runs.loading import LoadedRun
from evalstream.view import events
from evalstream.view.samples import SampleFilter, SamplePage, parse_filter, read_page

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from starlette.requests import Request

    from evalstream.run.runtime import LiveRun, Runtime
    from evalstream.runs.catalog import RunEntry

STATIC = files("evalstream.view") / "static"
_LISTING_TTL = 1.0  # seconds a folder listing is reused (a page's requests come in bursts)


def key_of(entry: RunEntry) -> str:
    """The id the view's routes take: the run id, else the results file (a file copied alone)."""
    return entry.run_id or f"results:{entry.results}"


class Catalog:
    """The runs the view shows: the output folder's (listed at most once a second) and the
    runtime's live ones."""

    def __init__(self, output_dir: str | None, runtime: Runtime | None) -> None:
        self.output_dir = output_dir
        self.runtime = runtime
        self._listed: tuple[float, list[RunEntry]] | None = None

    def live(self) -> dict[str, LiveRun]:
        """This process's started runs whose tracker reports progress."""
        if self.runtime is None:
            return {}
        return {r.run_id: r for r in self.runtime.live_runs() if r.progress is not None}

    async def listed(self) -> list[RunEntry]:
        """The output folder's runs, oldest first (ConfigError if it is not a folder)."""
        if self.output_dir is None:
            return []
        now = time.monotonic()
        if self._listed is None or now - self._listed[0] > _LISTING_TTL:
            entries = await anyio.to_thread.run_sync(list_runs, self.output_dir)
            self._listed = (time.monotonic(), entries)
        return self._listed[1]

    async def rows(self) -> list[dict[str, Any]]:
        """Every run as the page's JSON: the folder's, then live runs of other folders."""
        live = self.live()
        out = []
        for entry in await self.listed():
            row = msgspec.to_builtins(entry)
            row["key"] = key_of(entry)
            run = live.get(row["key"])
            row["live"] = run is not None
            if run is not None and run.progress is not None:  # fresher than its journal
                row["samples"] = run.progress().samples
            out.append(row)
        seen = {row["key"] for row in out}
        for run_id, run in live.items():
            if run_id not in seen and run.progress is not None:
                out.append({"key": run_id, "run_id": run_id, "status": "running", "live": True,
                            "run_dir": str(run.workdir), "model": None,
                            "samples": run.progress().samples})  # fmt: skip
        return out

    async def entry(self, key: str) -> RunEntry:
        """The listed run ``key`` (UnknownRunError if none)."""
        for entry in await self.listed():
            if key_of(entry) == key and entry.status != "running":
                return entry
        self._listed = None  # a run that started or ended since the last listing: list again
        for entry in await self.listed():
            if key_of(entry) == key:
                return entry
        raise UnknownRunError(f"no run {key!r} in {self.output_dir or 'this view'}: see /api/runs")


def _error(exc: EvalStreamError) -> JSONResponse:
    if isinstance(exc, UnknownRunError):
        status = 404
    elif isinstance(exc, ViewRequestError):
        status = 400
    else:  # the folder or a file in it cannot be read as asked (ConfigError, StorageError)
        status = 422
    return JSONResponse({"error": str(exc)}, status)


def _run_param(request: Request) -> str:
    key = request.query_params.get("run") or ""
    if not key:
        raise ViewRequestError("run is required: a key from /api/runs")
    return key


@functools.cache
def _index_html() -> str:
    """The page, a file of the package: read once per process, not on the loop per request."""
    return (STATIC / "index.html").read_text(encoding="utf-8")


def view_app(
    output_dir: str | None = None, *, runtime: Runtime | None = None, interval: float = 0.5
) -> Starlette:
    """The live view over the runs of ``output_dir`` (a path or fsspec URL) and the live runs
    of ``runtime``; mount it in a server (``Mount("/view", app=view_app(...))``) or serve it
    (``evalstream view``). ``interval``: seconds between progress events."""
    if output_dir is None and runtime is None:
        raise ConfigError("view_app needs an output_dir, a runtime, or both")
    if interval <= 0:
        raise ConfigError("interval must be positive (seconds)")
    catalog = Catalog(output_dir, runtime)

    async def page(request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/") + "/"
        return HTMLResponse(_index_html().replace("<head>", f'<head><base href="{base}">', 1))

    async def runs(request: Request) -> Response:
        try:
            rows = await catalog.rows()
        except EvalStreamError as exc:
            return _error(exc)
        return JSONResponse({"output_dir": output_dir, "runs": rows})

    async def progress(request: Request) -> Response:
        try:
            key = _run_param(request)
            updates = await _updates(catalog, key, interval)
        except EvalStreamError as exc:
            return _error(exc)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            events.stream(updates), media_type="text/event-stream", headers=headers
        )

    async def samples(request: Request) -> Response:
        try:
            flt = parse_filter(request.query_params)
            run = await _saved(catalog, _run_param(request), flt.task)
            result = await anyio.to_thread.run_sync(_page, run, flt)
        except EvalStreamError as exc:
            return _error(exc)
        return Response(msgspec.json.encode(result), media_type="application/json")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/runs", runs),
            Route("/api/events", progress),
            Route("/api/samples", samples),
            Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        ]
    )


async def _updates(catalog: Catalog, key: str, interval: float) -> AsyncGenerator[dict[str, Any]]:
    """Where ``key``'s snapshots come from: this process, its folder, or its results file."""
    live = catalog.live().get(key)
    if live is not None and not (live.ended is not None and live.ended.is_set()):
        return events.process_updates(live, interval)
    entry = await catalog.entry(key)
    if entry.results is None and entry.run_dir is not None and entry.shard is None:
        fs, folder = filesystem(entry.run_dir)
        return events.folder_updates(events.FolderWatch(fs, folder, key), interval)
    snapshot = await anyio.to_thread.run_sync(events.saved_snapshot, entry)
    return _once(snapshot)


async def _once(snapshot: dict[str, Any]) -> AsyncGenerator[dict[str, Any]]:
    yield snapshot


async def _saved(catalog: Catalog, key: str, task: str) -> LoadedRun:
    """The saved run ``key`` with its details of ``task`` (ViewRequestError when it has none)."""
    entry = await catalog.entry(key)
    if entry.results is None:
        raise ViewRequestError(
            f"run {key} is {entry.status}: its samples are browsable once it is saved"
            " (a live run's details are journal segments until then)"
        )
    fs, path = filesystem(entry.results)
    run = await anyio.to_thread.run_sync(LoadedRun, fs, path, entry.run_dir)
    if task not in run.tasks():
        raise ViewRequestError(
            f"run {key} has no task {task!r}; its tasks: {', '.join(run.tasks())}"
        )
    return run


def _page(run: LoadedRun, flt: SampleFilter) -> SamplePage:
    """One page of ``run``'s details (blocking)."""
    path = run.details_path(flt.task)
    if not run.fs.exists(path):
        raise ViewRequestError(f"task {flt.task} of this run was saved without details")
    try:
        with run.fs.open(path, "rb") as handle:
            return read_page(pq.ParquetFile(handle), flt)
    except (OSError, pa.ArrowException) as exc:  # gone or damaged since it was listed
        raise StorageError(f"cannot read {display(run.fs, path)}: {exc}") from exc
