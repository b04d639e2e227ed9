"""The local output: details parquet files and the results JSON, each written atomically.

The details workers convert their segments to parquet when the run ends (``write_details_sync``
runs in their processes, off this process's GIL); the results JSON is written last, so a
results file on disk always means its details are complete. If the caller is cancelled the
thread still finishes the file it is on (a half-renamed file is impossible).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from evalstream._errors import EvalStreamError
from evalstream._naming import results_path
from evalstream._summary import OutputOutcome
from evalstream.durability.storage import translate_oserror

if TYPE_CHECKING:
    from evalstream.details.protocol import DetailsWritten
    from evalstream.durability.storage import OutputStore


def write_local_sync(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    details: DetailsWritten,
) -> OutputOutcome:
    """The results JSON (after the details the workers wrote), then upload to a remote target."""
    if details.error is not None:
        return OutputOutcome(name="local", ok=False, error=details.error)
    try:
        rel = results_path(model_name, date_id)
        store.write_sync(rel, results_json)
        store.upload_sync([*details.paths.values(), rel])
    except EvalStreamError as exc:
        return OutputOutcome(name="local", ok=False, error=str(exc))
    except OSError as exc:
        return OutputOutcome(
            name="local", ok=False, error=str(translate_oserror(exc, store.target))
        )
    return OutputOutcome(
        name="local",
        ok=True,
        paths=[store.url(p) for p in [rel, *details.paths.values()]],
        detail={"details": details.paths, "results": rel, "warnings": details.warnings},
    )


async def write_local(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    details: DetailsWritten,
) -> OutputOutcome:
    """``write_local_sync`` in a worker thread."""
    return await anyio.to_thread.run_sync(
        write_local_sync, store, model_name, date_id, results_json, details
    )
