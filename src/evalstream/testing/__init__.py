"""Test helpers for evalstream users: a loopback Hugging Face Hub and its pytest fixture.

``process_resources()`` counts what a long-lived process holds (fds, threads, children, RSS),
for a daemon's own leak checks.

``LoopbackHub`` serves the Hub API subset huggingface_hub uses to publish, on 127.0.0.1, so a
pipeline can be tested end to end with the real client. ``loopback_hub`` (a pytest fixture) is
loaded on first access, so importing this module does not need pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstream.testing._hub_server import LoopbackHub
from evalstream.testing._hub_state import Fault, HubCommit, HubRequest, git_blob_oid
from evalstream.testing._resources import Resources, process_resources

if TYPE_CHECKING:
    from evalstream.testing._fixtures import loopback_hub

__all__ = [
    "Fault",
    "HubCommit",
    "HubRequest",
    "LoopbackHub",
    "Resources",
    "git_blob_oid",
    "loopback_hub",
    "process_resources",
]


def __getattr__(name: str) -> Any:
    if name == "loopback_hub":
        from evalstream.testing._fixtures import loopback_hub

        return loopback_hub
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
