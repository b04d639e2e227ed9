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
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from evalstream._errors import UnsafeNameError

if TYPE_CHECKING:
    from collections.abc import Iterable

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


# --- what the file system can hold: every path a save writes, against NAME_MAX and PATH_MAX ---

_LONGEST_DATE_ID = make_date_id(datetime(2000, 1, 1, microsecond=1, tzinfo=UTC))
"""A date_id at its longest (with microseconds): the length every run's paths are checked at."""
_TEMP_RANDOM = 8  # the random characters mkstemp adds after the prefix


def temp_prefix(name: str) -> str:
    """The prefix of the temporary file an atomic write of ``name`` creates beside it
    (``durability.storage.atomic_path``); readers ignore ``.tmp-*`` files."""
    return f".tmp-{name[:40]}-"


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _files(model_name: str, task_names: Iterable[str], template: str) -> list[str]:
    """Every file a save writes for this model and these tasks, relative to output_dir."""
    date_id = _LONGEST_DATE_ID
    return [results_path(model_name, date_id, template)] + [
        details_path(model_name, date_id, task) for task in task_names
    ]


def check_path_limits(
    root: str,
    model_name: str | None,
    task_names: Iterable[str],
    *,
    template: str = "",
    name_max: int,
    path_max: int,
    blame: str,
) -> None:
    """Raise UnsafeNameError unless every path a save writes under ``root`` for this model and
    these tasks fits the file system: each segment within ``name_max`` bytes (NAME_MAX), the
    whole path, with its terminating NUL, within ``path_max`` (PATH_MAX). The temporary file of
    each atomic write counts, and the longest date_id. Without a model yet, the shortest one
    stands in: a task name too long even then is refused now, not after the evaluation.

    ``template``: lighteval's ``results_path_template``, where the results file goes.
    ``blame``: ``"model"`` or ``"task"``, the name the caller just gave (the error names it).
    """
    for rel in _files(model_name or "m", task_names, template):
        folder, _, name = rel.rpartition("/")
        for segment in [*folder.split("/"), name, temp_prefix(name) + "x" * _TEMP_RANDOM]:
            if _size(segment) > name_max:
                raise UnsafeNameError(
                    f"the {blame} name makes the file name {segment[:60]!r}... "
                    f"{_size(segment)} bytes long, over the {name_max}-byte limit of file names "
                    f"in {root} (NAME_MAX); shorten the {blame} name"
                )
            longest = f"{root.rstrip('/')}/{folder}/{segment}"
            if _size(longest) >= path_max:
                raise UnsafeNameError(
                    f"the {blame} name makes the path {longest[:80]!r}... {_size(longest)} "
                    f"bytes long, over the {path_max - 1}-byte limit of paths in {root} "
                    f"(PATH_MAX); shorten the {blame} name, or choose a shorter output_dir"
                )
