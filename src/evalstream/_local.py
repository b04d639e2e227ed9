"""The local output: details parquet files and the results JSON, each written atomically.

Details are converted first and the results JSON last, so a results file on disk always means
its details are complete. Runs in a worker thread; if the caller is cancelled the thread still
finishes the file it is on (a half-renamed file is impossible), and the remaining files are not
written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.to_process

from evalstream._errors import EvalStreamError
from evalstream._naming import details_path, results_path
from evalstream._parquet import segment_to_parquet
from evalstream._storage import OutputStore, atomic_path, translate_oserror
from evalstream._summary import OutputOutcome

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def write_details_sync(
    store: OutputStore, model_name: str, date_id: str, segments: Mapping[str, Path]
) -> tuple[dict[str, str], list[str]]:
    """Write one parquet file per task; return their relative paths and any warnings."""
    paths: dict[str, str] = {}
    warnings: list[str] = []
    for task in sorted(segments):
        rel = details_path(model_name, date_id, task)
        target = store.local(rel)
        try:
            with atomic_path(target) as tmp:
                _, json_columns = segment_to_parquet(segments[task], tmp)
        except OSError as exc:
            raise translate_oserror(exc, str(target)) from exc
        if json_columns:
            warnings.append(f"{task}: columns {json_columns} stored as JSON text (mixed types)")
        paths[task] = rel
    return paths, warnings


def write_local_sync(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    segments: Mapping[str, Path] | None,
) -> OutputOutcome:
    """Details (when given), then the results JSON; then upload to a remote target."""
    try:
        details, warnings = (
            write_details_sync(store, model_name, date_id, segments)
            if segments is not None
            else ({}, [])
        )
        rel = results_path(model_name, date_id)
        store.write_sync(rel, results_json)
        store.upload_sync([*details.values(), rel])
    except EvalStreamError as exc:
        return OutputOutcome(name="local", ok=False, error=str(exc))
    except OSError as exc:
        return OutputOutcome(
            name="local", ok=False, error=str(translate_oserror(exc, store.target))
        )
    except Exception as exc:  # noqa: BLE001 - reported in the summary; the journal keeps the run
        return OutputOutcome(name="local", ok=False, error=f"{type(exc).__name__}: {exc}")
    return OutputOutcome(
        name="local",
        ok=True,
        paths=[store.url(p) for p in [rel, *details.values()]],
        detail={"details": details, "results": rel, "warnings": warnings},
    )


PROCESS_BYTES = 256 << 20
"""Segments at least this big are converted in a worker process rather than a thread."""


def _segment_bytes(segments: Mapping[str, Path] | None) -> int:
    return sum(p.stat().st_size for p in (segments or {}).values() if p.exists())


async def write_local(
    store: OutputStore,
    model_name: str,
    date_id: str,
    results_json: bytes,
    segments: Mapping[str, Path] | None,
) -> OutputOutcome:
    """``write_local_sync`` in a worker thread, or a worker process for big runs.

    Parquet conversion holds the GIL for seconds on a big run; in a thread that stalls the
    event loop (and an inference server on it) for up to 5 ms at every switch. Past
    ``PROCESS_BYTES`` of segments a worker process converts on another core instead; below it,
    starting one (about a second and 200 MB with its imports) costs more than it saves.
    """
    size = await anyio.to_thread.run_sync(_segment_bytes, segments)
    args = (store, model_name, date_id, results_json, segments)
    if size >= PROCESS_BYTES:
        return await anyio.to_process.run_sync(write_local_sync, *args)
    return await anyio.to_thread.run_sync(write_local_sync, *args)
