"""A saved run's per-doc values, for a live run to be compared against (``baseline=``).

The baseline is found as ``evalstream show`` finds a run (``runs.loading.resolve_run``: a
results file, a run folder, a run id of the tracker's output folder) and read once: each task's
details ``example`` (the doc's query) and ``metrics`` columns, into ``stats.live.BaselineDocs``.
This is why ``run/`` may import ``runs/`` (docs/design/architecture.md): reading a saved run
back lives there, and ``runs/`` imports nothing of ``run/``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from evalstream._errors import ConfigError
from evalstream.stats.live import BaselineDocs

if TYPE_CHECKING:
    from evalstream.durability.storage import OutputStore

Baseline = str | os.PathLike[str] | BaselineDocs
"""What ``EvaluationTracker(baseline=...)`` takes: a saved run as ``evalstream show`` names it,
or one already loaded by ``evalstream.load_baseline`` (a daemon comparing many checkpoints
loads it once)."""


def load_baseline(target: str | os.PathLike[str], output_dir: str | None = None) -> BaselineDocs:
    """Read the saved run ``target`` names (blocking); ConfigError when it has no details.

    A run id is looked up in ``output_dir`` (else the current folder), as ``evalstream ls``
    prints it.
    """
    # imported here: a run without a baseline never loads pyarrow.parquet in its own process
    from evalstream.runs.loading import metrics_dict, resolve_run

    run = resolve_run(os.fspath(target), output_dir=output_dir)
    docs = BaselineDocs(run.label)
    for task in run.tasks():
        table = run.read_details(task, ["example", "metrics"])
        if table is None:
            continue
        rows = table.to_pydict()
        examples = [str(text) for text in rows.get("example") or []]
        docs.add_task(task, examples, [metrics_dict(m) for m in rows.get("metrics") or []])
    if not len(docs):
        raise ConfigError(
            f"the baseline {os.fspath(target)} has no details files: a live comparison pairs "
            "each sample with the baseline's on the same doc (save it with save_details=True)"
        )
    return docs


def as_baseline(baseline: Baseline | None, store: OutputStore) -> BaselineDocs | None:
    """``baseline`` loaded (blocking, when it names a run), run ids looked up in ``store``."""
    if baseline is None or isinstance(baseline, BaselineDocs):
        return baseline
    return load_baseline(baseline, str(store.target))
