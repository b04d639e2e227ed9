"""Publishing runs to the loopback Hub with huggingface_hub's real client: one commit, retries, re-plans."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow.parquet as pq
import pytest
import yaml

from evalstream._errors import ConfigError, HubPushError
from evalstream.sinks.card import config_name, split_name
from evalstream.sinks.hub import HubPublisher, PushOutcome, details_repo_id, results_parquet_bytes
from evalstream.sinks.retry import RetryPolicy
from evalstream.testing import LoopbackHub

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("hf_env")

ORG = "evalstream-test"
MODEL = "acme/tiny-llm"
REPO = details_repo_id(ORG, MODEL, public=False)
TASKS = ["leaderboard|mmlu:abstract_algebra|5", "leaderboard|gsm8k|5", "arc:easy|25"]
RUN1 = "2025-03-01T10-00-00.000001"
RUN2 = "2025-03-02T11-30-00.250000"
FAST = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.0)


def _write_run(root: Path, date: str, tasks: list[str]) -> tuple[dict[str, Path], bytes]:
    """A run on disk as the tracker leaves it: fake parquet details and a results JSON."""
    files: dict[str, Path] = {}
    for i, task in enumerate(tasks):
        local = root / "details" / MODEL / date / f"details_{task}_{date}.parquet"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(b"PAR1" + f"{task}:{date}:{i}".encode() * 50 + b"PAR1")
        files[f"{date}/details_{task}_{date}.parquet"] = local
    results = {
        "config_general": {"model_name": MODEL, "start_time": date},
        "results": {t: {"acc": 0.5 + i / 10, "acc_stderr": 0.01} for i, t in enumerate(tasks)},
        "versions": dict.fromkeys(tasks, 1),
    }
    results_json = json.dumps(results, indent=2).encode()
    local = root / "results" / MODEL / f"results_{date}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(results_json)
    files[f"results_{date}.json"] = local
    return files, results_json


def _publisher(hub: LoopbackHub, **kwargs: Any) -> HubPublisher:
    options: dict[str, Any] = {"endpoint": hub.endpoint, "retry": FAST} | kwargs
    token = options.pop("token", hub.token)
    return HubPublisher(ORG, token, **options)


async def _publish(pub: HubPublisher, root: Path, date: str, tasks: list[str]) -> PushOutcome:
    files, results_json = _write_run(root, date, tasks)
    return await pub.publish_run(
        REPO, files, model_name=MODEL, date_id=date, results_json=results_json
    )


def _card(hub: LoopbackHub) -> dict[str, dict[str, list[str]]]:
    meta = yaml.safe_load(hub.file_bytes(REPO, "README.md").decode().split("---\n")[1])
    return {
        c["config_name"]: {d["split"]: d["path"] for d in c["data_files"]} for c in meta["configs"]
    }


def test_construction_validates_without_io(loopback_hub: LoopbackHub) -> None:
    """Missing org or token fails at construction with a how-to-fix message; no request is made."""
    with pytest.raises(ConfigError, match="organisation"):
        HubPublisher("", "tok")
    with pytest.raises(ConfigError, match="organisation"):
        HubPublisher(None, "tok")
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        HubPublisher(ORG, None, endpoint=loopback_hub.endpoint)
    pub = _publisher(loopback_hub, public=True)
    assert loopback_hub.token not in repr(pub)
    assert pub.retry_hint == f"evalstream push RUN_DIR --org {ORG} --public"
    assert loopback_hub.requests == ()


def test_token_from_environment(loopback_hub: LoopbackHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a token argument, huggingface_hub's token (HF_TOKEN) is used."""
    monkeypatch.setenv("HF_TOKEN", loopback_hub.token)
    assert HubPublisher(ORG, endpoint=loopback_hub.endpoint).org == ORG


def test_repo_naming_and_results_parquet() -> None:
    """Repo ids follow lighteval's naming; the results parquet has one JSON-text column per key."""
    assert details_repo_id("o", "a/b", public=False) == "o/details_a__b_private"
    assert details_repo_id("o", "a/b", public=True) == "o/details_a__b"
    results = {"config_general": {"x": 1}, "results": {"t": {"acc": 0.5}}}
    table = pq.read_table(io.BytesIO(results_parquet_bytes(results)))
    assert table.num_rows == 1
    assert table.column_names == ["config_general", "results"]
    assert json.loads(table.column("results")[0].as_py()) == {"t": {"acc": 0.5}}


async def test_run_lands_in_one_commit_byte_identical(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """A run creates the private repo and lands in exactly one commit, files byte-identical."""
    with anyio.fail_after(20):
        files, _ = _write_run(tmp_path, RUN1, TASKS)
        outcome = await _publish(_publisher(loopback_hub), tmp_path, RUN1, TASKS)
    assert outcome.ok, outcome.error
    assert outcome.attempts == 1
    commits = loopback_hub.commits(REPO)
    assert [c.summary for c in commits] == [
        "initial commit",
        f"Add evaluation run {RUN1} of {MODEL}",
    ]
    assert commits[-1].oid == outcome.commit_oid
    assert loopback_hub.repo_private(REPO)
    for path, local in files.items():
        assert loopback_hub.file_bytes(REPO, path) == local.read_bytes()
    expected = {*files, f"results_{RUN1}.parquet", "README.md"}
    assert set(outcome.files) == expected
    assert set(loopback_hub.files(REPO)) == expected | {".gitattributes"}
    card = _card(loopback_hub)
    assert set(card) == {"results", *(config_name(t) for t in TASKS)}
    for task in TASKS:
        assert card[config_name(task)] == {
            split_name(RUN1): [f"**/details_{task}_{RUN1}.parquet"],
            "latest": [f"**/details_{task}_{RUN1}.parquet"],
        }
    assert loopback_hub.count("POST", "/commit/") == 1


async def test_second_run_adds_split_and_moves_latest(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """A second run is one more commit; every config gets its split and ``latest`` moves to it."""
    with anyio.fail_after(20):
        pub = _publisher(loopback_hub)
        assert (await _publish(pub, tmp_path, RUN1, TASKS)).ok
        outcome = await _publish(pub, tmp_path, RUN2, TASKS)
    assert outcome.ok, outcome.error
    assert len(loopback_hub.commits(REPO)) == 3
    card = _card(loopback_hub)
    for task in TASKS:
        splits = card[config_name(task)]
        assert list(splits) == [split_name(RUN1), split_name(RUN2), "latest"]
        assert splits["latest"] == [f"**/details_{task}_{RUN2}.parquet"]
    assert card["results"]["latest"] == [f"results_{RUN2}.parquet"]
    readme = loopback_hub.file_bytes(REPO, "README.md").decode()
    assert f"latest results from run {RUN2}" in readme


async def test_older_run_pushed_late_keeps_newest_results(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """Pushing an older saved run later adds its split but the card keeps the newest results."""
    with anyio.fail_after(20):
        pub = _publisher(loopback_hub)
        assert (await _publish(pub, tmp_path, RUN2, TASKS)).ok
        assert (await _publish(pub, tmp_path, RUN1, TASKS)).ok
    card = _card(loopback_hub)
    assert card["results"]["latest"] == [f"results_{RUN2}.parquet"]
    assert f"latest results from run {RUN2}" in loopback_hub.file_bytes(REPO, "README.md").decode()


async def test_transient_503_twice_then_one_commit(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """503 twice on the commit, then success: pushed once, no duplicate commit."""
    loopback_hub.inject("POST", "/commit/", status=503, times=2)
    with anyio.fail_after(20):
        outcome = await _publish(_publisher(loopback_hub), tmp_path, RUN1, TASKS)
    assert outcome.ok, outcome.error
    assert outcome.attempts == 3
    assert len(loopback_hub.commits(REPO)) == 2
    assert [r.status for r in loopback_hub.requests if "/commit/" in r.path] == [503, 503, 200]


async def test_429_retry_after_is_honoured(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """A 429 with ``Retry-After: 1`` makes the publisher wait about a second, then succeed."""
    loopback_hub.inject("POST", "/commit/", status=429, headers={"Retry-After": "1"})
    with anyio.fail_after(20):
        pub = _publisher(loopback_hub)
        start = anyio.current_time()
        outcome = await _publish(pub, tmp_path, RUN1, TASKS)
        elapsed = anyio.current_time() - start
    assert outcome.ok, outcome.error
    assert 0.95 <= elapsed < 5.0
    assert len(loopback_hub.commits(REPO)) == 2


async def test_persistent_500_is_bounded_and_reported(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """A persistent 500 gives up after max_attempts, returns the error as data, loses nothing."""
    loopback_hub.inject("POST", "/commit/", status=500, times=100)
    with anyio.fail_after(20):
        files, _ = _write_run(tmp_path, RUN1, TASKS)
        pub = _publisher(loopback_hub)
        outcome = await _publish(pub, tmp_path, RUN1, TASKS)
    assert not outcome.ok
    assert outcome.commit_oid is None
    assert outcome.attempts == FAST.max_attempts == loopback_hub.count("POST", "/commit/")
    assert outcome.error is not None
    assert "after 4 attempts" in outcome.error and "HTTP 500" in outcome.error
    assert outcome.retry_hint == f"evalstream push RUN_DIR --org {ORG}"
    with pytest.raises(HubPushError, match="evalstream push"):
        outcome.raise_for_error()
    assert all(p.is_file() for p in files.values())
    assert len(loopback_hub.commits(REPO)) == 1
    loopback_hub.clear_faults()  # the Hub heals
    with anyio.fail_after(20):
        later = await _publish(pub, tmp_path, RUN1, TASKS)
    assert later.ok, later.error  # the push command publishes the saved run once the Hub heals
    assert len(loopback_hub.commits(REPO)) == 2


async def test_bad_token_is_clear_and_never_logged(
    loopback_hub: LoopbackHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected token gives a clear error; the token is in no log record, message or file."""
    bad = "hf_ThisTokenIsWrong_0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    for name in ("huggingface_hub", "httpx2", "httpcore2", "evalstream"):
        caplog.set_level(logging.DEBUG, logger=name)
    with anyio.fail_after(20):
        pub = _publisher(loopback_hub, token=bad)
        outcome = await _publish(pub, tmp_path, RUN1, TASKS)
    assert not outcome.ok
    assert outcome.error is not None
    assert "401" in outcome.error and "token" in outcome.error
    assert outcome.attempts == 0
    formatter = logging.Formatter("%(name)s %(message)s")
    assert caplog.records, "the failure should be logged"
    for record in caplog.records:
        assert bad not in formatter.format(record)
    assert bad not in repr(outcome) and bad not in repr(pub)
    assert not loopback_hub.repo_exists(REPO)
    assert all(bad.encode() not in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


async def test_read_only_token_says_write_access(tmp_path: Path) -> None:
    """A read-only token fails on repo creation with a message about write access."""
    with anyio.fail_after(20):
        async with LoopbackHub(tokens=["hf_w"], read_only_tokens=["hf_r"]) as hub:
            outcome = await _publish(_publisher(hub, token="hf_r"), tmp_path, RUN1, TASKS)
    assert not outcome.ok
    assert outcome.error is not None and "403" in outcome.error and "write access" in outcome.error


async def test_concurrent_commit_is_replanned(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """Another run committed between planning and commit: 412, re-plan, both runs in the card."""
    pub = _publisher(loopback_hub)
    with anyio.fail_after(20):
        assert (await _publish(pub, tmp_path, RUN1, TASKS[:1])).ok
        other, other_json = _write_run(tmp_path / "other", RUN2, TASKS)
        other_files = {p: f.read_bytes() for p, f in other.items()}
        other_files[f"results_{RUN2}.parquet"] = results_parquet_bytes(json.loads(other_json))

        def concurrent_writer() -> None:
            loopback_hub.add_commit(REPO, other_files, summary="another machine's run")

        loopback_hub.on_request("POST", "/preupload/", concurrent_writer)
        outcome = await _publish(pub, tmp_path, "2025-03-03T00-00-00.000000", TASKS[1:])
    assert outcome.ok, outcome.error
    assert outcome.attempts == 2
    assert [r.status for r in loopback_hub.requests if "/commit/" in r.path][-2:] == [412, 200]
    summaries = [c.summary for c in loopback_hub.commits(REPO)]
    assert summaries[-2] == "another machine's run"
    card = _card(loopback_hub)
    for task in TASKS[1:]:
        assert split_name(RUN2) in card[config_name(task)]
        assert split_name("2025-03-03T00-00-00.000000") in card[config_name(task)]
    assert split_name(RUN1) in card[config_name(TASKS[0])]
    assert list(card["results"]) == [
        split_name(RUN1),
        split_name(RUN2),
        split_name("2025-03-03T00-00-00.000000"),
        "latest",
    ]


async def test_lost_commit_response_does_not_duplicate(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """The commit lands but its response is lost (502): the retry re-plans and commits nothing new."""
    loopback_hub.inject("POST", "/commit/", status=502, after_apply=True)
    with anyio.fail_after(20):
        outcome = await _publish(_publisher(loopback_hub), tmp_path, RUN1, TASKS)
    assert outcome.ok, outcome.error
    commits = loopback_hub.commits(REPO)
    assert len(commits) == 2
    assert outcome.commit_oid == commits[-1].oid


async def test_public_repo(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """``public=True`` creates a public repo."""
    repo = details_repo_id(ORG, MODEL, public=True)
    files, results_json = _write_run(tmp_path, RUN1, TASKS)
    with anyio.fail_after(20):
        outcome = await _publisher(loopback_hub, public=True).publish_run(
            repo, files, model_name=MODEL, date_id=RUN1, results_json=results_json
        )
    assert outcome.ok, outcome.error
    assert not loopback_hub.repo_private(repo)


async def test_custom_targets_and_card_recreation(
    loopback_hub: LoopbackHub, tmp_path: Path
) -> None:
    """push_results/details_to_hub write where asked; recreate_metadata_card rebuilds the card."""
    pub = _publisher(loopback_hub)
    with anyio.fail_after(20):
        res = await pub.push_results_to_hub("custom", "out/results.json", b"{}", private=False)
        (tmp_path / "c").write_bytes(b"C")
        details = {"a|b": b"A", "c": tmp_path / "c"}
        det = await pub.push_details_to_hub("custom", "out/{task_name}.parquet", details)
        assert (await _publish(pub, tmp_path, RUN1, TASKS)).ok
        loopback_hub.add_commit(REPO, {"README.md": b"stale"})
        card = await pub.recreate_metadata_card(REPO)
        missing = await pub.recreate_metadata_card(f"{ORG}/nope")
    assert res.ok and det.ok, (res.error, det.error)
    custom = f"{ORG}/custom"
    assert not loopback_hub.repo_private(custom)
    assert loopback_hub.file_bytes(custom, "out/results.json") == b"{}"
    assert loopback_hub.file_bytes(custom, "out/a|b.parquet") == b"A"
    assert loopback_hub.file_bytes(custom, "out/c.parquet") == b"C"
    assert card.ok, card.error
    assert set(_card(loopback_hub)) == {"results", *(config_name(t) for t in TASKS)}
    assert "Evaluation run of acme/tiny-llm" in loopback_hub.file_bytes(REPO, "README.md").decode()
    assert not missing.ok and missing.error is not None and "organisation name" in missing.error
    assert not loopback_hub.repo_exists(f"{ORG}/nope")


async def test_invalid_inputs_raise_before_io(loopback_hub: LoopbackHub) -> None:
    """Programming errors (bad paths, README in files, bad JSON) raise ConfigError at once."""
    pub = _publisher(loopback_hub)
    with anyio.fail_after(5):
        with pytest.raises(ConfigError):
            await pub.publish_run(
                REPO, {"../x": b""}, model_name=MODEL, date_id=RUN1, results_json=b"{}"
            )
        with pytest.raises(ConfigError):
            await pub.publish_run(
                REPO, {"README.md": b""}, model_name=MODEL, date_id=RUN1, results_json=b"{}"
            )
        with pytest.raises(ConfigError):
            await pub.publish_run(REPO, {}, model_name=MODEL, date_id=RUN1, results_json=b"{")
        with pytest.raises(ConfigError):
            await pub.push_details_to_hub("r", "d/{task_name}.parquet", {"../evil": b""})
    assert loopback_hub.requests == ()
