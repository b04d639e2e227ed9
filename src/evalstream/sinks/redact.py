"""A logging filter that keeps Hub tokens out of log lines, on the loggers a push goes through.

With the root logger at DEBUG, httpcore logs every response's headers (and httpx every request
line): a server or proxy that echoes the ``Authorization`` header puts the token in a log line.
``install(token)`` adds one filter to each logger a push uses — a filter on a logger applies to
the records logged on it, not to its children's, so every existing logger under those names gets
it — which rewrites a record whose message holds the token, a ``Bearer ...`` credential or an
``hf_...`` token. Records logged elsewhere are not touched: evalstream never logs a token.
"""

from __future__ import annotations

import logging
import re

PREFIXES = ("evalstream", "httpx", "httpcore", "huggingface_hub", "urllib3")
"""Loggers a push writes to, by name prefix (``httpx2``/``httpcore2`` are huggingface_hub 2's)."""

_CREDENTIAL = re.compile(r"(?i)(bearer\s+)[^\s'\",)\]]+|\bhf_[A-Za-z0-9]{8,}")
REDACTED = "[redacted]"


def redact(text: str, tokens: frozenset[str] | set[str] = frozenset()) -> str:
    """``text`` with every known token, bearer credential and ``hf_`` token replaced."""
    for token in tokens:
        if token and token in text:
            text = text.replace(token, REDACTED)
    return _CREDENTIAL.sub(lambda m: (m.group(1) or "") + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites records that would show a token; never drops a record."""

    def __init__(self) -> None:
        super().__init__("evalstream.redact")
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logging module's to report
            return True
        clean = redact(message, self.tokens)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactTokens()


def install(token: str) -> None:
    """Redact ``token`` (and any credential) on every logger a push uses; idempotent.

    Called when a publisher is made and again before each push, so loggers the HTTP library
    creates lazily are covered too.
    """
    _FILTER.tokens.add(token)
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith(PREFIXES)]
    for name in sorted({*names, *PREFIXES}):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
