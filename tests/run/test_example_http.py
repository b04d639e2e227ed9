"""examples/http_service.py for real: uvicorn on loopback, httpx as the client, SSE progress."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pyarrow.parquet as pq
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from http_service import create_app

TASKS = ["svc|a|0", "svc|b|0"]


def _sample(i: int) -> dict[str, Any]:
    return {
        "task": TASKS[i % 2],
        "doc": {"query": f"question {i}", "choices": ["A", "B"], "gold_index": i % 2, "id": str(i)},
        "outputs": [{"result": [-1.5]}, {"result": [-0.5]}],
        "metrics": {"acc": float(i % 3 == 0)},
    }


async def test_http_service_records_runs_and_streams_progress(tmp_path: Path) -> None:
    """Two runs over HTTP: samples in, SSE progress out until saved, files on disk."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(str(tmp_path)), log_level="warning"))
    events: dict[str, list[dict[str, Any]]] = {}
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
                await anyio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                runs = []
                for model in ("org/a", "org/b"):
                    answer = await client.post("/runs", json={"model": model, "tasks": TASKS})
                    assert answer.status_code == 201
                    runs.append(answer.json()["run_id"])

                async def watch(run_id: str) -> None:
                    got = events[run_id] = []
                    async with client.stream("GET", f"/runs/{run_id}/progress") as stream:
                        assert stream.headers["content-type"].startswith("text/event-stream")
                        async for line in stream.aiter_lines():
                            if line.startswith("data: "):
                                got.append(json.loads(line[6:]))

                async with anyio.create_task_group() as watchers:
                    for run_id in runs:
                        watchers.start_soon(watch, run_id)
                    for start in range(0, 300, 50):
                        for n, run_id in enumerate(runs):
                            batch = [_sample(i) for i in range(start, start + 50 + n)]
                            answer = await client.post(f"/runs/{run_id}/samples", json=batch)
                            assert answer.json() == {"logged": 50 + n}
                    bad = await client.post(
                        f"/runs/{runs[0]}/samples", json=[{**_sample(0), "task": "undeclared"}]
                    )
                    assert bad.status_code == 422 and "undeclared" in bad.json()["error"]
                    saved = [(await client.post(f"/runs/{r}/save")).json() for r in runs]
            server.should_exit = True
    for run_id, result, extra in zip(runs, saved, (0, 1), strict=True):
        assert Path(result["results_path"]).exists()
        rows = sum(pq.read_metadata(p).num_rows for p in result["details_paths"].values())
        assert rows == 6 * (50 + extra)
        updates = events[run_id]
        assert updates[-1]["state"] == "saved" and updates[-1]["samples"] == rows
        assert len(updates) >= 2
