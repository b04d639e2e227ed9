"""pytest fixtures for users' own test suites (imported lazily: pytest is a dev dependency).

Re-export in a ``conftest.py`` with ``from evalstream.testing import loopback_hub``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evalstream.testing._hub_server import LoopbackHub

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["loopback_hub"]


@pytest.fixture
def loopback_hub() -> Iterator[LoopbackHub]:
    """A started ``LoopbackHub`` (one random valid token, ``hub.token``), stopped after the test."""
    with LoopbackHub() as hub:
        yield hub
