"""In-memory state of the loopback Hub: repos with commit history, request log, injected faults.

Kept apart from the HTTP layer so the state has one lock and no sockets: the server threads call
in here, the test thread inspects it through frozen snapshots. Every commit keeps a full snapshot
of the repo's files (bytes are shared between snapshots, so this costs one dict per commit).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Fault", "HubCommit", "HubRequest", "git_blob_oid"]

_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(content: bytes) -> str:
    """Return the git blob sha1 of ``content``: the ``oid`` the real Hub reports for a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


class HubCommit(msgspec.Struct, frozen=True, kw_only=True):
    """One commit of a loopback repo, as tests inspect it."""

    oid: str
    parent: str | None
    summary: str
    description: str
    paths: tuple[str, ...]


class HubRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request the loopback Hub answered (the query string and headers are not kept)."""

    method: str
    path: str
    status: int


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """A canned answer for the next request matching ``method`` and the ``pattern`` regex.

    ``status`` None only delays the request. ``after_apply`` lets the request take effect, then
    answers ``status`` instead: a response lost after the Hub committed.
    """

    method: str
    pattern: str
    status: int | None = 503
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    body: str | None = None
    after_apply: bool = False


@dataclass
class _Commit:
    oid: str
    parent: str | None
    summary: str
    description: str
    files: dict[str, bytes]
    date: datetime


@dataclass
class Repo:
    """A repo's mutable record; only touched under ``HubState.lock``."""

    repo_type: str
    repo_id: str
    private: bool
    created: datetime
    commits: list[_Commit] = field(default_factory=list)

    @property
    def head(self) -> _Commit:
        """The tip of ``main``."""
        return self.commits[-1]

    def at(self, revision: str) -> _Commit | None:
        """Resolve ``main`` or a full commit oid; None when unknown."""
        if revision in ("main", "HEAD"):
            return self.head
        return next((c for c in self.commits if c.oid == revision), None)


class StaleParentError(Exception):
    """Raised when a commit names a parent that is no longer the head of ``main``."""


@dataclass
class _Rule:
    fault: Fault
    remaining: int
    hook: Callable[[], None] | None = None


class HubState:
    """Repos, the request log and the fault queue, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._requests: list[HubRequest] = []
        self._rules: list[_Rule] = []
        self._counter = 0

    # ---- repos -------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        """Return the repo record or None (the caller holds ``lock`` if it reads commits)."""
        return self._repos.get((repo_type, repo_id))

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool) -> bool:
        """Create a repo with the Hub's initial commit; False if it already exists."""
        with self.lock:
            if (repo_type, repo_id) in self._repos:
                return False
            now = datetime.now(UTC)
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created=now)
            self._repos[(repo_type, repo_id)] = repo
            self._append(repo, None, "initial commit", "", {".gitattributes": _GITATTRIBUTES})
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> bool:
        """Delete a repo; False if it did not exist."""
        with self.lock:
            return self._repos.pop((repo_type, repo_id), None) is not None

    def commit(
        self,
        repo: Repo,
        *,
        parent: str | None,
        summary: str,
        description: str = "",
        add: Mapping[str, bytes],
        delete: tuple[str, ...] = (),
        delete_folders: tuple[str, ...] = (),
    ) -> str:
        """Apply one commit atomically and return its oid.

        Raises ``StaleParentError`` if ``parent`` is given and is not the head, ``KeyError`` if a
        deleted file does not exist.
        """
        with self.lock:
            head = repo.head
            if parent is not None and parent != head.oid:
                raise StaleParentError(parent)
            files = dict(head.files)
            for path in delete:
                del files[path]
            for folder in delete_folders:
                prefix = folder.rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            files.update(add)
            return self._append(repo, head.oid, summary, description, files)

    def _append(
        self,
        repo: Repo,
        parent: str | None,
        summary: str,
        description: str,
        files: dict[str, bytes],
    ) -> str:
        self._counter += 1
        seed = f"{repo.repo_id}\0{parent}\0{summary}\0{self._counter}".encode()
        oid = hashlib.sha1(seed, usedforsecurity=False).hexdigest()
        repo.commits.append(_Commit(oid, parent, summary, description, files, datetime.now(UTC)))
        return oid

    def commits(self, repo_type: str, repo_id: str) -> list[HubCommit]:
        """Snapshot of a repo's history, oldest first; KeyError if the repo does not exist."""
        with self.lock:
            repo = self._repos[(repo_type, repo_id)]
            return [
                HubCommit(
                    oid=c.oid,
                    parent=c.parent,
                    summary=c.summary,
                    description=c.description,
                    paths=tuple(sorted(c.files)),
                )
                for c in repo.commits
            ]

    def file_bytes(self, repo_type: str, repo_id: str, path: str, revision: str) -> bytes:
        """A file's content at ``revision``; KeyError if the repo, revision or file is missing."""
        with self.lock:
            commit = self._repos[(repo_type, repo_id)].at(revision)
            if commit is None:
                raise KeyError(revision)
            return commit.files[path]

    # ---- requests and faults -----------------------------------------------------------
    def record(self, request: HubRequest) -> None:
        """Append to the request log."""
        with self.lock:
            self._requests.append(request)

    def requests(self) -> tuple[HubRequest, ...]:
        """Snapshot of the request log."""
        with self.lock:
            return tuple(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log (repos are kept)."""
        with self.lock:
            self._requests.clear()

    def add_rule(self, fault: Fault, times: int, hook: Callable[[], None] | None = None) -> None:
        """Queue ``fault`` for the next ``times`` matching requests (a hook queues separately)."""
        re.compile(fault.pattern)  # fail in the test thread, not in the server
        with self.lock:
            self._rules.append(_Rule(fault, times, hook))

    def take_rule(self, method: str, path: str) -> tuple[Fault | None, Callable[[], None] | None]:
        """Pop one use of the first matching fault and of the first matching hook, in queue order."""
        fault: Fault | None = None
        hook: Callable[[], None] | None = None
        with self.lock:
            for rule in list(self._rules):
                if rule.fault.method not in (method, "*") or not re.search(
                    rule.fault.pattern, path
                ):
                    continue
                if rule.hook is None and fault is None:
                    fault = rule.fault
                elif rule.hook is not None and hook is None:
                    hook = rule.hook
                else:
                    continue
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
        return fault, hook

    def clear_rules(self) -> None:
        """Drop every queued fault and hook."""
        with self.lock:
            self._rules.clear()

    def pending_rules(self) -> int:
        """How many queued uses are left (a test can assert its faults were all consumed)."""
        with self.lock:
            return sum(rule.remaining for rule in self._rules)
