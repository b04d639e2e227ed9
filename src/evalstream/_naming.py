"""Names that become paths: validated here, once, so nothing is ever written outside output_dir.

lighteval joins user-supplied model and task names into paths as they are; a model called
``../../etc`` escapes the output folder there. Here a model name may hold ``/`` (``org/model``
becomes two folders, as lighteval readers expect), but no segment may be empty, ``.`` or ``..``,
and a task name may not hold a path separator at all.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from evalstream._errors import UnsafeNameError

_MAX_SEGMENT_BYTES = 150  # leaves room for "details_" + "_" + date_id + ".parquet" under 255
_FORBIDDEN = re.compile(r"[\\\x00]")


def _check_chars(kind: str, name: str) -> None:
    if not name:
        raise UnsafeNameError(f"the {kind} name is empty; give a non-empty name")
    if _FORBIDDEN.search(name) or any(unicodedata.category(c) == "Cc" for c in name):
        raise UnsafeNameError(
            f"the {kind} name {name!r} contains a backslash or a control character; "
            "remove it (names become file names)"
        )


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe relative path of one or more segments, else raise."""
    _check_chars("model", name)
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafeNameError(
                f"the model name {name!r} has an empty, '.' or '..' path segment, which would "
                "write outside output_dir; use a name like 'org/model'"
            )
        if len(segment.encode()) > _MAX_SEGMENT_BYTES:
            raise UnsafeNameError(
                f"a segment of the model name {name!r} is longer than {_MAX_SEGMENT_BYTES} bytes"
            )
    return name


def check_task_name(name: str) -> str:
    """Return ``name`` if it can be one file-name component (``|`` and ``:`` are fine), else raise."""
    _check_chars("task", name)
    if "/" in name:
        raise UnsafeNameError(
            f"the task name {name!r} contains '/', which would make the details file a folder; "
            "use a name like 'suite|task|fewshot'"
        )
    if name in (".", "..") or name.startswith("."):
        raise UnsafeNameError(f"the task name {name!r} may not start with '.'")
    if len(name.encode()) > _MAX_SEGMENT_BYTES:
        raise UnsafeNameError(
            f"the task name {name[:40]!r}... is longer than {_MAX_SEGMENT_BYTES} bytes"
        )
    return name


def make_date_id(now: datetime | None = None) -> str:
    """lighteval's run id: local ISO time with ``:`` replaced by ``-``."""
    moment = now if now is not None else datetime.now().astimezone()
    return moment.replace(tzinfo=None).isoformat().replace(":", "-")


def results_path(model_name: str, date_id: str) -> str:
    """Path of the results JSON, relative to output_dir."""
    return f"results/{model_name}/results_{date_id}.json"


def details_path(model_name: str, date_id: str, task_name: str) -> str:
    """Path of one task's details parquet, relative to output_dir."""
    return f"details/{model_name}/{date_id}/details_{task_name}_{date_id}.parquet"
