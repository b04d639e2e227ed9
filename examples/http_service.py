"""An async HTTP service that records evaluation runs sent to it (Starlette, served by uvicorn).

One ``evalstream.Runtime`` lives as long as the app (its lifespan); every run gets its own
``EvaluationTracker`` on it, hosted by a task of the app's task group, so starting a run costs
milliseconds and one run's failure never touches another. Routes:

- ``POST /runs`` ``{"model": str, "tasks": [str, ...]}``: start a run; answers ``{"run_id"}``.
- ``POST /runs/{run_id}/samples`` ``[{"task", "doc": {...}, "outputs": [{...}], "metrics"}]``:
  log samples (``doc`` and ``outputs`` take the fields of ``Doc`` and ``ModelResponse``); a bad
  sample is answered 422 with evalstream's message.
- ``GET /runs/{run_id}/progress``: server-sent events, one ``tracker.progress()`` snapshot as
  JSON per event, until the run ends.
- ``POST /runs/{run_id}/save``: save; answers the results path and details paths.

On shutdown (uvicorn handles SIGTERM) the lifespan calls ``runtime.shutdown()``: every run not
saved is journaled and marked cancelled, for ``evalstream recover``.

Run it: ``uvicorn --factory http_service:create_app --app-dir examples`` (``OUTPUT_DIR``
environment variable: where runs are written, default ``./eval-runs``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from evalstream import (
    Doc,
    EvalStreamError,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    Runtime,
    TaskSpec,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup
    from starlette.requests import Request


class Service:
    """The live runs of the app, each hosted by a task that keeps its tracker open."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.runs: dict[str, EvaluationTracker] = {}
        self._ended: dict[str, anyio.Event] = {}
        self.runtime: Runtime | None = None
        self.tg: TaskGroup | None = None

    async def start_run(self, model: str, tasks: list[str]) -> str:
        assert self.runtime is not None and self.tg is not None
        run_id = secrets.token_hex(4)
        tracker = EvaluationTracker(f"{self.output_dir}/{run_id}", runtime=self.runtime)
        self._ended[run_id] = ended = anyio.Event()

        async def host(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            try:
                async with tracker:
                    await tracker.log_model_info(ModelInfo(model_name=model))
                    await tracker.log_tasks([TaskSpec(name=t) for t in tasks])
                    task_status.started()
                    await ended.wait()  # saved (or the app stopping cancels this)
            finally:
                self.runs.pop(run_id, None)

        await self.tg.start(host)
        self.runs[run_id] = tracker
        return run_id

    async def save(self, run_id: str) -> dict[str, Any]:
        tracker = self.runs[run_id]
        try:
            result = await tracker.save()
        finally:
            self._ended.pop(run_id).set()
        return {"results_path": result.results_path, "details_paths": result.details_paths}


def _run(service: Service, request: Request) -> EvaluationTracker | JSONResponse:
    tracker = service.runs.get(request.path_params["run_id"])
    return tracker if tracker is not None else JSONResponse({"error": "no such run"}, 404)


def create_app(output_dir: str | None = None) -> Starlette:
    """The app; ``output_dir`` defaults to $OUTPUT_DIR or ./eval-runs."""
    service = Service(output_dir or os.environ.get("OUTPUT_DIR", "eval-runs"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Runtime() as runtime, anyio.create_task_group() as tg:
            service.runtime, service.tg = runtime, tg
            try:
                yield
            finally:
                await runtime.shutdown("the HTTP service is stopping")
                tg.cancel_scope.cancel()

    async def start(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            run_id = await service.start_run(str(body["model"]), list(body["tasks"]))
        except (EvalStreamError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return JSONResponse({"run_id": run_id}, 201)

    async def samples(request: Request) -> JSONResponse:
        tracker = _run(service, request)
        if isinstance(tracker, JSONResponse):
            return tracker
        logged = 0
        try:
            for item in await request.json():
                await tracker.log_sample(
                    item["task"],
                    msgspec.convert(item["doc"], Doc),
                    [msgspec.convert(o, ModelResponse) for o in item["outputs"]],
                    item["metrics"],
                )
                logged += 1
        except (EvalStreamError, msgspec.ValidationError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc), "logged": logged}, 422)
        return JSONResponse({"logged": logged})

    async def progress(request: Request) -> StreamingResponse | JSONResponse:
        tracker = _run(service, request)
        if isinstance(tracker, JSONResponse):
            return tracker

        async def events() -> AsyncIterator[bytes]:
            async for snapshot in tracker.progress_updates(interval=0.2):
                yield b"data: " + msgspec.json.encode(snapshot) + b"\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def save(request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]
        if run_id not in service.runs:
            return JSONResponse({"error": "no such run"}, 404)
        try:
            return JSONResponse(await service.save(run_id))
        except EvalStreamError as exc:
            return JSONResponse({"error": str(exc)}, 422)

    return Starlette(
        routes=[
            Route("/runs", start, methods=["POST"]),
            Route("/runs/{run_id}/samples", samples, methods=["POST"]),
            Route("/runs/{run_id}/progress", progress),
            Route("/runs/{run_id}/save", save, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
