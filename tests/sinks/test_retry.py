"""The retry policy: which failures are retried, how long it waits, what it reports."""

from __future__ import annotations

import random
import socket

import anyio
import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError

from evalstream._errors import ConfigError, HubPushError
from evalstream.sinks.retry import RetryPolicy, call_with_retry

FAST = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01, jitter=0.0)
SECRET = "hf_SuperSecretToken123"


def _http_error(status: int, headers: dict[str, str] | None = None) -> HfHubHTTPError:
    request = httpx2.Request("POST", "http://hub.test/api/datasets/o/r/commit/main")
    response = httpx2.Response(status, headers=headers, request=request)
    return HfHubHTTPError(f"{status} error", response=response)


class Flaky:
    """A callable that raises the given exceptions in turn, then returns ``"done"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_policy_rejects_impossible_settings() -> None:
    """Nonsensical policies fail at construction with ConfigError."""
    for kwargs in (
        {"max_attempts": 0},
        {"initial_delay": 5.0, "max_delay": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"max_total_seconds": -1.0},
    ):
        with pytest.raises(ConfigError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_grows_exponentially_capped_with_bounded_jitter() -> None:
    """Delays double up to max_delay, and jitter stays within its fraction."""
    policy = RetryPolicy(initial_delay=1.0, max_delay=5.0, multiplier=2.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittery = RetryPolicy(initial_delay=1.0, max_delay=100.0, jitter=0.25)
    rng = random.Random(3)
    delays = [jittery.backoff(3, rng) for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert max(delays) - min(delays) > 1.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(status: int) -> None:
    """408, 429 and 5xx are retried until the call succeeds."""
    with anyio.fail_after(5):
        fn = Flaky(_http_error(status), _http_error(status))
        assert await call_with_retry(fn, FAST, describe="op") == "done"
        assert fn.calls == 3


async def test_connection_errors_are_retried() -> None:
    """Connection errors and timeouts (httpx2, raised unwrapped by huggingface_hub) are retried."""
    with anyio.fail_after(5):
        fn = Flaky(httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow"))
        assert await call_with_retry(fn, FAST, describe="op") == "done"
        assert fn.calls == 3


def _refused_url() -> str:
    """A loopback URL nothing listens on: a port bound and released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/whoami-v2"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "http://nonexistent.invalid/api/whoami-v2",
            "http://nonexistent.invalid could not be resolved",
        ),
        (None, "could not be reached (the connection was refused)"),
    ],
    ids=["dns", "refused"],
)
async def test_an_unreachable_host_fails_at_once(url: str | None, said: str) -> None:
    """A name that does not resolve, a port that refuses: one real attempt, no retry, and a
    message that says the host was not reached (not that the Hub is down)."""
    calls = []

    def get() -> object:
        calls.append(1)
        return httpx2.get(url or _refused_url())

    with anyio.fail_after(30):
        with pytest.raises(HubPushError) as exc:
            await call_with_retry(get, FAST, describe="op")
    assert len(calls) == 1
    assert said in str(exc.value) and "down" not in str(exc.value)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "token"), (403, "write access"), (404, "organisation name")],
)
async def test_auth_and_not_found_fail_at_once_with_a_hint(status: int, hint: str) -> None:
    """401/403/404 are not retried and the message says what to check."""
    with anyio.fail_after(5):
        fn = Flaky(_http_error(status))
        with pytest.raises(HubPushError, match=hint) as exc:
            await call_with_retry(fn, FAST, describe="creating repo o/r")
        assert fn.calls == 1
        assert str(exc.value).startswith(f"creating repo o/r failed: HTTP {status}")


async def test_attempts_are_bounded() -> None:
    """A persistent 500 gives up after max_attempts with the attempts and last error in the message."""
    with anyio.fail_after(5):
        fn = Flaky(*[_http_error(500)] * 10)
        with pytest.raises(HubPushError, match=r"after 4 attempts.*HTTP 500"):
            await call_with_retry(fn, FAST, describe="op")
        assert fn.calls == 4


async def test_retry_after_is_honoured() -> None:
    """A Retry-After header replaces the (tiny) backoff delay."""
    with anyio.fail_after(5):
        fn = Flaky(_http_error(429, {"Retry-After": "0.3"}))
        start = anyio.current_time()
        await call_with_retry(fn, FAST, describe="op")
        assert 0.3 <= anyio.current_time() - start < 2.0


async def test_total_time_budget_stops_early() -> None:
    """A retry that would end past max_total_seconds is not attempted."""
    with anyio.fail_after(5):
        policy = RetryPolicy(
            max_attempts=10, initial_delay=0.001, max_delay=1.0, jitter=0.0, max_total_seconds=1.0
        )
        fn = Flaky(_http_error(503, {"Retry-After": "3600"}))
        start = anyio.current_time()
        with pytest.raises(HubPushError, match="budget"):
            await call_with_retry(fn, policy, describe="op")
        assert fn.calls == 1
        assert anyio.current_time() - start < 1.0


async def test_secret_is_scrubbed_and_not_chained() -> None:
    """A token echoed in an error never reaches the message, and the tainted cause is dropped."""
    with anyio.fail_after(5):
        fn = Flaky(ValueError(f"bad header Bearer {SECRET}"))
        with pytest.raises(HubPushError) as exc:
            await call_with_retry(fn, FAST, describe="op", secret=SECRET)
        assert SECRET not in str(exc.value)
        assert "<redacted>" in str(exc.value)
        assert exc.value.__cause__ is None


async def test_bugs_propagate_unchanged() -> None:
    """Exceptions that are not Hub, network, OS or value errors are bugs: not translated."""
    with anyio.fail_after(5):
        with pytest.raises(TypeError):
            await call_with_retry(Flaky(TypeError("bug")), FAST, describe="op")
