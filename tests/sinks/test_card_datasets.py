"""The dataset card's ``load_dataset`` snippet, run by ``datasets`` itself against the loopback Hub.

Two runs of every sample shape (``tests/_reader_shapes.py``) are pushed to the loopback Hub in
each details layout; then a child process with ``HF_ENDPOINT`` pointing there runs the snippet of
the card the push wrote, as written, and the same call for every other config of the card. The
child is needed because ``huggingface_hub`` reads ``HF_ENDPOINT`` once, at import. Run by
``scripts/ci/readers.sh`` (``-m readers``), with the oldest ``datasets`` the README names and the
current one.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import yaml

from _reader_shapes import LAYOUTS, SHAPES, expected_rows, pick, task_name, write_run
from evalstream.sinks.card import config_name, split_name
from evalstream.testing import LoopbackHub

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.readers

ORG = "evals-org"


def _model(layout: str) -> str:
    return f"org/card-{layout}"


async def _push_runs(root: Path, server: LoopbackHub) -> None:
    for layout in LAYOUTS:
        for run in range(2):
            await write_run(
                root / f"{layout}-{run}",
                layout,
                _model(layout),
                push_to_hub=True,
                hub_results_org=ORG,
                hub_token=server.token,
                hub_endpoint=server.endpoint,
            )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackHub]:
    """A loopback Hub holding two pushed runs of every shape, one repo per layout."""
    with LoopbackHub() as server:
        anyio.run(_push_runs, tmp_path_factory.mktemp("card"), server)
        yield server


def _repo(layout: str) -> str:
    return f"{ORG}/details_{_model(layout).replace('/', '__')}_private"


def _run_snippet(hub: LoopbackHub, tmp_path: Path, layout: str) -> tuple[str, dict[str, Any]]:
    """Run the card's snippet in a child with ``datasets``; the card and what the child loaded."""
    card = hub.file_bytes(_repo(layout), "README.md").decode()
    match = re.search(r"```python\n(.*?)```", card, re.DOTALL)
    assert match is not None, card
    snippet = match.group(1)
    front = yaml.safe_load(card.split("---\n")[1])
    configs = [c["config_name"] for c in front["configs"]]
    code = (
        "import pickle, sys\n"
        + snippet
        + "\nsnippet_rows = [data[i] for i in range(len(data))]\n"
        + "configs = {}\n"
        + "for name in sys.argv[2:]:\n"
        + f"    data = load_dataset({_repo(layout)!r}, name, split='latest')\n"
        + "    configs[name] = [data[i] for i in range(len(data))]\n"
        + "with open(sys.argv[1], 'wb') as out:\n"
        + "    pickle.dump({'snippet': snippet_rows, 'configs': configs}, out)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env |= {
        "HF_ENDPOINT": hub.endpoint,
        "HF_TOKEN": hub.token,  # the repo is private
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }
    out = tmp_path / "loaded.pickle"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), *configs],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with out.open("rb") as f:
        loaded: dict[str, Any] = pickle.load(f)  # written by this test's child
    return card, loaded


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_cards_snippet_loads_the_latest_run_with_datasets(
    hub: LoopbackHub, tmp_path: Path, layout: str
) -> None:
    """The snippet as written loads its config's latest split, and the same call loads every
    config of the card (each task, and ``results``): rows as logged, images decoded."""
    card, loaded = _run_snippet(hub, tmp_path, layout)
    by_config = {config_name(task_name(s)): s for s in SHAPES}
    example = re.search(r'load_dataset\("[^"]+",\s*"([^"]+)"', card)
    assert example is not None and example.group(1) in by_config
    configs = loaded["configs"]
    assert configs[example.group(1)] == loaded["snippet"]
    assert set(configs) == {*by_config, "results"}
    for config, shape in by_config.items():
        want = expected_rows(shape, layout)
        rows = configs[config]
        assert len(rows) == len(want), config
        for got, expected in zip(rows, want, strict=True):
            assert pick(got, expected) == pick(expected, expected, decoded=True), config
    assert len(configs["results"]) == 1


def test_every_run_is_a_split_and_latest_is_the_newest(hub: LoopbackHub) -> None:
    """The card names one split per pushed run plus ``latest``, pointing at the newest run."""
    front = yaml.safe_load(hub.file_bytes(_repo("flat"), "README.md").decode().split("---\n")[1])
    files = hub.files(_repo("flat"))
    dates = sorted({p.split("/")[0] for p in files if "/" in p})
    assert len(dates) == 2
    for config in front["configs"]:
        splits = {d["split"]: d["path"] for d in config["data_files"]}
        assert list(splits) == [*(split_name(d) for d in dates), "latest"]
        assert splits["latest"] == splits[split_name(dates[-1])]
