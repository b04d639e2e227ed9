"""Publishing runs to the Hugging Face Hub: one commit per run, card included, retried, re-planned.

lighteval pushes a run as about tasks + 3 commits, never retries, and rebuilds the card in yet
another commit, so users hit the Hub's commit rate limit and lose pushes to transient errors.
Here a push reads the repo's head and listing, builds the dataset card from that listing plus
the run's files, and sends everything in ONE ``create_commit`` whose ``parent_commit`` is that
head. If someone else committed meanwhile the Hub answers 412, and the push is re-planned against
the new head (new listing, new card) instead of overwriting blindly. Every blocking call goes
through ``call_with_retry``. A failed push is returned as data (``PushOutcome``), never raised
by ``publish_run``: the local files are already written and the run must not be lost.
"""

from __future__ import annotations

import io
import json
import logging
import pathlib
import re
import tempfile
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from evalstream._errors import ConfigError, HubPushError
from evalstream.sinks import redact
from evalstream.sinks.card import build_dataset_card, index_repo_files
from evalstream.sinks.retry import RetryPolicy, call_with_retry, scrub

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

__all__ = ["HubPublisher", "PushOutcome", "details_repo_id", "results_parquet_bytes"]

logger = logging.getLogger("evalstream.hub")

_NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]*")
_REPO_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAX_REPO_NAME = 96
_Files = dict[str, pathlib.Path | bytes]


class PushOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one push did: the commit made, or the error and how to retry, as data."""

    repo_id: str
    commit_oid: str | None
    ok: bool
    error: str | None
    files: list[str]
    attempts: int
    retry_hint: str

    def raise_for_error(self) -> None:
        """Raise ``HubPushError`` if the push failed, for callers that prefer exceptions."""
        if not self.ok:
            raise HubPushError(f"{self.error} (to retry: {self.retry_hint})")


class _Head(msgspec.Struct, frozen=True):
    sha: str
    paths: tuple[str, ...]


def details_repo_id(org: str, model_name: str, public: bool) -> str:
    """lighteval's details repo: ``{org}/details_{model with / -> __}``, ``_private`` unless public."""
    return f"{org}/details_{model_name.replace('/', '__')}" + ("" if public else "_private")


def results_parquet_bytes(results: Mapping[str, object]) -> bytes:
    """The results parquet: one row, one string column per top-level key holding its JSON text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({key: [json.dumps(value, indent=2)] for key, value in results.items()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"invalid path in repo {path!r}: use a relative POSIX path")
    return path


def _model_from_repo(repo_id: str) -> str:
    name = repo_id.split("/")[-1].removeprefix("details_").removesuffix("_private")
    return name.replace("__", "/")


class HubPublisher:
    """Publishes runs and files to dataset repos of one organisation.

    ``target`` is the organisation (``"org"``) or a repo in it (``"org/repo"``); the token is
    ``token`` or else huggingface_hub's (``HF_TOKEN``, ``hf auth login``). Construction does no
    network I/O but fails with ``ConfigError`` when the org or the token is missing, so a run
    configured to push fails before it starts, not after. Every method returns a ``PushOutcome``.
    """

    def __init__(
        self,
        target: str | None,
        token: str | None = None,
        *,
        endpoint: str | None = None,
        public: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        org = (target or "").split("/")[0]
        if not org or not _NAME_RE.fullmatch(org) or (target or "").count("/") > 1:
            raise ConfigError(
                f"pushing to the Hub needs an organisation (hub_results_org), got {target!r}: "
                "pass the name of an org or user you can write to, e.g. 'my-org'"
            )
        resolved = token or get_token()
        if not resolved:
            raise ConfigError(
                "pushing to the Hub needs a token with write access: pass hub_token=... to "
                "the tracker, set the HF_TOKEN environment variable, run `hf auth login`, or "
                "give `evalstream push` a --token-file"
            )
        redact.install(resolved)  # no log line of the push shows the token, even at DEBUG
        self._org = org
        self._token = resolved
        self._public = public
        self._retry = retry or RetryPolicy()
        self._api = HfApi(endpoint=endpoint, token=resolved, library_name="evalstream")

    def __repr__(self) -> str:
        return f"HubPublisher(org={self._org!r}, endpoint={self._api.endpoint!r}, public={self._public})"

    @property
    def org(self) -> str:
        """The organisation pushed to."""
        return self._org

    def check_model_name(self, model_name: str) -> None:
        """Raise ConfigError unless ``model_name``'s details repo is a repo id the Hub accepts."""
        repo_id = details_repo_id(self._org, model_name, self._public)
        name = repo_id.split("/", 1)[1]
        if len(name) > _MAX_REPO_NAME:
            problem = f"is {len(name)} characters long (the Hub allows {_MAX_REPO_NAME})"
        elif not _REPO_CHARS.fullmatch(name) or "--" in name or ".." in name:
            problem = "holds characters the Hub refuses (only letters, digits, '-', '_', '.')"
        else:
            return
        raise ConfigError(
            f"push_to_hub=True: the model name {model_name!r} makes the details repo "
            f"{repo_id!r}, which {problem}; log the model under a name the Hub accepts"
        )

    @property
    def retry_hint(self) -> str:
        """The command that publishes a saved run later."""
        return f"evalstream push RUN_DIR --org {self._org}" + (" --public" if self._public else "")

    async def publish_run(
        self,
        repo_id: str,
        files: Mapping[str, pathlib.Path | bytes],
        *,
        model_name: str,
        date_id: str,
        results_json: bytes,
    ) -> PushOutcome:
        """Push one run and the rebuilt card to ``repo_id`` in a single commit.

        ``files`` maps paths in the repo to local files or bytes (the details parquets, usually);
        ``results_{date_id}.json`` and ``.parquet`` are added from ``results_json`` when absent.
        The repo is created if missing (private unless ``public``). Never raises for Hub errors.
        """
        if not date_id or "/" in date_id:
            raise ConfigError(f"invalid date_id {date_id!r}")
        if "README.md" in files:
            raise ConfigError("README.md is generated by the publisher; do not pass it in files")
        try:
            results = json.loads(results_json)
        except ValueError as exc:
            raise ConfigError(f"results_json is not valid JSON: {exc}") from exc
        run: _Files = {_check_path(path): source for path, source in files.items()}
        run.setdefault(f"results_{date_id}.json", results_json)
        if f"results_{date_id}.parquet" not in run:
            run[f"results_{date_id}.parquet"] = results_parquet_bytes(results)

        async def build(head: _Head) -> _Files:
            paths = set(head.paths) | set(run)
            latest = index_repo_files(paths).latest_run
            newest = results if latest == date_id else await self._latest_results(repo_id, head)
            card = build_dataset_card(
                paths,
                repo_id=repo_id,
                model_name=model_name,
                latest_results=newest,
                hub_url=self._api.endpoint,
            )
            return {**run, "README.md": card.encode()}

        message = f"Add evaluation run {date_id} of {model_name}"
        return await self._push(repo_id, build, message=message, private=not self._public)

    async def push_results_to_hub(
        self, repo_id: str, path_in_repo: str, results_json: bytes, private: bool | None = None
    ) -> PushOutcome:
        """Push a results JSON to any dataset repo (``repo`` alone means ``{org}/repo``)."""
        path = _check_path(path_in_repo)

        async def build(head: _Head) -> _Files:
            return {path: results_json}

        repo_id = repo_id if "/" in repo_id else f"{self._org}/{repo_id}"
        visibility = private if private is not None else not self._public
        return await self._push(repo_id, build, message=f"Upload {path}", private=visibility)

    async def push_details_to_hub(
        self,
        repo_id: str,
        path_in_repo: str,
        details_files: Mapping[str, pathlib.Path | bytes],
        private: bool | None = None,
    ) -> PushOutcome:
        """Push details files, keyed by task name, in one commit to any dataset repo.

        ``{task_name}`` in ``path_in_repo`` is replaced by each key; without it ``path_in_repo``
        is a folder and each key is the file name inside it.
        """
        if "{task_name}" in path_in_repo:
            paths = {task: path_in_repo.replace("{task_name}", task) for task in details_files}
        else:
            paths = {task: f"{path_in_repo.rstrip('/')}/{task}" for task in details_files}
        files: _Files = {_check_path(paths[task]): src for task, src in details_files.items()}

        async def build(head: _Head) -> _Files:
            return files

        repo_id = repo_id if "/" in repo_id else f"{self._org}/{repo_id}"
        visibility = private if private is not None else not self._public
        message = f"Upload {len(files)} details file(s)"
        return await self._push(repo_id, build, message=message, private=visibility)

    async def push_files(
        self,
        repo_id: str,
        files: Mapping[str, pathlib.Path | bytes],
        *,
        message: str,
        private: bool | None = None,
    ) -> PushOutcome:
        """Push ``files`` (path in repo -> local file or bytes) in one commit, card untouched."""
        checked: _Files = {_check_path(path): src for path, src in files.items()}

        async def build(head: _Head) -> _Files:
            return checked

        repo_id = repo_id if "/" in repo_id else f"{self._org}/{repo_id}"
        visibility = private if private is not None else not self._public
        return await self._push(repo_id, build, message=message, private=visibility)

    async def recreate_metadata_card(self, repo_id: str) -> PushOutcome:
        """Rebuild README.md from the listing and the newest results, and commit it alone."""

        async def build(head: _Head) -> _Files:
            latest = await self._latest_results(repo_id, head)
            config = (latest or {}).get("config_general") or {}
            model_name = str(config.get("model_name") or _model_from_repo(repo_id))
            card = build_dataset_card(
                head.paths,
                repo_id=repo_id,
                model_name=model_name,
                latest_results=latest,
                hub_url=self._api.endpoint,
            )
            return {"README.md": card.encode()}

        return await self._push(repo_id, build, message="Update dataset card", private=None)

    # ---- the push loop -----------------------------------------------------------------
    async def _push(
        self,
        repo_id: str,
        build: Callable[[_Head], Awaitable[_Files]],
        *,
        message: str,
        private: bool | None,
    ) -> PushOutcome:
        """Plan against the head, commit with it as parent; on 412 re-plan, at most max_attempts.

        ``private`` None means the repo must exist already (it is not created).
        """
        redact.install(self._token)  # loggers the HTTP library made since the publisher was
        attempts = 0
        planned: list[str] = []

        def outcome(oid: str | None, error: str | None) -> PushOutcome:
            return PushOutcome(
                repo_id=repo_id,
                commit_oid=oid,
                ok=error is None,
                error=error,
                files=planned,
                attempts=attempts,
                retry_hint=self.retry_hint,
            )

        def commit(files: _Files, parent: str) -> str | None:
            nonlocal attempts
            attempts += 1
            return self._commit_sync(repo_id, files, parent, message)

        try:
            for _ in range(self._retry.max_attempts):
                head = await self._call(
                    partial(self._read_head, repo_id, private),
                    f"reading (or creating) dataset repo {repo_id}",
                )
                files = await build(head)
                planned = sorted(files)
                describe = f"committing {len(files)} file(s) to {repo_id}"
                oid = await self._call(partial(commit, files, head.sha), describe)
                if oid is not None:
                    logger.info("pushed %d file(s) to %s in commit %s", len(files), repo_id, oid)
                    return outcome(oid, None)
                logger.info(
                    "%s moved since %s; re-planning against the new head", repo_id, head.sha
                )
            raise HubPushError(
                f"{repo_id} kept receiving other commits: gave up after "
                f"{self._retry.max_attempts} re-plans; retry later"
            )
        except HubPushError as exc:
            logger.warning("push to %s failed: %s", repo_id, exc)
            return outcome(None, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the run: recorded as data
            error = scrub(f"unexpected {type(exc).__name__} while pushing: {exc}", self._token)
            logger.error("push to %s failed: %s", repo_id, error)
            return outcome(None, error)

    async def _call(self, fn: Callable[[], Any], describe: str) -> Any:
        return await call_with_retry(fn, self._retry, describe=describe, secret=self._token)

    def _read_head(self, repo_id: str, private: bool | None) -> _Head:
        """Head sha and the full listing at that sha (one consistent snapshot); creates the repo."""
        try:
            info = self._api.repo_info(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            if private is None:
                raise
            self._api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            logger.info("created dataset repo %s (private=%s)", repo_id, private)
            info = self._api.repo_info(repo_id, repo_type="dataset")
        if info.sha is None:
            raise HubPushError(f"the Hub returned no head commit for {repo_id}")
        paths = self._api.list_repo_files(repo_id, repo_type="dataset", revision=info.sha)
        return _Head(info.sha, tuple(paths))

    def _commit_sync(self, repo_id: str, files: _Files, parent: str, message: str) -> str | None:
        """One ``create_commit``; None when the head moved (412). Fresh operations every call,
        because huggingface_hub marks them as used."""
        ops = [
            CommitOperationAdd(
                path_in_repo=path, path_or_fileobj=src if isinstance(src, bytes) else str(src)
            )
            for path, src in sorted(files.items())
        ]
        try:
            info = self._api.create_commit(
                repo_id, ops, commit_message=message, repo_type="dataset", parent_commit=parent
            )
        except HfHubHTTPError as exc:
            if exc.response.status_code == 412:
                return None
            raise
        return info.oid

    async def _latest_results(self, repo_id: str, head: _Head) -> dict[str, Any] | None:
        """The newest run's results JSON from the repo, or None if it has none."""
        index = index_repo_files(head.paths)
        run = index.latest_run
        path = index.results_json.get(run) if run is not None else None
        if path is None:
            return None

        def download() -> dict[str, Any]:
            with tempfile.TemporaryDirectory() as cache:
                local = self._api.hf_hub_download(
                    repo_id, path, repo_type="dataset", revision=head.sha, cache_dir=cache
                )
                data = json.loads(pathlib.Path(local).read_bytes())
            return data if isinstance(data, dict) else {"results": data}

        result: dict[str, Any] = await self._call(download, f"downloading {path} from {repo_id}")
        return result
