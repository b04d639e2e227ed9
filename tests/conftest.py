"""Shared fixtures: an isolated huggingface_hub environment, and the loopback Hub.

huggingface_hub reads its HF_* variables once, at import, so the process-wide ones are set here
before anything imports it; ``hf_env`` then isolates each test's home, cache and token.
"""

from __future__ import annotations

import os
import subprocess

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from typing import TYPE_CHECKING

import pytest

from evalstream.testing import loopback_hub  # noqa: F401 - re-exported fixture

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session", autouse=True)
def results_files_match_the_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every results file the suite wrote (under its temporary folders, by this process or a
    child) is valid against ``evalstream schema``, checked with a real JSON Schema validator.

    Files a test damaged on purpose (not JSON) or wrote by hand (no ``schema_version``) are
    left out (tests/sinks/test_schema.py checks the validation itself can fail).
    """
    yield
    import json

    import jsonschema

    from evalstream.sinks.schema import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    bad = []
    for path in tmp_path_factory.getbasetemp().rglob("results_*.json"):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "schema_version" not in data:
            continue
        errors = sorted(validator.iter_errors(data), key=str)
        if errors:
            bad.append(f"{path}: {errors[0].json_path}: {errors[0].message}")
    assert not bad, f"{len(bad)} results file(s) off the schema:\n" + "\n".join(bad[:10])


@pytest.fixture
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point huggingface_hub at a fresh HF_HOME with no token, and return that folder."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return home


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


# -- both anyio backends ----------------------------------------------------------------------
# Every async test runs under anyio's pytest plugin; the core modules run on asyncio and trio
# (the API promises both), the others on asyncio only.
CORE_MODULES = {
    "test_tracker",
    "test_backpressure",
    "test_recovery",
    "test_journal",
    "test_runtime",
    "test_cancel_property",
}
BACKENDS = ("asyncio", "trio")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark every coroutine test for anyio's plugin (before it looks for the marker)."""
    import inspect

    if collector.funcnamefilter(name) and inspect.iscoroutinefunction(obj):  # type: ignore[attr-defined]
        pytest.mark.anyio(obj)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``anyio_backend`` per module (before the fixture's own params apply)."""
    if "anyio_backend" in metafunc.fixturenames:
        core = metafunc.module.__name__.rpartition(".")[2] in CORE_MODULES
        metafunc.parametrize("anyio_backend", BACKENDS if core else BACKENDS[:1], scope="module")


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every os.fsync of this process (the journal's included) from here to the end of
    the test: the durability tests pin how many a run or a group commit costs."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls
