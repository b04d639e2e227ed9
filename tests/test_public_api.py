"""The public API is what ``evalstream.__all__`` says, and nothing private leaks into it."""

from __future__ import annotations

import evalstream


def test_all_is_sorted_and_complete() -> None:
    """Every name in __all__ exists, __all__ is sorted, and public names are all listed."""
    assert evalstream.__all__ == sorted(evalstream.__all__)
    for name in evalstream.__all__:
        assert hasattr(evalstream, name), name
    public = {n for n in vars(evalstream) if not n.startswith("_")}
    modules = {n for n, v in vars(evalstream).items() if type(v).__name__ == "module"}
    assert public - modules == set(evalstream.__all__) - {"__version__"}


def test_errors_share_one_root() -> None:
    """Every exported exception derives from EvalStreamError."""
    for name in evalstream.__all__:
        obj = getattr(evalstream, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, evalstream.EvalStreamError), name
