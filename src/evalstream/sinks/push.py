"""Publishing a run that was saved earlier (``evalstream push``), e.g. after a failed push.

It goes through the outputs' registry: the Hub output publishes the saved files.

The run folder's status marker names the results file; the model name and date id come from
it, and the details files from the date folder beside it, exactly as ``save()`` wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from evalstream._errors import ConfigError
from evalstream._naming import details_dir, details_glob, results_date_id, results_root
from evalstream._options import Options
from evalstream.details.protocol import DetailsWritten
from evalstream.durability.runstate import read_status
from evalstream.durability.storage import OutputStore
from evalstream.sinks.outputs import OutputContext, SavedRun, build_outputs

if TYPE_CHECKING:
    from evalstream.sinks.hub import PushOutcome
    from evalstream.sinks.retry import RetryPolicy


def _locate(run: Path) -> tuple[SavedRun, str, dict[str, Path]]:
    """A saved run as its outputs see it, its output folder, and its details files by repo
    path (read once, in a worker thread)."""
    if run.is_file() and run.suffix == ".json":
        results = run
    else:
        status = read_status(run)
        if status is None or status.state not in ("saved", "recovered") or not status.results_path:
            raise ConfigError(
                f"{run} is not a saved run folder (OUTPUT_DIR/.evalstream/RUN_ID with status "
                "'saved'); pass that folder or the results_*.json file"
            )
        results = Path(status.results_path)
    if not results.is_file():
        raise ConfigError(f"the results file {results} does not exist (was it moved?)")
    results_json = results.read_bytes()
    data = json.loads(results_json)
    model_name = (data.get("config_general") or {}).get("model_name")
    if not model_name:
        raise ConfigError(f"{results} names no model (config_general.model_name)")
    date_id = results_date_id(str(results))
    output_dir = results_root(str(results), model_name)
    folder = Path(output_dir) / details_dir(model_name, date_id)
    details = {f"{date_id}/{p.name}": p for p in sorted(folder.glob(details_glob(date_id)))}
    saved = SavedRun(
        model_name=model_name,
        date_id=date_id,
        results=data,
        results_json=results_json,
        details=DetailsWritten(paths={}, warnings=[]),
    )
    return saved, output_dir, details


async def push_saved_run(
    run: str | Path,
    org: str,
    *,
    public: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    retry: RetryPolicy | None = None,
) -> PushOutcome:
    """Publish a saved run to ``{org}/details_{model}`` in one commit (the card included).

    The push is the registry's Hub output, given the files the run saved, exactly as a
    ``save(push_to_hub=True)`` would have pushed them.
    """
    from evalstream.sinks.hub import HubPublisher
    from evalstream.sinks.hub_output import HubOutput

    publisher = HubPublisher(org, token, endpoint=endpoint, public=public, retry=retry)
    saved, output_dir, details = await anyio.to_thread.run_sync(_locate, Path(run))
    context = OutputContext(
        store=OutputStore(output_dir),
        options=Options(push_to_hub=True, hub_results_org=publisher.org, public=public),
        publisher=publisher,
    )
    (hub,) = build_outputs(context, ["hub"])
    assert isinstance(hub, HubOutput)
    return await hub.publish(saved, details)
