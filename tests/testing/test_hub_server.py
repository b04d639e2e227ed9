"""The loopback Hub, driven by huggingface_hub's real client."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from evalstream.testing import LoopbackHub, git_blob_oid

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("hf_env")

REPO = "org/ds"


def _commit(api: HfApi, files: dict[str, bytes], parent: str | None = None) -> str:
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in files.items()]
    info = api.create_commit(
        REPO, ops, commit_message="test", repo_type="dataset", parent_commit=parent
    )
    return info.oid


def _status(exc: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return exc.value.response.status_code


def test_create_repo_visibility_and_409(loopback_hub: LoopbackHub) -> None:
    """create_repo records visibility, answers 409 on an existing repo, and exist_ok hides it."""
    api = loopback_hub.api()
    url = api.create_repo(REPO, repo_type="dataset", private=True)
    assert url.endswith(f"/datasets/{REPO}")
    assert loopback_hub.repo_private(REPO)
    api.create_repo("org/pub", repo_type="dataset", private=False)
    assert not loopback_hub.repo_private("org/pub")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO, repo_type="dataset")
    assert _status(exc) == 409
    api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    assert [c.summary for c in loopback_hub.commits(REPO)] == ["initial commit"]
    assert loopback_hub.count("POST", "/api/repos/create") == 4


def test_commit_list_download_roundtrip(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """A commit's files are listed, downloadable byte for byte, and reported by repo_info."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    payload = bytes(range(256)) * 7
    oid = _commit(api, {"a/b|c:d.parquet": payload, "README.md": b"hello"})
    assert api.repo_info(REPO, repo_type="dataset").sha == oid == loopback_hub.head(REPO)
    files = api.list_repo_files(REPO, repo_type="dataset")
    assert files == [".gitattributes", "README.md", "a/b|c:d.parquet"]
    assert api.file_exists(REPO, "a/b|c:d.parquet", repo_type="dataset")
    assert not api.file_exists(REPO, "a/missing", repo_type="dataset")
    local = api.hf_hub_download(REPO, "a/b|c:d.parquet", repo_type="dataset", cache_dir=tmp_path)
    with open(local, "rb") as f:
        assert f.read() == payload == loopback_hub.file_bytes(REPO, "a/b|c:d.parquet")


def test_ranged_reads_get_the_bytes_asked_for(loopback_hub: LoopbackHub) -> None:
    """HfFileSystem reads by Range, as streaming readers do: each block is the bytes asked for
    (206); a suffix range gives the file's tail, a range past the end 416."""
    from huggingface_hub import HfFileSystem

    payload = bytes(range(256)) * 40
    loopback_hub.create_repo(REPO, private=True)
    loopback_hub.add_commit(REPO, {"d/f.parquet": payload})
    fs = HfFileSystem(endpoint=loopback_hub.endpoint, token=loopback_hub.token)
    with fs.open(f"datasets/{REPO}/d/f.parquet", "rb", block_size=100) as f:
        f.seek(5000)
        assert f.read(300) == payload[5000:5300]
        f.seek(-8, 2)  # a parquet footer
        assert f.read() == payload[-8:]
    url = f"{loopback_hub.endpoint}/datasets/{REPO}/resolve/main/d/f.parquet"
    auth = {"Authorization": f"Bearer {loopback_hub.token}"}
    for asked, status, body in (
        ("bytes=10-19", 206, payload[10:20]),
        ("bytes=10200-", 206, payload[10200:]),
        ("bytes=-5", 206, payload[-5:]),
        ("bytes=-99999", 206, payload),
        ("bytes=20000-", 416, b""),
        ("items=1-2", 200, payload),
    ):
        request = urllib.request.Request(url, headers=auth | {"Range": asked})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                got = (reply.status, reply.read())
        except urllib.error.HTTPError as exc:
            got = (exc.code, b"")
            exc.close()
        assert got == (status, body), asked


def test_revision_routes_and_deletes(loopback_hub: LoopbackHub) -> None:
    """Old commits stay readable by oid; deletions apply; unknown revisions are 404s."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    first = _commit(api, {"x.txt": b"1"})
    api.create_commit(
        REPO, [CommitOperationDelete("x.txt")], commit_message="rm", repo_type="dataset"
    )
    assert "x.txt" not in api.list_repo_files(REPO, repo_type="dataset")
    assert "x.txt" in api.list_repo_files(REPO, repo_type="dataset", revision=first)
    assert api.repo_info(REPO, repo_type="dataset", revision=first).sha == first
    with pytest.raises(HfHubHTTPError) as exc:
        api.repo_info(REPO, repo_type="dataset", revision="0" * 40)
    assert _status(exc) == 404


def test_stale_parent_commit_gets_412(loopback_hub: LoopbackHub) -> None:
    """A commit whose parentCommit is not the head is refused with 412 and changes nothing."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    base = loopback_hub.head(REPO)
    _commit(api, {"one": b"1"}, parent=base)
    with pytest.raises(HfHubHTTPError) as exc:
        _commit(api, {"two": b"2"}, parent=base)
    assert _status(exc) == 412
    assert len(loopback_hub.commits(REPO)) == 2


def test_preupload_reports_remote_oids_so_unchanged_files_are_skipped(
    loopback_hub: LoopbackHub,
) -> None:
    """Re-committing identical bytes makes no commit: preupload returns the remote blob oid."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    oid = _commit(api, {"same": b"content"})
    assert _commit(api, {"same": b"content"}) == oid
    assert len(loopback_hub.commits(REPO)) == 2
    entries = {e.path: e for e in api.list_repo_tree(REPO, repo_type="dataset")}
    assert getattr(entries["same"], "blob_id", None) == git_blob_oid(b"content")


def test_tokens_401_403_and_private_reads(loopback_hub: LoopbackHub) -> None:
    """Unknown tokens get 401, read-only tokens 403 on writes, anonymous reads of private repos fail."""
    with LoopbackHub(tokens=["hf_writer"], read_only_tokens=["hf_reader"]) as hub:
        hub.create_repo(REPO, private=True)
        with pytest.raises(HfHubHTTPError) as exc:
            hub.api("hf_wrong").repo_info(REPO, repo_type="dataset")
        assert _status(exc) == 401
        with pytest.raises(HfHubHTTPError) as exc:
            hub.api("hf_reader").create_repo("org/other", repo_type="dataset")
        assert _status(exc) == 403
        assert hub.api("hf_reader").repo_info(REPO, repo_type="dataset").private
        anonymous = HfApi(endpoint=hub.endpoint, token=False)
        with pytest.raises(RepositoryNotFoundError):
            anonymous.repo_info(REPO, repo_type="dataset")
        assert hub.api("hf_writer").whoami()["auth"]["accessToken"]["role"] == "write"


def test_namespaces_restrict_writes() -> None:
    """With ``namespaces``, creating a repo elsewhere is a 403."""
    with LoopbackHub(namespaces=["org"]) as hub:
        hub.api().create_repo("org/ok", repo_type="dataset")
        with pytest.raises(HfHubHTTPError) as exc:
            hub.api().create_repo("stranger/no", repo_type="dataset")
        assert _status(exc) == 403


def test_injected_faults_queue_then_clear(loopback_hub: LoopbackHub) -> None:
    """Faults answer the matching requests in order, with their headers, then the route heals."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    loopback_hub.inject("POST", r"/commit/", status=503, times=2)
    loopback_hub.inject("POST", r"/commit/", status=429, headers={"Retry-After": "7"})
    seen = []
    for _ in range(3):
        with pytest.raises(HfHubHTTPError) as exc:
            _commit(api, {"f": b"x"})
        seen.append((_status(exc), exc.value.response.headers.get("Retry-After")))
    assert seen == [(503, None), (503, None), (429, "7")]
    assert loopback_hub.pending_faults == 0
    _commit(api, {"f": b"x"})
    statuses = [r.status for r in loopback_hub.requests if "/commit/" in r.path]
    assert statuses == [503, 503, 429, 200]
    assert len(loopback_hub.commits(REPO)) == 2


def test_after_apply_fault_commits_but_reports_error(loopback_hub: LoopbackHub) -> None:
    """``after_apply`` simulates a lost response: the commit lands, the client sees a 502."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    loopback_hub.inject("POST", "/commit/", status=502, after_apply=True)
    with pytest.raises(HfHubHTTPError) as exc:
        _commit(api, {"f": b"x"})
    assert _status(exc) == 502
    assert loopback_hub.file_bytes(REPO, "f") == b"x"


def test_tree_pagination_follows_link_headers() -> None:
    """Listings longer than a page are split with Link headers and the client reassembles them."""
    with LoopbackHub(tree_page_size=2) as hub:
        hub.create_repo(REPO)
        files = {f"d/{i}.txt": str(i).encode() for i in range(5)}
        hub.add_commit(REPO, files)
        listed = hub.api().list_repo_files(REPO, repo_type="dataset")
        assert listed == sorted([".gitattributes", *files])
        assert hub.count("GET", "/tree/") == 4  # 7 entries (with folder "d") in pages of 2


def test_invalid_card_yaml_is_rejected(loopback_hub: LoopbackHub) -> None:
    """validate-yaml refuses a README whose configs use an invalid split name."""
    api = loopback_hub.api()
    api.create_repo(REPO, repo_type="dataset")
    card = (
        b"---\nconfigs:\n- config_name: a\n  data_files:\n  - split: 2025-01-01\n    path: x\n---\n"
    )
    with pytest.raises(ValueError, match="Invalid metadata"):
        _commit(api, {"README.md": card})
    assert len(loopback_hub.commits(REPO)) == 1


def test_model_repos_work_too(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """Model repos (no repo_type) use the same routes without the ``datasets/`` prefix."""
    api = loopback_hub.api()
    api.create_repo("org/model")
    api.upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id="org/model")
    assert api.list_repo_files("org/model") == [".gitattributes", "w.bin"]
    with open(api.hf_hub_download("org/model", "w.bin", cache_dir=tmp_path), "rb") as f:
        assert f.read() == b"w"
    assert loopback_hub.file_bytes("org/model", "w.bin", repo_type="model") == b"w"


async def test_async_context_manager_and_stop_releases_delays() -> None:
    """``async with`` starts and stops the server; stopping cuts a pending injected delay short."""
    with anyio.fail_after(10):
        arrived = threading.Event()
        async with LoopbackHub() as hub:
            api = hub.api()
            hub.on_request("GET", "/api/whoami-v2", arrived.set)
            hub.inject("GET", "/api/whoami-v2", status=None, delay=60)
            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, api.whoami)
                assert await anyio.to_thread.run_sync(arrived.wait, 5)
                await anyio.to_thread.run_sync(hub.stop)
        assert anyio.current_time() - start < 5
        assert [r.status for r in hub.requests] == [200]
        with pytest.raises(RuntimeError):
            _ = hub.endpoint


def test_testing_module_exports_resolve() -> None:
    """Every name in ``evalstream.testing.__all__`` resolves, the lazy pytest fixture included."""
    from evalstream import testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError):
        _ = testing.no_such_name  # type: ignore[attr-defined]
