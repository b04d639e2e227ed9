"""Count the HTTP requests and commits one run costs on the Hub: evalstream vs lighteval.

Both push the same run shape (N tasks) to the same loopback Hub (``evalstream.testing``), twice:
once to a new repo, once more to the now existing repo. evalstream goes through ``HubPublisher``;
lighteval's ``EvaluationTracker.push_to_hub`` runs in a subprocess of ``.bench-venv`` (where
lighteval is installed) with ``HF_ENDPOINT`` pointing at the loopback server, because
huggingface_hub reads it at import. Usage: ``.venv/bin/python scripts/bench_hub_requests.py
[--tasks 60] [--smoke] [--no-lighteval]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.parquet as pq

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from evalstream.sinks.hub import HubPublisher, details_repo_id
from evalstream.sinks.retry import RetryPolicy
from evalstream.testing import HubRequest, LoopbackHub

ORG = "bench-org"
MODEL = "acme/tiny-llm"
DATES = ("2025-03-01T10-00-00.000001", "2025-03-02T10-00-00.000001")
BENCH_PYTHON = Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"

LIGHTEVAL_PUSH = """
import sys
from datasets import Dataset
from lighteval.logging.evaluation_tracker import EvaluationTracker

out, org, model, n_tasks, date_id = sys.argv[1:]
tracker = EvaluationTracker(output_dir=out, push_to_hub=True, hub_results_org=org)
tracker.general_config_logger.model_name = model
tasks = [f"bench|task_{i:03d}|0" for i in range(int(n_tasks))]
rows = [{"example": f"q{j}", "predictions": ["a"], "metrics": {"acc": 1.0}} for j in range(3)]
details = {t: Dataset.from_list(rows) for t in tasks}
results = {
    "config_general": {"model_name": model},
    "results": {t: {"acc": 1.0} for t in tasks},
    "versions": {t: 0 for t in tasks},
}
tracker.push_to_hub(date_id=date_id, details=details, results_dict=results)
"""


def _tasks(n: int) -> list[str]:
    return [f"bench|task_{i:03d}|0" for i in range(n)]


def _details_parquet() -> bytes:
    table = pa.table({"example": ["q0", "q1", "q2"], "predictions": [["a"], ["a"], ["a"]]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _commits(requests: tuple[HubRequest, ...]) -> int:
    return sum(
        1 for r in requests if r.method == "POST" and "/commit/" in r.path and r.status < 300
    )


def _summary(requests: tuple[HubRequest, ...]) -> str:
    kinds = Counter(
        f"{r.method} {_route(r.path)}{'' if r.status < 400 else f' [{r.status}]'}" for r in requests
    )
    return ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))


def _route(path: str) -> str:
    if "/resolve/" in path:
        return "resolve"
    parts = path.strip("/").split("/")  # api/{type}s/{ns}/{name}/{route}/...
    if parts[:2] in (["api", "repos"], ["api", "validate-yaml"]):
        return "/".join(parts[1:])
    return parts[4] if len(parts) > 4 else "repo_info"


async def _evalstream(hub: LoopbackHub, n: int) -> list[tuple[int, int, str]]:
    publisher = HubPublisher(ORG, hub.token, endpoint=hub.endpoint, retry=RetryPolicy())
    repo = details_repo_id(ORG, MODEL, public=False)
    details = _details_parquet()
    rows = []
    for date in DATES:
        hub.clear_requests()
        files: dict[str, Path | bytes] = {
            f"{date}/details_{t}_{date}.parquet": details for t in _tasks(n)
        }
        results = json.dumps({"results": {t: {"acc": 1.0} for t in _tasks(n)}}).encode()
        outcome = await publisher.publish_run(
            repo, files, model_name=MODEL, date_id=date, results_json=results
        )
        if not outcome.ok:
            raise SystemExit(f"evalstream push failed: {outcome.error}")
        requests = hub.requests
        rows.append((len(requests), _commits(requests), _summary(requests)))
    return rows


def _lighteval(hub: LoopbackHub, n: int, workdir: Path) -> list[tuple[int, int, str]] | str:
    probe = subprocess.run(
        [str(BENCH_PYTHON), "-c", "import lighteval"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return "lighteval is not importable in .bench-venv"
    env = dict(
        os.environ,
        HF_ENDPOINT=hub.endpoint,
        HF_TOKEN=hub.token,
        HF_HOME=str(workdir / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
    )
    model = MODEL + "-lighteval"  # its own repo on the same server
    rows = []
    for date in DATES:
        hub.clear_requests()
        args = [str(workdir / "out"), ORG, model, str(n), date]
        done = subprocess.run(
            [str(BENCH_PYTHON), "-c", LIGHTEVAL_PUSH, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            return f"lighteval push failed: {done.stderr.strip().splitlines()[-1:]}"
        requests = hub.requests
        rows.append((len(requests), _commits(requests), _summary(requests)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="5 tasks, evalstream only")
    parser.add_argument("--no-lighteval", action="store_true")
    args = parser.parse_args()
    n = 5 if args.smoke else args.tasks
    with LoopbackHub() as hub, tempfile.TemporaryDirectory() as tmp:
        ours = anyio.run(_evalstream, hub, n)
        if args.smoke or args.no_lighteval:
            theirs: list[tuple[int, int, str]] | str = "skipped (--smoke / --no-lighteval)"
        elif not BENCH_PYTHON.exists():
            theirs = f"lighteval unavailable ({BENCH_PYTHON} does not exist)"
        else:
            theirs = _lighteval(hub, n, Path(tmp))
    print(f"HTTP requests and commits per push of a {n}-task run (loopback Hub)")
    print(f"{'push':<16}{'evalstream':>22}{'lighteval':>22}")
    for i, label in enumerate(("new repo", "existing repo")):
        mine = f"{ours[i][0]} req / {ours[i][1]} commit(s)"
        other = f"{theirs[i][0]} req / {theirs[i][1]} commits" if isinstance(theirs, list) else "-"
        print(f"{label:<16}{mine:>22}{other:>22}")
    if isinstance(theirs, str):
        print(f"lighteval: {theirs}")
    print("\nevalstream, existing repo:", ours[1][2])
    if isinstance(theirs, list):
        print("lighteval, existing repo:", theirs[1][2])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
