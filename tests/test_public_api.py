"""The public API is what ``evalstream.__all__`` says, and nothing private leaks into it."""

from __future__ import annotations

import subprocess
import sys

import evalstream


def test_all_is_sorted_and_complete() -> None:
    """Every name in __all__ resolves, __all__ is sorted, and dir() shows exactly it."""
    assert evalstream.__all__ == sorted(evalstream.__all__)
    for name in evalstream.__all__:
        assert getattr(evalstream, name) is not None, name
    assert dir(evalstream) == evalstream.__all__


def test_errors_share_one_root() -> None:
    """Every exported exception derives from EvalStreamError."""
    for name in evalstream.__all__:
        obj = getattr(evalstream, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, evalstream.EvalStreamError), name


def test_import_is_cheap() -> None:
    """`import evalstream` loads no heavy dependency until a name is used."""
    code = (
        "import sys, evalstream; "
        "print(sorted(m for m in ('numpy', 'pyarrow', 'huggingface_hub', 'tensorboardX') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
