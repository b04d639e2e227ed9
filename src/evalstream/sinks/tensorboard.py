"""TensorBoard sink: a run's results as scalars and markdown text, one event file per checkpoint.

Eval daemons score the checkpoints of a training run out of order, and TensorBoard reads the
event files of a run folder in name order, so each file is named with the zero-padded training
step (``0003000_events.out.tfevents.…``) and the curves come out sorted. Tags follow lighteval's
``push_to_tensorboard`` so existing dashboards keep working; ``docs/design/tensorboard.md`` lists
the scheme and where evalstream deliberately differs.

Events go through tensorboardX's synchronous ``EventsWriter`` in a worker thread, not its
``SummaryWriter``: that one queues events to a thread of its own, drops that thread's I/O errors
and can block forever on its full queue afterwards. Here every error reaches the caller, the file
is fsynced and closed before the call returns, and no sleep is needed.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
import time
import uuid
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread
import msgspec

from evalstream._errors import ConfigError, RunStateError, TensorBoardError, UnsafeNameError
from evalstream._options import DEFAULTS
from evalstream.stats.rows import STDERR_SUFFIX, is_derived_row, metric_rows

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from types import TracebackType

_CLOSE_TIMEOUT = 10.0
# tensorboardX rewrites tags with this rule on the way to disk; applying it here makes the tags we
# count and document the tags TensorBoard shows (``mmlu:anatomy`` is stored as ``mmlu_anatomy``).
_INVALID_TAG_CHARACTERS = re.compile(r"[^-/\w.]")


class RunInfo(msgspec.Struct, frozen=True):
    """The training run and step an evaluation belongs to; no training library needed."""

    run: str
    step: int = 0

    def __post_init__(self) -> None:
        _check_name("run", self.run)
        if self.step < 0:
            raise ConfigError(f"RunInfo.step must be >= 0 (it names files), got {self.step}")


class TensorBoardOutcome(msgspec.Struct, frozen=True):
    """What the TensorBoard sink did, recorded as data so one failed sink loses nothing else."""

    logdir: str
    files: list[str]
    ok: bool
    error: str | None = None
    scalars: int = 0


def run_info_from(obj: object | None) -> RunInfo | None:
    """Accept a ``RunInfo`` or any object with ``run`` and ``step`` (nanotron's ``GeneralArgs``).

    A ``step`` of None (nanotron's default) means step 0, as for a run without run info.
    """
    if obj is None or isinstance(obj, RunInfo):
        return obj
    run, step = getattr(obj, "run", None), getattr(obj, "step", None)
    if not isinstance(run, str):
        raise ConfigError(
            f"run info {type(obj).__name__} has no string `run` attribute; "
            "pass evalstream.RunInfo(run=..., step=...) instead"
        )
    try:
        step_int = 0 if step is None else operator.index(step)
    except TypeError:
        raise ConfigError(f"run info step must be an integer, got {step!r}") from None
    return RunInfo(run=run, step=step_int)


def write_tensorboard_sync(
    *,
    output_dir: Path,
    results: Mapping[str, Mapping[str, float | None]],
    config_general: Mapping[str, object],
    summary_tasks: Mapping[str, Mapping[str, object]],
    prefix: str = DEFAULTS.tensorboard_metric_prefix,
    run_info: RunInfo | None = None,
) -> list[Path]:
    """Write one event file for this run and checkpoint into ``{output_dir}/tb/{run}_{prefix}``.

    Scalars go at ``global_step = run_info.step`` (0 without). None and non-finite values are
    skipped (TensorBoard cannot plot them; they stay visible in the ``eval_config`` text). The file
    is written under its final ``{step:07d}_`` name, fsynced and closed before returning, so
    files of earlier checkpoints in the same folder are never touched. Raises
    ``TensorBoardError`` on I/O errors and ``ConfigError`` on unsafe names.
    """
    return _write(output_dir, results, config_general, summary_tasks, prefix, run_info)[0]


async def write_tensorboard(
    *,
    output_dir: Path,
    results: Mapping[str, Mapping[str, float | None]],
    config_general: Mapping[str, object],
    summary_tasks: Mapping[str, Mapping[str, object]],
    prefix: str = DEFAULTS.tensorboard_metric_prefix,
    run_info: RunInfo | None = None,
) -> TensorBoardOutcome:
    """Run ``write_tensorboard_sync`` in a worker thread; a failure becomes ``ok=False``, not a raise.

    On cancellation the thread cannot be interrupted: it finishes (the file is complete, named and
    closed), its outcome is discarded and the cancellation propagates.
    """
    logdir = output_dir / "tb" / _folder_name(prefix, run_info)
    write = partial(_write, output_dir, results, config_general, summary_tasks, prefix, run_info)
    try:
        paths, scalars = await anyio.to_thread.run_sync(write)
    except Exception as exc:  # noqa: BLE001 - reported as data; cancellation is no Exception
        error = f"{type(exc).__name__}: {exc}"
        return TensorBoardOutcome(logdir=str(logdir), files=[], ok=False, error=error)
    return TensorBoardOutcome(
        logdir=str(logdir), files=[str(p) for p in paths], ok=True, scalars=scalars
    )


def event_files_for_hub(paths: Iterable[Path], output_dir: Path) -> dict[str, Path]:
    """Map event files to their path in the ``tensorboard_logs`` repo (``tb/{run}_{prefix}/…``).

    The same layout lighteval's ``HFSummaryWriter(path_in_repo="tb")`` produces.
    """
    tb_root = (output_dir / "tb").absolute()
    mapping: dict[str, Path] = {}
    for path in paths:
        try:
            relative = path.absolute().relative_to(tb_root)
        except ValueError:
            raise ConfigError(f"{path} is not under {tb_root}; pass the sink's own files") from None
        mapping[f"tb/{relative.as_posix()}"] = path
    return mapping


class LiveScalars:
    """Optional live running-mean scalars every N samples while the run goes on (off by default).

    Each checkpoint gets its own TensorBoard run, ``tb/{run}_{prefix}_live/step_{step:07d}``, with
    tags ``{prefix}_live/{task}/{metric}`` at step = samples seen for the task: the steps restart
    at each checkpoint, and sharing one run would make TensorBoard purge earlier curves.
    """

    def __init__(
        self,
        output_dir: Path,
        *,
        every: int,
        prefix: str = DEFAULTS.tensorboard_metric_prefix,
        run_info: RunInfo | None = None,
    ) -> None:
        if every < 1:
            raise ConfigError(f"LiveScalars(every=...) must be >= 1, got {every}")
        folder = _folder_name(prefix, run_info)
        _check_name("prefix", prefix)
        step = run_info.step if run_info is not None else 0
        self._logdir = output_dir / "tb" / f"{folder}_live" / f"step_{step:07d}"
        self._every = every
        self._prefix = prefix
        self._writer: Any = None
        self._lock = anyio.Lock()
        self._samples: dict[str, int] = {}
        # task -> metric -> [sum, count]; counts are per metric as non-finite values are skipped
        self._sums: dict[str, dict[str, list[float]]] = {}

    @property
    def logdir(self) -> Path:
        """The TensorBoard run folder this instance writes to."""
        return self._logdir

    async def __aenter__(self) -> Self:
        try:
            opened = await anyio.to_thread.run_sync(_open_events, self._logdir, "events")
            self._writer = opened[0]
        except OSError as exc:
            raise _io_error(self._logdir, exc) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        # Shielded so a cancelled run still closes its file; bounded so a hung disk cannot hang us.
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
            async with self._lock:
                await anyio.to_thread.run_sync(writer.close, abandon_on_cancel=True)

    async def observe(self, task: str, metrics: Mapping[str, float]) -> None:
        """Add one sample's metrics; every ``every`` samples of a task, write its running means.

        Non-finite values are left out of the means. The write is one worker-thread hop per
        emission; raises ``TensorBoardError`` if it fails and ``RunStateError`` outside
        ``async with``.
        """
        if self._writer is None:
            raise RunStateError("LiveScalars.observe() needs `async with LiveScalars(...)` first")
        seen = self._samples[task] = self._samples.get(task, 0) + 1
        sums = self._sums.setdefault(task, {})
        for metric, raw in metrics.items():
            value = _finite(raw)
            if value is not None:
                total = sums.setdefault(metric, [0.0, 0.0])
                total[0] += value
                total[1] += 1
        if seen % self._every:
            return
        scalars = [
            (_clean_tag(f"{self._prefix}_live/{task}/{metric}"), total / count)
            for metric, (total, count) in sums.items()
        ]
        async with self._lock:
            if self._writer is None:  # closed while we waited for the lock
                raise RunStateError("LiveScalars was closed during observe()")
            try:
                await anyio.to_thread.run_sync(_write_events, self._writer, seen, scalars, [])
            except OSError as exc:
                raise _io_error(self._logdir, exc) from exc


# --- pure helpers: tags and markdown -----------------------------------------------------------


def _check_name(what: str, name: str) -> None:
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        raise UnsafeNameError(
            f"TensorBoard {what} {name!r} must be a non-empty folder name without path separators"
        )


def _folder_name(prefix: str, run_info: RunInfo | None) -> str:
    return prefix if run_info is None else f"{run_info.run}_{prefix}"


def _clean_tag(tag: str) -> str:
    return _INVALID_TAG_CHARACTERS.sub("_", tag).lstrip("/")


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _scalars(results: Mapping[str, Mapping[str, object]], prefix: str) -> list[tuple[str, float]]:
    """lighteval's tag scheme; suite means are recomputed over task rows, not derived rows."""
    scalars: list[tuple[str, float]] = []
    suites: dict[str, dict[str, list[float]]] = {}
    for row in metric_rows(results):
        if is_derived_row(row.task):
            continue
        parts = row.task.split("|")
        task = parts[1] if len(parts) == 3 else row.task  # lighteval keeps other names whole
        suite = task.split(":")[0] if ":" in task else None
        if (value := _finite(row.value)) is not None:
            if suite is None:
                tag = f"{prefix}/{task}/{row.metric}"
            else:
                tag = f"{prefix}_{suite}/{task}/{row.metric}"
                suites.setdefault(suite, {}).setdefault(row.metric, []).append(value)
            scalars.append((_clean_tag(tag), value))
        if (stderr := _finite(row.stderr)) is not None:  # lighteval's tag: the key, whole
            tag = f"stderr_{prefix}/{task}/{row.metric}{STDERR_SUFFIX}"
            scalars.append((_clean_tag(tag), stderr))
    for suite, by_metric in suites.items():
        for metric, values in by_metric.items():
            mean = math.fsum(values) / len(values)
            scalars.append((_clean_tag(f"{prefix}/{suite}/{metric}"), mean))
    return scalars


def _cell(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    heads = list(headers)
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(obj: Mapping[str, object], parent: str = "") -> Iterable[tuple[str, object]]:
    for key, value in obj.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{parent}{key}.")
        else:
            yield f"{parent}{key}", value


def _results_markdown(
    results: Mapping[str, Mapping[str, object]], config_general: Mapping[str, object]
) -> str:
    rows = [(r.task, r.metric, r.value, r.stderr) for r in metric_rows(results)]
    return (
        "### Results\n\n"
        + _table(["Task", "Metric", "Value", "Stderr"], rows)
        + "\n\n### Run\n\n"
        + _table(["Key", "Value"], _flatten(config_general))
    )


# --- blocking I/O, always called in a worker thread ------------------------------------------


def _io_error(logdir: Path, exc: OSError) -> TensorBoardError:
    reason = exc.strerror or str(exc)
    return TensorBoardError(
        f"cannot write TensorBoard events under {logdir}: {reason}; "
        "check that output_dir is a writable folder with free space"
    )


def _open_events(logdir: Path, file_prefix: str) -> tuple[Any, Path]:
    """A tensorboardX writer on a fresh ``{file_prefix}.out.tfevents.{time}.{host}.{id}`` file."""
    from tensorboardX.event_file_writer import EventsWriter  # deferred: heavy protobuf import

    logdir.mkdir(parents=True, exist_ok=True)
    # the random suffix keeps two writes of one step in the same second from clobbering each other,
    # and finds our file without reading the writer's private attributes
    suffix = f".{uuid.uuid4().hex[:12]}"
    writer = EventsWriter(str(logdir / file_prefix), suffix)
    (path,) = logdir.glob(f"{file_prefix}.out.tfevents.*{suffix}")
    return writer, path


def _write_events(
    writer: Any, step: int, scalars: list[tuple[str, float]], texts: list[tuple[str, str]]
) -> None:
    from tensorboardX import summary
    from tensorboardX.proto.event_pb2 import Event

    for tag, value in scalars:
        writer.write_event(
            Event(wall_time=time.time(), step=step, summary=summary.scalar(tag, value))
        )
    for tag, text in texts:  # stored as "{tag}/text_summary", as tensorboardX's add_text does
        writer.write_event(Event(wall_time=time.time(), step=step, summary=summary.text(tag, text)))
    writer.flush()  # flush + fsync: an emission is on disk when the call returns


def _write(
    output_dir: Path,
    results: Mapping[str, Mapping[str, float | None]],
    config_general: Mapping[str, object],
    summary_tasks: Mapping[str, Mapping[str, object]],
    prefix: str,
    run_info: RunInfo | None,
) -> tuple[list[Path], int]:
    _check_name("prefix", prefix)
    logdir = output_dir / "tb" / _folder_name(prefix, run_info)
    step = run_info.step if run_info is not None else 0
    scalars = _scalars(results, prefix)
    texts = [("eval_config", _results_markdown(results, config_general))]
    texts += [
        (f"eval_details_{task}", _table(["Key", "Value"], _flatten(summary)))
        for task, summary in summary_tasks.items()
    ]
    try:
        writer, path = _open_events(logdir, f"{step:07d}_events")
        try:
            _write_events(writer, step, scalars, texts)
        finally:
            writer.close()
    except OSError as exc:
        raise _io_error(logdir, exc) from exc
    return [path], len(scalars)
