"""The Hub API subset of HUB-API.md, as pure functions from a parsed request to a reply.

No sockets here: ``_hub_server`` parses HTTP and calls ``route``. Errors are replies with the
``X-Error-Code`` / ``X-Error-Message`` headers huggingface_hub maps to its exception classes, so
the client behaves as against the real Hub. A bearer token is compared, never echoed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import yaml

from evalstream.testing._hub_state import HubState, Repo, StaleParentError, git_blob_oid

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO = r"/api/(models|datasets|spaces)/([^/]+)/([^/]+)"
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")


@dataclass(frozen=True)
class RouteConfig:
    """What the routes need to know about the server: tokens, namespaces, its own URL."""

    endpoint: str
    tokens: frozenset[str]
    read_only_tokens: frozenset[str]
    user: str
    namespaces: frozenset[str] | None
    tree_page_size: int


@dataclass
class Request:
    """A parsed request: raw path (still URL-quoted), query, lower-cased headers, body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Reply:
    """An HTTP answer; ``body`` is sent except for HEAD."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised inside a route to answer with an error status."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def error_reply(status: int, message: str, code: str | None = None) -> Reply:
    """The Hub's error shape: JSON ``{"error"}`` plus the ``X-Error-*`` headers."""
    headers = {"Content-Type": "application/json", "X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return Reply(status, json.dumps({"error": message}).encode(), headers)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status, json.dumps(data).encode(), {"Content-Type": "application/json"} | (headers or {})
    )


def _iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}Z"


def _access(cfg: RouteConfig, req: Request) -> str:
    """Return "none", "read" or "write"; an unknown token is a 401 on every route, as on the Hub."""
    header = req.headers.get("authorization")
    if not header:
        return "none"
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token in cfg.tokens:
        return "write"
    if scheme.lower() == "bearer" and token in cfg.read_only_tokens:
        return "read"
    raise HttpError(401, "Invalid credentials in Authorization header")


def _need_write(cfg: RouteConfig, access: str, namespace: str) -> None:
    if access == "none":
        raise HttpError(401, "You must be authenticated to write to the Hub")
    if access == "read":
        raise HttpError(403, "This token has read-only access; a write token is required")
    if cfg.namespaces is not None and namespace not in cfg.namespaces:
        raise HttpError(403, f"You don't have the rights to write to the namespace {namespace}")


def _open_repo(state: HubState, access: str, kind: str, ns: str, name: str) -> Repo:
    repo = state.repo(_TYPES[kind], f"{ns}/{name}")
    if repo is None:
        raise HttpError(404, "Repository not found", "RepoNotFound")
    if repo.private and access == "none":
        raise HttpError(401, "Repository not found", "RepoNotFound")
    return repo


def _revision(state: HubState, repo: Repo, raw: str) -> tuple[str, dict[str, bytes]]:
    with state.lock:
        commit = repo.at(unquote(raw))
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {unquote(raw)}", "RevisionNotFound")
        return commit.oid, commit.files


def _entries(files: Mapping[str, bytes], base: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{base}/" if base else ""
    dirs: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    for path in sorted(p for p in files if p.startswith(prefix)):
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            if recursive or depth == 1:
                dirs.setdefault(prefix + "/".join(rest[:depth]), []).append(path)
        if recursive or len(rest) == 1:
            size = len(files[path])
            out.append(
                {"type": "file", "oid": git_blob_oid(files[path]), "size": size, "path": path}
            )
    for path, children in dirs.items():
        oid = hashlib.sha1("\0".join(children).encode(), usedforsecurity=False).hexdigest()
        out.append({"type": "directory", "oid": oid, "path": path})
    return sorted(out, key=lambda e: str(e["path"]))


def validate_card(content: str) -> list[str]:
    """Errors the Hub would report for a README's YAML front matter (dataset ``configs`` included)."""
    if not content.startswith("---"):
        return []
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", content, re.DOTALL)
    if match is None:
        return ["the YAML front matter is not closed by a '---' line"]
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["the YAML front matter must be a mapping"]
    errors: list[str] = []
    configs = data.get("configs", [])
    if not isinstance(configs, list):
        return ["configs must be a list"]
    names = [c.get("config_name") if isinstance(c, dict) else None for c in configs]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        errors.append("every config needs a distinct non-empty config_name")
    for config in (c for c in configs if isinstance(c, dict)):
        data_files = config.get("data_files", [])
        for item in data_files if isinstance(data_files, list) else []:
            split = item.get("split") if isinstance(item, dict) else None
            if isinstance(item, dict) and not (isinstance(split, str) and _SPLIT_RE.match(split)):
                errors.append(f"invalid split name {split!r} in config {config.get('config_name')}")
    return errors


def route(cfg: RouteConfig, state: HubState, req: Request) -> Reply:
    """Answer one request; unknown routes get a 404 like any missing page."""
    try:
        return _dispatch(cfg, state, req, _access(cfg, req))
    except HttpError as exc:
        return error_reply(exc.status, exc.message, exc.code)


def _dispatch(cfg: RouteConfig, state: HubState, req: Request, access: str) -> Reply:
    m, path = req.method, req.path
    if m == "GET" and path == "/api/whoami-v2":
        return _whoami(cfg, access)
    if m == "POST" and path in ("/api/repos/create", "/api/repos/delete"):
        return _create_or_delete(cfg, state, req, access)
    if m == "POST" and path == "/api/validate-yaml":
        errors = validate_card(str(json.loads(req.body).get("content", "")))
        payload = {"errors": [{"message": e} for e in errors], "warnings": []}
        return _json(payload, 400 if errors else 200)
    if match := re.fullmatch(_REPO + r"/(preupload|commit|paths-info)/([^/]+)", path):
        kind, ns, name, action, rev = match.groups()
        repo = _open_repo(state, access, kind, ns, name)
        if action == "paths-info":
            return _paths_info(state, repo, rev, req)
        _need_write(cfg, access, ns)
        if action == "preupload":
            return _preupload(state, repo, rev, req)
        return _commit(cfg, state, repo, rev, req)
    if m == "GET" and (match := re.fullmatch(_REPO + r"/tree/([^/]+)(/.*)?", path)):
        kind, ns, name, rev, sub = match.groups()
        return _tree(cfg, state, _open_repo(state, access, kind, ns, name), rev, sub, req)
    if m == "GET" and (match := re.fullmatch(_REPO + r"(?:/revision/([^/]+))?", path)):
        kind, ns, name, rev = match.groups()
        return _repo_info(state, _open_repo(state, access, kind, ns, name), rev or "main")
    resolve = r"/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)"
    if m in ("GET", "HEAD") and (match := re.fullmatch(resolve, path)):
        kind, ns, name, rev, file = match.groups()
        repo = _open_repo(state, access, kind or "models", ns, name)
        oid, files = _revision(state, repo, rev)
        content = files.get(unquote(file))
        if content is None:
            raise HttpError(404, "Entry not found", "EntryNotFound")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{git_blob_oid(content)}"'}
        return _ranged(content, req.headers.get("range"), headers)
    raise HttpError(404, f"Sorry, we can't find the page {m} {path}")


_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def _ranged(content: bytes, header: str | None, headers: dict[str, str]) -> Reply:
    """A file, or the one byte range asked for (206): ``HfFileSystem`` and streaming readers
    (``datasets`` with ``streaming=True``, ``hf://`` paths) read parquet footers and row groups
    by ``Range``, and take a 200 for the whole file as the bytes they asked for."""
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"} | headers
    match = _RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return Reply(200, content, headers)  # no range, or several: the whole file
    size, (first, last) = len(content), match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # "bytes=-N": the last N bytes (the whole file if it is shorter)
        start, end = (max(size - int(last), 0), size - 1) if int(last) else (size, size)
    if start >= size or end < start:
        return Reply(416, b"", headers | {"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Reply(206, content[start : end + 1], headers)


def _whoami(cfg: RouteConfig, access: str) -> Reply:
    if access == "none":
        raise HttpError(401, "Invalid credentials in Authorization header")
    orgs = [{"name": n, "type": "org"} for n in sorted(cfg.namespaces or ()) if n != cfg.user]
    role = "write" if access == "write" else "read"
    token_info = {"displayName": "loopback", "role": role}
    auth = {"type": "access_token", "accessToken": token_info}
    return _json(
        {"type": "user", "name": cfg.user, "fullname": cfg.user, "orgs": orgs, "auth": auth}
    )


def _create_or_delete(cfg: RouteConfig, state: HubState, req: Request, access: str) -> Reply:
    payload = json.loads(req.body)
    name = str(payload["name"])
    namespace = str(payload.get("organization") or cfg.user)
    repo_type = str(payload.get("type") or "model")
    if repo_type not in _URL_PREFIX:
        raise HttpError(400, f"Invalid repo type {repo_type}")
    _need_write(cfg, access, namespace)
    repo_id = f"{namespace}/{name}"
    url = f"{cfg.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"
    if req.path.endswith("/delete"):
        if not state.delete_repo(repo_type, repo_id):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        return Reply(200)
    private = payload.get("visibility") == "private" or payload.get("private") is True
    if not state.create_repo(repo_type, repo_id, private=private):
        return _json({"error": f"You already created this {repo_type} repo", "url": url}, 409)
    return _json({"url": url, "name": repo_id, "id": repo_id})


def _repo_info(state: HubState, repo: Repo, rev: str) -> Reply:
    oid, files = _revision(state, repo, rev)
    with state.lock:
        last = next(c.date for c in repo.commits if c.oid == oid)
    ns = repo.repo_id.split("/")[0]
    return _json(
        {
            "id": repo.repo_id,
            "author": ns,
            "sha": oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": _iso(repo.created),
            "lastModified": _iso(last),
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }
    )


def _preupload(state: HubState, repo: Repo, rev: str, req: Request) -> Reply:
    _, files = _revision(state, repo, rev)
    out = []
    for item in json.loads(req.body)["files"]:
        remote = files.get(item["path"])
        oid = git_blob_oid(remote) if remote is not None else None
        out.append(
            {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid}
        )
    return _json({"files": out})


def _commit(cfg: RouteConfig, state: HubState, repo: Repo, rev: str, req: Request) -> Reply:
    if unquote(rev) != "main" or req.query.get("create_pr"):
        raise HttpError(400, "LoopbackHub only commits to the main branch (no pull requests)")
    header: dict[str, Any] = {}
    add: dict[str, bytes] = {}
    delete: list[str] = []
    folders: list[str] = []
    for line in req.body.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file" and value.get("encoding") == "base64":
            try:
                add[value["path"]] = base64.b64decode(value["content"], validate=True)
            except binascii.Error as exc:
                raise HttpError(400, f"invalid base64 content for {value['path']}") from exc
        elif key == "deletedFile":
            delete.append(value["path"])
        elif key == "deletedFolder":
            folders.append(value["path"])
        else:
            raise HttpError(400, f"LoopbackHub does not support {key!r} commit entries")
    try:
        oid = state.commit(
            repo,
            parent=header.get("parentCommit"),
            summary=str(header.get("summary", "")),
            description=str(header.get("description", "")),
            add=add,
            delete=tuple(delete),
            delete_folders=tuple(folders),
        )
    except StaleParentError as exc:
        raise HttpError(412, "A commit has happened since. Please refresh and try again.") from exc
    except KeyError as exc:
        raise HttpError(
            404, f"A file with this name doesn't exist: {exc}", "EntryNotFound"
        ) from exc
    url = f"{cfg.endpoint}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}"
    return _json({"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None})


def _tree(
    cfg: RouteConfig, state: HubState, repo: Repo, rev: str, sub: str | None, req: Request
) -> Reply:
    _, files = _revision(state, repo, rev)
    base = unquote(sub or "").strip("/")
    recursive = req.query.get("recursive", ["false"])[0].lower() in ("1", "true")
    if base and not any(p.startswith(base + "/") for p in files):
        raise HttpError(404, f"Path {base} not found in tree", "EntryNotFound")
    entries = _entries(files, base, recursive)
    cursor = int(req.query.get("cursor", ["0"])[0])
    end = cursor + cfg.tree_page_size
    headers: dict[str, str] = {}
    if end < len(entries):
        expand = req.query.get("expand", ["false"])[0]
        next_url = f"{cfg.endpoint}{req.path}?recursive={recursive}&expand={expand}&cursor={end}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return _json(entries[cursor:end], headers=headers)


def _paths_info(state: HubState, repo: Repo, rev: str, req: Request) -> Reply:
    _, files = _revision(state, repo, rev)
    wanted = [p.strip("/") for p in parse_qs(req.body.decode()).get("paths", [])]
    out = []
    for path in wanted:
        if path in files:
            content = files[path]
            out.append(
                {"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": path}
            )
        elif any(p.startswith(path + "/") for p in files):
            oid = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()
            out.append({"type": "directory", "oid": oid, "path": path})
    return _json(out)
