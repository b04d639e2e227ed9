"""`evalstream compare` on runs whose true difference is known, and the paired tests' calibration."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from evalstream.cli.main import main
from evalstream.stats.paired import BOOTSTRAP, EXACT, mcnemar_exact, paired_difference

from _runs import TASKS, saved_run

if TYPE_CHECKING:
    from pathlib import Path


def _compare(capsys: pytest.CaptureFixture[str], a: str, b: str) -> dict[tuple[str, str], Any]:
    capsys.readouterr()
    assert main(["compare", a, b, "--json", "--iters", "4000"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    return {(r["task"], r["metric"]): r for r in rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cmp")
    return {
        "a": saved_run(root / "a", 0.5, score_noise=1),
        "b": saved_run(root / "b", 0.6, score_noise=2),  # truth: +0.10 acc, +0.10 score
        "null": saved_run(root / "null", 0.5, score_noise=3, remix=7),  # truth: 0
        "reworded": saved_run(root / "r", 0.5, prompt_tag="Answer briefly. "),
        "tokenizer": saved_run(root / "t", 0.6, token_base=7),
        "no_details": saved_run(root / "n", 0.6, save_details=False),
        "a_nested": saved_run(root / "an", 0.5, score_noise=1, details_layout="lighteval"),
        "b_nested": saved_run(root / "bn", 0.6, score_noise=2, details_layout="lighteval"),
    }


def test_compare_finds_a_known_difference(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    """B is better by 0.10 in truth: the sign is right and every interval covers 0.10."""
    rows = _compare(capsys, runs["a"].results_path, runs["b"].results_path)
    for task in TASKS:
        for metric, test in (("acc", EXACT), ("score", BOOTSTRAP)):
            r = rows[(task, metric)]
            p = r["paired"]
            assert r["comparable"] and r["shared_docs"] == 400 and p["test"] == test
            assert r["difference"] == pytest.approx(r["b"] - r["a"])
            assert p["difference"] == pytest.approx(r["difference"])  # every doc is shared
            assert p["ci_low"] > 0 and p["p_value"] < 0.01
            assert p["ci_low"] <= 0.10 <= p["ci_high"]
    reverse = _compare(capsys, runs["b"].results_path, runs["a"].results_path)
    assert reverse[(TASKS[0], "acc")]["paired"]["ci_high"] < 0
    assert rows[("all", "acc")]["flags"] == ["derived row: see its tasks' tests"]


def test_runs_in_the_lighteval_layout_compare_as_flat_ones(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same two runs saved in lighteval 0.13's layout pair the same docs, same numbers."""
    flat = _compare(capsys, runs["a"].results_path, runs["b"].results_path)
    nested = _compare(capsys, runs["a_nested"].results_path, runs["b_nested"].results_path)
    assert nested == flat
    assert nested[(TASKS[0], "acc")]["shared_docs"] == 400


def test_compare_of_a_null_difference_gives_a_large_p_value(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Same skill, other docs right: the intervals cover 0 and the p-values are large."""
    rows = _compare(capsys, runs["a"].results_path, runs["null"].results_path)
    for task in TASKS:
        for metric in ("acc", "score"):
            p = rows[(task, metric)]["paired"]
            assert p["ci_low"] < 0 < p["ci_high"]
            assert p["p_value"] > 0.2
        acc = rows[(task, "acc")]["paired"]
        assert acc["test"] == EXACT and acc["n"] == 400


def test_changed_prompts_are_not_comparable(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose prompts changed is flagged not comparable, in JSON and in the table."""
    rows = _compare(capsys, runs["a"].results_path, runs["reworded"].results_path)
    r = rows[(TASKS[0], "acc")]
    assert not r["comparable"]
    assert "prompts changed on 400/400 shared docs" in r["flags"][0]
    assert main(["compare", runs["a"].results_path, runs["reworded"].results_path]) == 0
    text = capsys.readouterr().out
    assert "NOT COMPARABLE" in text and EXACT in text and BOOTSTRAP in text


def test_other_tokens_are_flagged_and_missing_details_say_so(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Same prompts, other input tokens: compared, with a flag. No details: values only."""
    rows = _compare(capsys, runs["a"].results_path, runs["tokenizer"].results_path)
    r = rows[(TASKS[1], "acc")]
    assert r["comparable"] and r["paired"]["ci_low"] > 0
    assert r["flags"] == ["input tokens differ on 400/400 docs (tokenizer or template)"]
    rows = _compare(capsys, runs["a"].results_path, runs["no_details"].results_path)
    r = rows[(TASKS[1], "acc")]
    assert r["comparable"] and r["paired"] is None and r["difference"] > 0
    assert r["flags"] == ["no details file: prompts unchecked, no paired test"]


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    """3 docs only A got right, 10 only B: p = 2·P(X ≤ 3), X ~ Bin(13, 1/2)."""
    a = np.array([1.0] * 3 + [0.0] * 10 + [1.0] * 20)
    b = np.array([0.0] * 3 + [1.0] * 10 + [1.0] * 20)
    from math import comb

    want = 2 * sum(comb(13, k) for k in range(4)) / 2**13
    assert mcnemar_exact(a, b) == pytest.approx(want)
    assert mcnemar_exact(a, a) == 1.0


def test_paired_intervals_are_calibrated() -> None:
    """Over 300 simulated pairs of runs: ~95 % of intervals cover the truth, ~5 % of nulls reject."""
    rng = np.random.default_rng(11)
    trials = 300
    for kind in ("binary", "continuous"):
        cover = reject = 0
        for t in range(trials):
            if kind == "binary":
                u = rng.random(300)
                a, b = (u < 0.6) * 1.0, np.where(rng.random(300) < 0.5, u < 0.6, u < 0.7) * 1.0
                truth = 0.05
                same = np.where(rng.random(300) < 0.5, u < 0.6, rng.random(300) < 0.6) * 1.0
            else:
                a = rng.normal(0.5, 0.2, 300)
                b, truth = a + rng.normal(0.03, 0.1, 300), 0.03
                same = a + rng.normal(0.0, 0.1, 300)
            r = paired_difference(a, b, iters=1000, seed=t)
            cover += r.ci_low <= truth <= r.ci_high
            reject += paired_difference(a, same, iters=1000, seed=t).p_value < 0.05
        assert 0.91 <= cover / trials <= 0.985, (kind, cover)
        assert reject / trials <= 0.09, (kind, reject)


def test_paired_difference_rejects_unpaired_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 0.0], [1.0])
