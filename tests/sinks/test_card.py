"""The dataset card: YAML configs per task and run, ``latest`` splits, body, determinism."""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstream.sinks.card import build_dataset_card, config_name, index_repo_files, split_name
from evalstream.testing._hub_routes import validate_card

RUN1 = "2025-01-01T10-00-00.000001"
RUN2 = "2025-02-01T09-30-00.500000"
TASKS = ["leaderboard|mmlu:abstract_algebra|5", "gsm8k|0", "lighteval|arc:easy|25"]


def _run_paths(date: str, tasks: list[str]) -> list[str]:
    details = [f"{date}/details_{t}_{date}.parquet" for t in tasks]
    return [f"results_{date}.json", f"results_{date}.parquet", *details]


def _card(paths: list[str], results: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    text = build_dataset_card(
        paths, repo_id="org/details_m__x_private", model_name="m/x", latest_results=results
    )
    front = text.split("---\n")[1]
    return yaml.safe_load(front), text


def _splits(meta: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {
        c["config_name"]: {d["split"]: d["path"] for d in c["data_files"]} for c in meta["configs"]
    }


def test_names_follow_lighteval_sanitizing() -> None:
    """Config names keep word characters only; split names keep word characters and dots."""
    assert (
        config_name("leaderboard|mmlu:abstract_algebra|5") == "leaderboard_mmlu_abstract_algebra_5"
    )
    assert split_name(RUN1) == "2025_01_01T10_00_00.000001"


def test_one_run_lists_every_task_with_its_split_and_latest() -> None:
    """Each task and ``results`` get one split for the run plus ``latest`` pointing at it."""
    meta, _ = _card([".gitattributes", "README.md", *_run_paths(RUN1, TASKS)])
    splits = _splits(meta)
    assert list(splits) == ["results", *sorted(config_name(t) for t in TASKS)]
    for task in TASKS:
        glob = [f"**/details_{task}_{RUN1}.parquet"]
        assert splits[config_name(task)] == {split_name(RUN1): glob, "latest": glob}
    assert splits["results"]["latest"] == [f"results_{RUN1}.parquet"]
    assert meta["pretty_name"] == "Evaluation run of m/x"


def test_second_run_adds_a_split_and_moves_latest() -> None:
    """A second run adds its split to every config it covers and moves ``latest`` there."""
    meta, _ = _card(_run_paths(RUN1, TASKS) + _run_paths(RUN2, TASKS[:2]))
    splits = _splits(meta)
    for task in TASKS[:2]:
        assert list(splits[config_name(task)]) == [split_name(RUN1), split_name(RUN2), "latest"]
        assert splits[config_name(task)]["latest"] == [f"**/details_{task}_{RUN2}.parquet"]
    # a task the second run skipped keeps its own newest run as latest
    assert splits[config_name(TASKS[2])]["latest"] == [f"**/details_{TASKS[2]}_{RUN1}.parquet"]
    assert splits["results"]["latest"] == [f"results_{RUN2}.parquet"]


def test_body_has_summary_example_and_latest_results() -> None:
    """The body counts configs and runs, shows load_dataset and the newest results as JSON."""
    results = {"results": {"gsm8k|0": {"em": 0.25}}, "versions": {}}
    _, text = _card(_run_paths(RUN1, TASKS) + _run_paths(RUN2, TASKS), results)
    assert "# Dataset Card for Evaluation run of m/x" in text
    assert "composed of 3 configuration(s)" in text
    assert "created from 2 run(s)" in text
    assert 'load_dataset("org/details_m__x_private"' in text
    assert f"latest results from run {RUN2}" in text
    assert '"em": 0.25' in text
    assert '"versions"' not in text


def test_a_partial_latest_run_says_so_and_names_its_incomplete_tasks() -> None:
    """A recovered run's card warns before its results; a whole run's card does not."""
    tasks = {"gsm8k|0": {"samples": 40, "expected": 100, "complete": False},
             "arc|0": {"samples": 10, "expected": 10, "complete": True}}  # fmt: skip
    results = {"results": {"gsm8k|0": {"em": 0.25}},
               "evalstream": {"partial": True, "recovered_from": "/x", "tasks": tasks}}  # fmt: skip
    _, text = _card(_run_paths(RUN1, TASKS), results)
    warning = text.index("> **Partial run**: recovered from a run that died")
    assert warning < text.index("latest results from run")
    assert "`gsm8k|0` (40/100)" in text
    assert "arc|0` (10/10)" not in text
    _, whole = _card(_run_paths(RUN1, TASKS), {"results": {"gsm8k|0": {"em": 0.25}}})
    assert "Partial run" not in whole


def test_card_is_deterministic_and_ignores_other_files() -> None:
    """The same listing in any order, with unrelated files, gives a byte-identical card."""
    paths = _run_paths(RUN1, TASKS) + _run_paths(RUN2, TASKS)
    noise = ["README.md", ".gitattributes", "notes/x.parquet", f"{RUN1}/other.parquet"]
    first = build_dataset_card(paths, repo_id="o/r", model_name="m", latest_results=None)
    second = build_dataset_card(
        list(reversed(paths)) + noise, repo_id="o/r", model_name="m", latest_results=None
    )
    assert first == second
    assert index_repo_files(paths).runs == [RUN1, RUN2]


def test_tasks_that_sanitize_alike_share_a_config() -> None:
    """Two task names with the same config name merge their files into one split."""
    meta, _ = _card(_run_paths(RUN1, ["a|b", "a:b"]))
    splits = _splits(meta)
    assert splits["a_b"][split_name(RUN1)] == sorted(
        [f"**/details_a|b_{RUN1}.parquet", f"**/details_a:b_{RUN1}.parquet"]
    )


def test_empty_repo_card_is_valid() -> None:
    """A repo without runs still gets a valid card, with no configs."""
    meta, text = _card([".gitattributes"])
    assert "configs" not in meta
    assert "No results have been pushed yet" in text
    assert validate_card(text) == []


_task_names = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/\\"),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(tasks=st.lists(_task_names, min_size=1, max_size=5, unique=True))
def test_hostile_task_names_give_parseable_valid_yaml(tasks: list[str]) -> None:
    """Task names with YAML-significant or unicode characters still give valid, parseable YAML."""
    paths = _run_paths(RUN1, tasks)
    meta, text = _card(paths, {"results": {t: {"acc": 1.0} for t in tasks}})
    assert validate_card(text) == []
    names = [c["config_name"] for c in meta.get("configs", [])]
    assert all(re.fullmatch(r"\w+", n) for n in names)
    listed = {p for c in meta.get("configs", []) for d in c["data_files"] for p in d["path"]}
    for task in tasks:
        if config_name(task) != "results":
            assert f"**/details_{task}_{RUN1}.parquet" in listed
