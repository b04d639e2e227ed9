"""The dataset card (README.md) of a details repo, rebuilt from the repo's file listing.

The card is a pure function of the listing and of the newest run's results, so the publisher can
build it before committing and put it in the same commit as the run, and so a re-planned push
(after a concurrent commit) gets the card of the new listing. The layout is lighteval's, which
the Hub's dataset viewer and lighteval users already read: one YAML config per task plus
``results``, one split per run named after its ``date_id``, and a ``latest`` split per config.
Unlike lighteval, file names are parsed by the known layout rather than by year prefixes, and the
output is deterministic (sorted configs and splits), so an unchanged repo gets a byte-identical card.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import msgspec
import yaml

from evalstream._naming import details_name, details_task

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["CardIndex", "build_dataset_card", "config_name", "index_repo_files", "split_name"]

_RESULTS_RE = re.compile(r"^results_(?P<date>[^/]+)\.(?P<ext>parquet|json)$")
RESULTS_CONFIG = "results"


def config_name(task: str) -> str:
    """A task's config name: every non-word character replaced by ``_`` (lighteval's rule)."""
    return re.sub(r"\W", "_", task)


def split_name(date_id: str) -> str:
    """A run's split name: every character outside ``[\\w.]`` replaced by ``_`` (lighteval's rule)."""
    return re.sub(r"[^\w.]", "_", date_id)


class CardIndex(msgspec.Struct, frozen=True, kw_only=True):
    """What a repo listing says about its runs.

    ``details`` maps config name -> date_id -> the file globs of that run (several tasks can
    sanitize to one config name; their files then share the config). ``results`` maps date_id ->
    the results parquet. ``runs`` is every date_id seen, sorted.
    """

    details: dict[str, dict[str, list[str]]]
    results: dict[str, str]
    results_json: dict[str, str]
    runs: list[str]

    @property
    def latest_run(self) -> str | None:
        """The newest date_id that has a results file (date_ids sort chronologically)."""
        dates = sorted(set(self.results) | set(self.results_json))
        return dates[-1] if dates else None


def index_repo_files(paths: Iterable[str]) -> CardIndex:
    """Index a listing; paths that are not run files (README, .gitattributes, ...) are ignored."""
    details: dict[str, dict[str, list[str]]] = {}
    results: dict[str, str] = {}
    results_json: dict[str, str] = {}
    runs: set[str] = set()
    for path in sorted(set(paths)):
        date, _, name = path.rpartition("/")
        task = details_task(name, date) if date and "/" not in date else None
        if task is not None:
            glob = f"**/{details_name(task, date)}"
            details.setdefault(config_name(task), {}).setdefault(date, []).append(glob)
            runs.add(date)
        elif match := _RESULTS_RE.match(path):
            target = results if match["ext"] == "parquet" else results_json
            target[match["date"]] = path
            runs.add(match["date"])
    return CardIndex(details=details, results=results, results_json=results_json, runs=sorted(runs))


def _data_files(by_date: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    splits: dict[str, list[str]] = {}
    for date in sorted(by_date):  # distinct date_ids that sanitize alike share one split
        splits.setdefault(split_name(date), []).extend(by_date[date])
    files = [{"split": name, "path": sorted(paths)} for name, paths in splits.items()]
    return [*files, {"split": "latest", "path": sorted(by_date[max(by_date)])}]


def _configs(index: CardIndex) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = []
    if index.results:
        by_date = {date: [path] for date, path in index.results.items()}
        configs.append({"config_name": RESULTS_CONFIG, "data_files": _data_files(by_date)})
    for name in sorted(index.details):
        if name == RESULTS_CONFIG:  # a task literally named "results" must not shadow the config
            continue
        configs.append({"config_name": name, "data_files": _data_files(index.details[name])})
    return configs


def build_dataset_card(
    paths: Iterable[str],
    *,
    repo_id: str,
    model_name: str,
    latest_results: Mapping[str, Any] | None,
    hub_url: str = "https://huggingface.co",
) -> str:
    """README.md text for a details repo holding ``paths``.

    ``latest_results`` is the results JSON of the newest run (``CardIndex.latest_run``); its
    ``results`` section is shown in the card. ``hub_url`` is used for links only.
    """
    index = index_repo_files(paths)
    configs = _configs(index)
    task_configs = [c["config_name"] for c in configs if c["config_name"] != RESULTS_CONFIG]
    pretty_name = f"Evaluation run of {model_name}"
    summary = (
        f"Dataset automatically created during the evaluation run of model "
        f"[{model_name}]({hub_url}/{model_name}).\n\n"
        f"The dataset is composed of {len(task_configs)} configuration(s), each one corresponding "
        f"to one of the evaluated tasks.\n\n"
        f"The dataset has been created from {len(index.runs)} run(s). Each run can be found as a "
        f"specific split in each configuration, the split being named using the timestamp of the "
        f'run. The "latest" split always points to the latest results.\n\n'
        f'An additional configuration "results" stores all the aggregated results of the runs.'
    )
    headline = f"Per-sample details and aggregated results of the evaluation runs of {model_name}."
    front: dict[str, Any] = {"pretty_name": pretty_name, "dataset_summary": headline}
    if configs:
        front["configs"] = configs
    yaml_text = yaml.safe_dump(
        front, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10**6
    )
    example = task_configs[0] if task_configs else RESULTS_CONFIG
    parts = [
        f"---\n{yaml_text}---\n",
        f"# Dataset Card for {pretty_name}\n",
        f"{summary}\n",
        "To load the details from a run, you can for instance do the following:\n",
        (
            "```python\nfrom datasets import load_dataset\n"
            f'data = load_dataset("{repo_id}",\n\t"{example}",\n\tsplit="latest")\n```\n'
        ),
        "## Latest results\n",
        _latest_section(index, repo_id, latest_results, hub_url),
    ]
    return "\n".join(parts)


def _latest_section(
    index: CardIndex, repo_id: str, latest: Mapping[str, Any] | None, hub_url: str
) -> str:
    run = index.latest_run
    if run is None or latest is None:
        return "No results have been pushed yet.\n"
    file = index.results_json.get(run) or index.results[run]
    link = f"{hub_url}/datasets/{repo_id}/blob/main/{file}"
    section = latest.get("results", latest)
    body = json.dumps(section, indent=4, ensure_ascii=False)
    return _partial_warning(latest) + (
        f"These are the [latest results from run {run}]({link}) (there may be results for other "
        f"tasks in the repo if successive runs did not cover the same tasks; each task's "
        f'"latest" split points to its newest run):\n\n```json\n{body}\n```\n'
    )


def _partial_warning(latest: Mapping[str, Any]) -> str:
    """A partial run (recovered from a dead run's journal, merged from unfinished shards) says so
    at the top of its results: a reader of the card must not take its means for a whole run's."""
    section = latest.get("evalstream") or {}
    if not section.get("partial"):
        return ""
    source = (
        "recovered from a run that died: only the samples its journal kept"
        if section.get("recovered_from")
        else "merged from unfinished shards: only the samples they uploaded"
        if section.get("merged")
        else "not every sample was recorded"
    )
    tasks = section.get("tasks") or {}
    incomplete = [
        f"`{task}` ({v.get('samples', '?')}/{v.get('expected') or '?'})"
        for task, v in tasks.items()
        if isinstance(v, dict) and not v.get("complete")
    ]
    listed = f" Incomplete tasks (samples/docs): {', '.join(incomplete)}." if incomplete else ""
    return f"> **Partial run**: {source}.{listed}\n\n"
