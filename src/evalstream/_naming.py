"""Names that become paths: validated here, once, so nothing is ever written outside output_dir.

lighteval joins user-supplied model and task names into paths as they are; a model called
``../../etc`` escapes the output folder there. Here a model name may hold ``/`` (``org/model``
becomes two folders, as lighteval readers expect), but no segment may be empty, ``.`` or ``..``,
and a task name may not hold a path separator at all.
"""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import datetime
from pathlib import PurePosixPath

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


# --- the folder layout: built here, and parsed and globbed here, so readers cannot drift -------

RESULTS_GLOB = "results/**/results_*.json"
"""Every results file of an output folder, relative to it (``results_path`` builds one)."""


def results_name(date_id: str) -> str:
    """File name of a run's results JSON (also its name in a Hub details repo)."""
    return f"results_{date_id}.json"


def details_name(task_name: str, date_id: str) -> str:
    """File name of one task's details parquet (also its name in a Hub details repo)."""
    return f"details_{task_name}_{date_id}.parquet"


def results_path(model_name: str, date_id: str, template: str = "") -> str:
    """Path of the results JSON, relative to output_dir: under ``results/MODEL``, or where
    lighteval 0.13's ``results_path_template`` puts it."""
    folder = results_folder(template, model_name) if template else f"results/{model_name}"
    return f"{folder}/{results_name(date_id)}"


_TEMPLATE_FIELDS = frozenset({"output_dir", "org", "model"})


def results_folder(template: str, model_name: str) -> str:
    """lighteval's ``results_path_template`` for ``model_name``, relative to output_dir.

    As lighteval does: ``org`` is the part of the model name before its ``/`` (empty without
    one), ``model`` the part after. The template must start with ``{output_dir}`` and stay
    inside it (``check_results_template``).
    """
    parts = model_name.split("/")
    org, model = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
    rel = template.format(output_dir="", org=org, model=model).strip("/")
    normal = PurePosixPath(rel)
    if not rel or normal.is_absolute() or ".." in normal.parts or "." in normal.parts:
        raise UnsafeNameError(
            f"results_path_template {template!r} gives {rel!r} for model {model_name!r}: "
            "not a folder inside output_dir"
        )
    for part in normal.parts:
        _check_chars("results_path_template", part)
    return rel


def check_results_template(template: str) -> str:
    """A ``results_path_template`` that can only name a folder inside output_dir."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise UnsafeNameError(f"results_path_template {template!r}: {exc}") from exc
    if not template.startswith("{output_dir}/") or fields - _TEMPLATE_FIELDS:
        raise UnsafeNameError(
            f"results_path_template {template!r} must start with '{{output_dir}}/' and use "
            "only {output_dir}, {org} and {model} (nothing is written outside output_dir)"
        )
    results_folder(template, "org/model")
    return template


def model_details_dir(model_name: str) -> str:
    """Folder of a model's runs' details folders, relative to output_dir (one per date_id)."""
    return f"details/{model_name}"


def details_dir(model_name: str, date_id: str) -> str:
    """Folder of one run's details files, relative to output_dir."""
    return f"{model_details_dir(model_name)}/{date_id}"


def details_path(model_name: str, date_id: str, task_name: str) -> str:
    """Path of one task's details parquet, relative to output_dir."""
    return f"{details_dir(model_name, date_id)}/{details_name(task_name, date_id)}"


def details_glob(date_id: str) -> str:
    """The details files of one run, matched in its date folder (how lighteval finds them)."""
    return details_name("*", date_id)


def results_date_id(path: str) -> str:
    """The date_id of a results file, from its name (``results_{date_id}.json``).

    Lenient, as the readers always were: a JSON file the user names directly need not follow the
    pattern, and its stem then stands for the date_id.
    """
    return PurePosixPath(path).stem.removeprefix("results_")


def results_root(path: str, model_name: str) -> str:
    """The output_dir a results file was saved under: ``results_path`` undone.

    The model name keeps its ``/`` (``org/model`` is two folders), so the number of folders to
    climb comes from the model name, not from the path.
    """
    return str(PurePosixPath(path).parents[len(PurePosixPath(model_name).parts) + 1])


def details_task(file_name: str, date_id: str) -> str | None:
    """The task of a details file of run ``date_id`` (``details_name`` undone), else None."""
    head, tail = "details_", f"_{date_id}.parquet"
    if len(file_name) <= len(head) + len(tail):
        return None
    if not (file_name.startswith(head) and file_name.endswith(tail)):
        return None
    return file_name[len(head) : -len(tail)]
