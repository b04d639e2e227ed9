"""Retry policy for the Hub calls huggingface_hub does not retry: create_repo, repo_info, the commit.

huggingface_hub retries its preupload, LFS and pagination requests, but a transient 5xx or a 429
on the commit POST is raised at once, and users lose pushes to it. ``call_with_retry`` runs one
blocking ``HfApi`` call in a worker thread and retries it with capped exponential backoff and
jitter on 408 / 429 / 5xx, timeouts and connection errors, honouring ``Retry-After``, bounded in
attempts and in total time. Anything else is translated into ``HubPushError`` at once, with a
message that says what to check; so is a host that cannot be reached at all (its name does not
resolve, or nothing listens on its port): that is a wrong endpoint or no network, not a Hub that
is down, and waiting does not fix it. The token is scrubbed from every message this module builds or
logs, in case a server or a library ever echoes it.
"""

from __future__ import annotations

import logging
import random
import socket
import traceback
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
import httpx2
import msgspec
from huggingface_hub.errors import HfHubHTTPError

from evalstream._errors import ConfigError, HubPushError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RETRYABLE_STATUS", "RetryPolicy", "call_with_retry", "scrub"]

_T = TypeVar("_T")

logger = logging.getLogger("evalstream.hub")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_RETRYABLE_EXC = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
_REDACTED = "<redacted>"

_HINTS = {
    401: "the Hub rejected the token: check that it is valid and not revoked (`hf auth whoami`), "
    "or pass another one (hub_token=... to the tracker, the HF_TOKEN environment variable, or "
    "--token-file to `evalstream push`)",
    403: "the token is not allowed to do this: it needs write access, and fine-grained tokens "
    "need write permission on the organisation; check that you are a member of the organisation",
    404: "not found: check the organisation name and the repo id, and that the repo is visible "
    "to this token (a private repo needs a token with access to it)",
}


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long to keep retrying a Hub call; defaults suit the Hub's minute-scale rate limits.

    The n-th retry waits ``initial_delay * multiplier**(n-1)`` capped at ``max_delay``, scaled by
    a random factor in ``[1 - jitter, 1 + jitter]`` so that parallel jobs do not retry in step.
    A ``Retry-After`` from the server replaces that delay. No retry starts if it would end after
    ``max_total_seconds`` from the first attempt.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_total_seconds: float = 180.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ConfigError("RetryPolicy needs 0 <= initial_delay <= max_delay")
        if self.multiplier < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")
        if self.max_total_seconds < 0:
            raise ConfigError("RetryPolicy.max_total_seconds must be >= 0")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jitter included."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        factor = 1.0 + self.jitter * (2.0 * (rng or _RNG).random() - 1.0)
        return min(self.max_delay, base * factor)


_RNG = random.Random()


def scrub(text: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` in ``text``; the one way messages leave this module."""
    return text.replace(secret, _REDACTED) if secret else text


def _status(exc: BaseException) -> int | None:
    return exc.response.status_code if isinstance(exc, HfHubHTTPError) else None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header; HTTP dates are ignored (backoff applies)."""
    if not isinstance(exc, HfHubHTTPError):
        return None
    value = exc.response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _label(exc: BaseException) -> str:
    status = _status(exc)
    if status is not None and isinstance(exc, HfHubHTTPError):
        reason = exc.response.reason_phrase or "error"
        server = f": {exc.server_message.strip()}" if exc.server_message else ""
        return f"HTTP {status} {reason}{server}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _unreachable(exc: BaseException) -> str | None:
    """How the host failed when no retry can help: its name did not resolve, or it refused the
    connection (nothing listens there); None for anything else. The OS error is found in the
    chain the HTTP library wraps it in."""
    seen: BaseException | None = exc
    for _ in range(8):  # the wrappers are a few deep; a cycle must not loop
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return "could not be resolved (no DNS record, or no network)"
        if isinstance(seen, ConnectionRefusedError):
            return "could not be reached (the connection was refused)"
        seen = seen.__cause__ or seen.__context__
    return None


def _host(exc: BaseException) -> str:
    try:
        url = exc.request.url if isinstance(exc, httpx2.RequestError) else None
    except RuntimeError:  # an error raised without its request
        url = None
    return f"{url.scheme}://{url.netloc.decode()}" if url is not None else "the Hub's host"


def _is_retryable(exc: BaseException) -> bool:
    status = _status(exc)
    return status in RETRYABLE_STATUS if status is not None else isinstance(exc, _RETRYABLE_EXC)


def translate(exc: BaseException, describe: str, secret: str | None) -> HubPushError:
    """The ``HubPushError`` for a failure that retrying will not fix, with what to check."""
    status = _status(exc)
    unreachable = _unreachable(exc)
    if unreachable is not None:
        message = (
            f"{describe} failed: {_host(exc)} {unreachable}: {_label(exc)}; check the endpoint's "
            "URL and the network (not retried: the Hub was not reached)"
        )
        return HubPushError(scrub(message, secret))
    hint = _HINTS.get(status or 0)
    message = f"{describe} failed: {_label(exc)}" + (f"; {hint}" if hint else "")
    return HubPushError(scrub(message, secret))


def _cause(exc: BaseException, secret: str | None) -> BaseException | None:
    """Chain the original exception only if its full text is free of the token."""
    text = "".join(traceback.format_exception(exc))
    return None if secret and secret in text else exc


async def call_with_retry(
    fn: Callable[[], _T], policy: RetryPolicy, *, describe: str, secret: str | None = None
) -> _T:
    """Run the blocking ``fn`` in a worker thread, retrying transient Hub failures per ``policy``.

    Raises ``HubPushError`` when the failure is not transient (401/403/404, a 4xx, an invalid
    argument, a missing local file) or when attempts or time run out. Exceptions of other types
    are bugs and propagate unchanged. ``describe`` names the operation in messages ("creating
    repo org/x"); ``secret`` is scrubbed from them.

    Cancellation: a cancelled wait between attempts stops at once; a call already running in its
    thread is not abandoned, so cancellation takes effect when that HTTP request returns.
    """
    start = anyio.current_time()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await anyio.to_thread.run_sync(fn)
        except (httpx2.HTTPError, OSError, ValueError) as exc:
            if not _is_retryable(exc) or _unreachable(exc) is not None:
                raise translate(exc, describe, secret) from _cause(exc, secret)
            elapsed = anyio.current_time() - start
            label = scrub(_label(exc), secret)
            if attempt >= policy.max_attempts:
                message = (
                    f"{describe} failed after {attempt} attempts over {elapsed:.1f}s; last error: "
                    f"{label}. The Hub may be down or rate-limiting: retry later"
                )
                raise HubPushError(scrub(message, secret)) from _cause(exc, secret)
            server_delay = _retry_after(exc)
            delay = server_delay if server_delay is not None else policy.backoff(attempt)
            if elapsed + delay > policy.max_total_seconds:
                message = (
                    f"{describe} failed ({label}) and a retry in {delay:.1f}s would exceed the "
                    f"{policy.max_total_seconds:.0f}s budget after {attempt} attempts: retry later"
                )
                raise HubPushError(scrub(message, secret)) from _cause(exc, secret)
            logger.warning(
                "%s failed (%s); retry %d/%d in %.2fs",
                scrub(describe, secret),
                label,
                attempt,
                policy.max_attempts - 1,
                delay,
            )
            await anyio.sleep(delay)
