"""A loopback Hugging Face Hub: an HTTP server on 127.0.0.1 for tests that use the real client.

The real Hub is not reachable from tests and mocking ``HfApi`` would test nothing of the HTTP
exchange, so this speaks the subset of the Hub API that huggingface_hub uses to publish a repo
(see ``_hub_routes``) from the stdlib ``ThreadingHTTPServer`` in a background thread. It is a
sync and an async context manager; ``stop`` releases injected delays first, so it never waits on
them. Every response closes its connection (HTTP/1.0), so no client socket outlives a request.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Self, cast
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.to_thread

from evalstream.testing._hub_routes import Reply, Request, RouteConfig, error_reply, route
from evalstream.testing._hub_state import Fault, HubCommit, HubRequest, HubState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from huggingface_hub import HfApi

__all__ = ["LoopbackHub"]

logger = logging.getLogger("evalstream.testing.hub")


class LoopbackHub:
    """An in-memory Hub on ``127.0.0.1`` with token checks, a request log and fault injection.

    ``tokens`` may write everywhere (or only to ``namespaces`` when given), ``read_only_tokens``
    get 403 on writes, any other bearer gets 401. Without ``tokens`` one random token is made and
    exposed as ``hub.token``. Use ``with LoopbackHub() as hub`` or ``async with LoopbackHub()``.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        read_only_tokens: Iterable[str] = (),
        user: str = "loopback-user",
        namespaces: Iterable[str] | None = None,
        tree_page_size: int = 1000,
    ) -> None:
        valid = list(tokens) if tokens is not None else [f"hf_loopback_{secrets.token_hex(12)}"]
        if not valid:
            raise ValueError("LoopbackHub needs at least one valid token")
        self.token: str = valid[0]
        self._tokens = frozenset(valid)
        self._read_only = frozenset(read_only_tokens)
        self._user = user
        self._namespaces = None if namespaces is None else frozenset(namespaces) | {user}
        self._page_size = tree_page_size
        self._state = HubState()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._server is None else self.endpoint
        return f"<LoopbackHub {state}>"

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """Base URL to give ``HfApi(endpoint=...)`` (or ``HF_ENDPOINT`` in a subprocess)."""
        if self._server is None:
            raise RuntimeError("LoopbackHub is not started")
        return self._server.config.endpoint

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("LoopbackHub is already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub_state = self._state
        server.stopping = self._stopping
        server.config = RouteConfig(
            endpoint=f"http://127.0.0.1:{server.server_address[1]}",
            tokens=self._tokens,
            read_only_tokens=self._read_only,
            user=self._user,
            namespaces=self._namespaces,
            tree_page_size=self._page_size,
        )
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Release pending delays, stop serving, close the socket and join every thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: stopping waits for the serve loop (<= 50 ms) and must finish even if cancelled.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    def api(self, token: str | None = None) -> HfApi:
        """An ``HfApi`` bound to this server and ``token`` (default: ``hub.token``)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=token or self.token)

    # ---- faults ------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        pattern: str,
        *,
        status: int | None = 503,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        body: str | None = None,
        after_apply: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``pattern`` (a regex) with ``status``.

        ``method`` may be ``"*"``. Faults queue up in injection order. ``delay`` seconds are waited
        first (cut short by ``stop``); ``status=None`` only delays. ``after_apply=True`` lets the
        request take effect and then answers ``status``: the response the client lost.
        """
        fault = Fault(
            method=method.upper(),
            pattern=pattern,
            status=status,
            headers=tuple((headers or {}).items()),
            delay=delay,
            body=body,
            after_apply=after_apply,
        )
        self._state.add_rule(fault, times)

    def on_request(
        self, method: str, pattern: str, callback: Callable[[], None], *, times: int = 1
    ) -> None:
        """Run ``callback()`` in the server thread before handling the next matching request.

        Used to make something happen at an exact point of a client's sequence, such as a
        concurrent commit landing between a publisher's planning and its commit. Hooks queue
        apart from faults: one request can take a hook and a fault.
        """
        fault = Fault(method=method.upper(), pattern=pattern, status=None)
        self._state.add_rule(fault, times, callback)

    def clear_faults(self) -> None:
        """Drop every queued fault and hook: the Hub heals."""
        self._state.clear_rules()

    @property
    def pending_faults(self) -> int:
        """Injected uses not consumed yet."""
        return self._state.pending_rules()

    # ---- inspection --------------------------------------------------------------------
    @property
    def requests(self) -> tuple[HubRequest, ...]:
        """Every request answered so far, in order: method, path, status."""
        return self._state.requests()

    def count(self, method: str | None = None, pattern: str | None = None) -> int:
        """How many recorded requests match ``method`` and the ``pattern`` regex (searched in the path)."""
        return sum(
            1
            for r in self._state.requests()
            if (method is None or r.method == method.upper())
            and (pattern is None or re.search(pattern, r.path))
        )

    def clear_requests(self) -> None:
        """Forget the request log; repos stay."""
        self._state.clear_requests()

    def create_repo(
        self, repo_id: str, *, repo_type: str = "dataset", private: bool = True
    ) -> None:
        """Create a repo directly (no HTTP), with the Hub's initial commit."""
        self._state.create_repo(repo_type, repo_id, private=private)

    def add_commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        summary: str = "server-side commit",
        delete: Iterable[str] = (),
        repo_type: str = "dataset",
    ) -> str:
        """Commit directly (no HTTP) on top of the head, as another writer would; returns the oid."""
        repo = self._state.repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        return self._state.commit(
            repo, parent=None, summary=summary, add=dict(files), delete=tuple(delete)
        )

    def commits(self, repo_id: str, *, repo_type: str = "dataset") -> list[HubCommit]:
        """The repo's history, oldest first (the first is the Hub's initial commit)."""
        return self._state.commits(repo_type, repo_id)

    def head(self, repo_id: str, *, repo_type: str = "dataset") -> str:
        """The oid of ``main``."""
        return self.commits(repo_id, repo_type=repo_type)[-1].oid

    def files(self, repo_id: str, *, repo_type: str = "dataset") -> tuple[str, ...]:
        """Paths on ``main``."""
        return self.commits(repo_id, repo_type=repo_type)[-1].paths

    def file_bytes(
        self, repo_id: str, path: str, *, repo_type: str = "dataset", revision: str = "main"
    ) -> bytes:
        """A file's bytes at ``revision``; KeyError if missing."""
        return self._state.file_bytes(repo_type, repo_id, path, revision)

    def repo_exists(self, repo_id: str, *, repo_type: str = "dataset") -> bool:
        """Whether the repo exists."""
        return self._state.repo(repo_type, repo_id) is not None

    def repo_private(self, repo_id: str, *, repo_type: str = "dataset") -> bool:
        """The repo's visibility; KeyError if it does not exist."""
        repo = self._state.repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        return repo.private


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    hub_state: HubState
    stopping: threading.Event
    config: RouteConfig

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-response is its own business: log, do not print to stderr."""
        logger.debug(
            "LoopbackHub connection error from %s", client_address, exc_info=sys.exc_info()
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: object) -> None:
        """Silence the stdlib's stderr access log; ``hub.requests`` is the log."""

    def _handle(self, method: str) -> None:
        server = cast("_Server", self.server)
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(method, split.path, parse_qs(split.query), headers, self._read_body())
        try:
            fault, hook = server.hub_state.take_rule(method, split.path)
            if hook is not None:
                hook()
            if fault is not None and fault.delay > 0:
                server.stopping.wait(fault.delay)
            if fault is not None and fault.status is not None and not fault.after_apply:
                reply = _fault_reply(fault)
            else:
                reply = route(server.config, server.hub_state, req)
                if fault is not None and fault.status is not None:
                    reply = _fault_reply(fault)
        except Exception:
            logger.exception("LoopbackHub failed on %s %s", method, split.path)
            reply = error_reply(500, "LoopbackHub internal error")
        server.hub_state.record(HubRequest(method=method, path=split.path, status=reply.status))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


def _fault_reply(fault: Fault) -> Reply:
    status = fault.status if fault.status is not None else 500
    reply = error_reply(status, fault.body or f"LoopbackHub injected {status}")
    reply.headers.update(dict(fault.headers))
    return reply
