"""The formats of ``evalstream export`` and ``evalstream import``: ``module:function`` names,
resolved on use by the command line, so a peer's library loads only when its format is asked for."""

from __future__ import annotations

EXPORTERS: dict[str, str] = {
    "inspect": "evalstream.interop.inspect:export_run",
    "eee": "evalstream.interop.eee:export_run",
}
"""``--format`` of ``evalstream export`` -> ``module:function(run: LoadedRun, out: str) -> list[str]``
(the files written)."""

IMPORTERS: dict[str, str] = {
    "inspect": "evalstream.interop.inspect:import_log",
    "lm-eval": "evalstream.interop.lmeval:import_run",
}
"""``--format`` of ``evalstream import`` -> ``module:function(source: str, output_dir: str, *,
task_names: Mapping[str, str] | None) -> list[str]`` (what was written; ``task_names`` renames
the foreign tasks, ``--task-name OLD=NEW``)."""

EXPORT_OUTPUTS: dict[str, str] = {
    "inspect": (
        "an inspect_ai log holds one task: -o FOLDER writes one .eval per task of the run, named "
        "as inspect names its logs ({created}_{task}_{id}.eval, so `inspect view FOLDER` lists "
        "them); -o FILE.eval (or FILE.json) writes the one log of a one-task run"
    ),
    "eee": (
        "-o FOLDER (local) receives every_eval_ever's datastore layout: "
        "data/TASK/ORG/MODEL/UUID.json (the aggregate record) and UUID_samples.jsonl (the "
        "instance-level records), one pair per task"
    ),
}
"""``--format`` of ``evalstream export`` -> what its ``-o`` names, for ``export --help``."""
