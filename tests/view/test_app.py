"""The live view for real: uvicorn on loopback, httpx as the client, runs logged meanwhile."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import uvicorn

from evalstream import (
    ConfigError,
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    Runtime,
    TaskSpec,
    view_app,
)
from evalstream.cli.main import main

from _runs import TASKS, make_run, saved_run

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette

RUNS_PY = Path(__file__).parents[1] / "_runs.py"


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` served by uvicorn on a free loopback port, and a client of it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await anyio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
        server.should_exit = True
    sock.close()


async def events(client: httpx.AsyncClient, key: str) -> AsyncIterator[tuple[str, Any]]:
    """The server-sent events of ``key``: (event name, decoded data)."""
    async with client.stream("GET", "/api/events", params={"run": key}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                yield name, json.loads(line[6:])


def _sample(i: int) -> tuple[str, Doc, list[ModelResponse], dict[str, float]]:
    doc = Doc(query=f"question {i}?", choices=["A", "B"], gold_index=0, id=str(i))
    return TASKS[i % 2], doc, [ModelResponse(result=[-0.5])], {"acc": float(i % 3 == 0)}


async def test_progress_events_arrive_as_a_run_of_this_process_logs(tmp_path: Path) -> None:
    """A run on the view's runtime: each batch logged shows up in the next events, then saved."""
    with anyio.fail_after(60):
        async with Runtime() as runtime:
            app = view_app(str(tmp_path), runtime=runtime, interval=0.05)
            async with (
                served(app) as client,
                EvaluationTracker(tmp_path, runtime=runtime, bootstrap_iters=0) as tracker,
            ):
                await tracker.log_model_info(ModelInfo(model_name="org/live"))
                await tracker.log_tasks([TaskSpec(name=t) for t in TASKS[:2]])
                listing = (await client.get("/api/runs")).json()["runs"]
                assert [(r["key"], r["live"]) for r in listing] == [(tracker.run_id, True)]
                seen: list[dict[str, Any]] = []
                logged = 0
                async for name, data in events(client, tracker.run_id):
                    if name == "end":
                        continue
                    assert name == "progress" and data["source"] == "process"
                    seen.append(data)
                    if data["samples"] < logged:  # an event from before the last batch
                        continue
                    if logged < 30:  # each batch must show before the next is logged
                        for i in range(logged, logged + 10):
                            await tracker.log_sample(*_sample(i))
                        logged += 10
                    elif data["state"] == "running":
                        await tracker.save()
            counts = [d["samples"] for d in seen]
            assert {10, 20, 30} <= set(counts) and counts == sorted(counts)
            assert seen[-1]["state"] == "saved" and seen[-1]["tasks"] == {
                TASKS[0]: 15,
                TASKS[1]: 15,
            }
            assert {"rate", "durable", "inboxes", "elapsed"} <= seen[-1].keys()


async def test_a_saved_run_is_one_event_with_its_results(tmp_path: Path) -> None:
    """A saved run: its counts and each metric's value and interval, then the end."""
    await make_run(tmp_path, 0.6, docs=30)
    async with served(view_app(str(tmp_path))) as client:
        listing = (await client.get("/api/runs")).json()
        assert listing["output_dir"] == str(tmp_path)
        (run,) = listing["runs"]
        assert run["status"] == "saved" and not run["live"]
        got = [e async for e in events(client, run["key"])]
    assert [name for name, _ in got] == ["progress", "end"]
    data = got[0][1]
    assert data["source"] == "saved" and data["samples"] == 90
    acc = data["results"][TASKS[0]]["acc"]
    assert acc["low"] < acc["value"] < acc["high"]


def _child(output_dir: Path, samples: int) -> tuple[subprocess.Popen[str], str]:
    """A run of another process that logged ``samples`` and waits (tests/_runs.py)."""
    child = subprocess.Popen(
        [sys.executable, str(RUNS_PY), str(output_dir), str(samples)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    workdir = child.stdout.readline().split(maxsplit=1)[1].strip()
    assert child.stdout.readline().strip() == "FLUSHED"
    return child, Path(workdir).name


async def test_a_run_of_another_process_is_read_from_its_folder(tmp_path: Path) -> None:
    """Another process's run: state and samples per task from its files; dead once killed."""
    child, run_id = _child(tmp_path, 30)
    try:
        with anyio.fail_after(60):
            async with served(view_app(str(tmp_path), interval=0.05)) as client:
                (run,) = (await client.get("/api/runs")).json()["runs"]
                assert (run["key"], run["status"], run["live"]) == (run_id, "running", False)
                got = []
                async for name, data in events(client, run_id):
                    got.append((name, data))
                    if len(got) == 2:  # the run seen alive twice: now it dies
                        child.send_signal(signal.SIGKILL)
                        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    first = got[0][1]
    assert (first["source"], first["state"], first["samples"]) == ("folder", "running", 30)
    assert first["tasks"] == dict.fromkeys(TASKS, 10) and first["model"] == "org/model"
    assert got[-2][1]["state"] == "dead" and got[-1][0] == "end"


async def test_live_runs_of_other_folders_are_listed(tmp_path: Path) -> None:
    """A runtime's run writing elsewhere is listed too, and streams from this process."""
    async with (
        Runtime() as runtime,
        EvaluationTracker(tmp_path / "elsewhere", runtime=runtime) as tracker,
    ):
        assert [r.run_id for r in runtime.live_runs()] == [tracker.run_id]
        (tmp_path / "here").mkdir()
        app = view_app(str(tmp_path / "here"), runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://view") as client:
            (run,) = (await client.get("/api/runs")).json()["runs"]
            assert run["key"] == tracker.run_id and run["live"]
            assert run["run_dir"] == str(tracker.workdir)
    assert runtime.live_runs() == []


async def test_unknown_runs_and_missing_parameters_are_answered_clearly(tmp_path: Path) -> None:
    """404 for a run the view does not list, 400 naming the parameter a request lacks."""
    await make_run(tmp_path, 0.6, docs=10)
    app = view_app(str(tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://view/") as client:
        answer = await client.get("/api/events", params={"run": "nope"})
        assert answer.status_code == 404 and "no run 'nope'" in answer.json()["error"]
        answer = await client.get("/api/events")
        assert answer.status_code == 400 and answer.json()["error"].startswith("run is required")
        page = await client.get("/")
        assert '<base href="/">' in page.text and "static/uPlot.iife.min.js" in page.text


async def test_mounted_under_a_prefix_the_page_links_below_it(tmp_path: Path) -> None:
    """Mounted at /view in a user's app, the page's base is /view/ and its files are served."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    await make_run(tmp_path, 0.6, docs=10)
    outer = Starlette(routes=[Mount("/view", app=view_app(str(tmp_path)))])
    async with served(outer) as client:
        page = await client.get("/view/")
        assert page.status_code == 200 and '<base href="/view/">' in page.text
        script = await client.get("/view/static/uPlot.iife.min.js")
        assert script.status_code == 200 and b"uPlot" in script.content[:200]
        assert (await client.get("/view/api/runs")).json()["runs"][0]["status"] == "saved"


def test_view_app_needs_something_to_show() -> None:
    """Neither a folder nor a runtime, or a non-positive interval: ConfigError at the call."""
    with pytest.raises(ConfigError, match="output_dir, a runtime"):
        view_app()
    with pytest.raises(ConfigError, match="interval"):
        view_app(".", interval=0)


def test_the_command_serves_the_folder_until_interrupted(tmp_path: Path) -> None:
    """``evalstream view OUT --port 0`` prints its address, serves, and on SIGINT stops as
    every command does: one line, exit 130."""
    saved_run(tmp_path, 0.6, docs=10)
    child = subprocess.Popen(
        [sys.executable, "-m", "evalstream.cli.main", "view", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        assert line.startswith("evalstream view: http://127.0.0.1:"), line
        url = line.split()[2]
        runs = httpx.get(url + "api/runs", timeout=30).json()["runs"]
        assert [r["status"] for r in runs] == ["saved"]
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 130
        assert child.stderr.read() == "evalstream: interrupted (SIGINT)\n"
    finally:
        child.kill()
        child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()


def test_the_command_refuses_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that is not there: exit 2 and one line, before anything listens."""
    assert main(["view", str(tmp_path / "absent"), "--port", "0"]) == 2
    assert "is not a folder" in capsys.readouterr().err


async def test_an_fsspec_folder_is_listed_streamed_and_browsed(tmp_path: Path) -> None:
    """The same saved run copied to fsspec's memory filesystem: listed, its results event, and
    its samples paged through the filesystem."""
    import fsspec

    await make_run(tmp_path / "out", 0.6, docs=20)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "out"), "/view27/out", recursive=True)
    try:
        app = view_app("memory://view27/out")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://view") as client:
            (run,) = (await client.get("/api/runs")).json()["runs"]
            assert run["status"] == "saved" and run["results"].startswith("memory://")
            got = [e async for e in events(client, run["key"])]
            assert got[0][1]["samples"] == 60 and got[-1][0] == "end"
            params = {"run": run["key"], "task": TASKS[2], "page": "1", "size": "8"}
            page = (await client.get("/api/samples", params=params)).json()
            assert [r["row"] for r in page["rows"]] == list(range(8, 16))
    finally:
        memory.rm("/view27", recursive=True)
