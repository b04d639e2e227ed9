"""inspect_ai logs: ``evalstream export RUN --format inspect`` and ``evalstream import LOG
--format inspect`` (the ``inspect`` extra).

Both directions go through inspect_ai's own code, so its format is its own business: export builds
its pydantic log types and writes them with ``write_eval_log``; import reads with
``read_eval_log`` and turns scores into numbers with inspect's ``value_to_float`` (C 1, P 0.5,
I and N 0, numbers as they are, "yes"/"true" 1), so an imported run's means are inspect's
accuracies. A sample of several epochs is one doc (a prediction per epoch) scored as inspect
reduced it, so the standard errors are inspect's too: they count samples, not epochs.

An inspect log holds one task and an evalstream run several: a run exports to one ``.eval`` per
task, named as inspect names its own (``{created}_{task}_{id}.eval``) so its listing (``inspect
view``, ``list_eval_logs``) parses them; ``-o FILE.eval`` is accepted for a one-task run. A
sample is one details row: its input the doc's query, its target the gold, its output the
first prediction, and one ``Score`` per numeric metric; each task's results become one
``EvalScore`` per metric holding ``mean`` and ``stderr``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio
import inspect_ai  # first: a missing extra is named as the package, not one of its modules
from inspect_ai.log import (
    EvalConfig,
    EvalDataset,
    EvalLog,
    EvalMetric,
    EvalResults,
    EvalSample,
    EvalScore,
    EvalSpec,
    EvalStats,
    list_eval_logs,
    read_eval_log,
    write_eval_log,
)
from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, ModelOutput
from inspect_ai.scorer import Score, value_to_float

from evalstream._errors import ConfigError, InputError, UnsafeNameError
from evalstream._naming import check_task_name
from evalstream._summary import __version__
from evalstream._types import Doc, ModelInfo, ModelResponse, TaskSpec
from evalstream.run.tracker import EvaluationTracker
from evalstream.runs.loading import metrics_dict

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream.runs.loading import LoadedRun

_COLUMNS = [
    "example", "full_prompt", "predictions", "choices", "gold", "gold_index", "metrics", "specifics"
]  # fmt: skip
_NAME_SWAPS = str.maketrans(dict.fromkeys("_/:+| ", "-"))


# --- export ---------------------------------------------------------------------------------


def export_run(run: LoadedRun, out: str) -> list[str]:
    """Write ``run`` as inspect_ai logs: one ``.eval`` per task in the folder ``out``, or the
    one file ``out`` (``.eval``, or inspect's ``.json``) for a one-task run; returns the files
    written."""
    if "://" in out:
        raise ConfigError(f"-o {out}: inspect logs are written to a local path")
    tasks = run.tasks()
    if not tasks:
        raise ConfigError(f"{run.where} has no task to export")
    created = _created(run)
    if out.endswith((".eval", ".json")):  # inspect's two log formats
        if len(tasks) != 1:
            raise ConfigError(
                f"{run.where} has {len(tasks)} tasks and an inspect log holds one: pass a "
                f"folder to -o (one .eval per task is written in it), not {out}"
            )
        targets = [(tasks[0], Path(out))]
    else:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"-o {out} is a file; pass a folder, or a name ending in .eval")
        stamp = created.strftime("%Y-%m-%dT%H-%M-%S-00-00")
        targets = [
            (t, folder / f"{stamp}_{t.translate(_NAME_SWAPS)}_{_short_id(run, t)}.eval")
            for t in tasks
        ]
    written = []
    for task, path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        kind = "json" if path.suffix == ".json" else "eval"
        try:
            write_eval_log(_task_log(run, task, created), str(partial), format=kind)
            os.replace(partial, path)  # the whole log, or no log under that name
        finally:
            partial.unlink(missing_ok=True)
        written.append(str(path))
    return written


def _created(run: LoadedRun) -> datetime:
    start = (run.results.get("config_general") or {}).get("start_time")
    if isinstance(start, int | float):
        return datetime.fromtimestamp(start, tz=UTC).replace(microsecond=0)
    return datetime.fromisoformat(run.date_id[:10]).replace(tzinfo=UTC)


def _short_id(run: LoadedRun, task: str) -> str:
    """A stable id per run and task (the same export twice writes the same name)."""
    return hashlib.sha256(f"{run.results_path}\0{task}".encode()).hexdigest()[:22]


def _task_log(run: LoadedRun, task: str, created: datetime) -> Any:
    table = run.read_details(task, _COLUMNS)
    rows = table.to_pylist() if table is not None else []
    samples = [_sample(run.model_name, i, row) for i, row in enumerate(rows)]
    values = (run.results.get("results") or {}).get(task) or {}
    version = (run.results.get("versions") or {}).get(task, 0)
    run_id = Path(run.run_dir).name if run.run_dir else run.date_id
    general = run.results.get("config_general") or {}
    spec = EvalSpec(
        eval_id=_short_id(run, f"{task}\0eval"),
        run_id=run_id,
        created=created.isoformat(),
        task=task,
        task_id=_short_id(run, task),
        task_version=version if isinstance(version, int | str) else 0,
        dataset=EvalDataset(name=task, samples=len(samples), sample_ids=[s.id for s in samples]),
        model=run.model_name,
        config=EvalConfig(epochs=1),
        packages={"evalstream": __version__, "inspect_ai": inspect_ai.__version__},
        metadata={"evalstream": {"results_path": run.where, "date_id": run.date_id}},
    )
    return EvalLog(
        status="success",
        eval=spec,
        results=EvalResults(
            total_samples=len(samples),
            completed_samples=len(samples),
            scores=_scores(values, samples),
        ),
        stats=EvalStats(started_at=created.isoformat(), completed_at=_ended(general, created)),
        samples=samples,
    )


def _ended(general: dict[str, Any], created: datetime) -> str:
    end = general.get("end_time")
    if isinstance(end, int | float):
        return datetime.fromtimestamp(end, tz=UTC).replace(microsecond=0).isoformat()
    return created.isoformat()


def _scores(values: dict[str, Any], samples: list[Any]) -> list[Any]:
    """One EvalScore per metric of the task's results row: its ``mean`` and ``stderr``."""
    out = []
    for name, value in values.items():
        if name.endswith("_stderr") or not _finite(value):
            continue
        metrics = {"mean": EvalMetric(name="mean", value=float(value))}
        stderr = values.get(f"{name}_stderr")
        if _finite(stderr):
            metrics["stderr"] = EvalMetric(name="stderr", value=float(stderr))
        scored = sum(1 for s in samples if name in (s.scores or {}))
        out.append(EvalScore(name=name, scorer=name, scored_samples=scored, metrics=metrics))
    return out


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _sample(model: str, index: int, row: dict[str, Any]) -> Any:
    specifics = dict(row.get("specifics") or {})  # a map column reads as (key, value) pairs
    raw_id = specifics.get("inspect_id") or str(index + 1)
    sample_id: int | str = int(raw_id) if raw_id.isdigit() else raw_id
    text = row.get("example") or ""
    choices = [str(c) for c in row.get("choices") or []]
    answer = _answer(row.get("predictions") or [], choices)
    gold = _target(row, choices)
    scores = {
        name: Score(value=float(v) if not isinstance(v, bool) else v, answer=answer)
        for name, v in metrics_dict(row.get("metrics")).items()
        if isinstance(v, bool) or _finite(v)
    }
    prompt = row.get("full_prompt")
    return EvalSample(
        id=sample_id,
        epoch=1,
        input=text,
        target=gold[0] if len(gold) == 1 else gold,
        choices=choices or None,
        messages=[ChatMessageUser(content=prompt or text), ChatMessageAssistant(content=answer)],
        output=ModelOutput.from_content(model=model, content=answer),
        scores=scores,
        metadata={"full_prompt": prompt} if isinstance(prompt, str) and prompt != text else {},
    )


def _target(row: dict[str, Any], choices: list[str]) -> list[str]:
    """A multiple-choice doc's gold as inspect's ``multiple_choice`` has it, the letters of the
    gold choices (``A`` the first); any other doc's gold texts."""
    indices = [i for i in row.get("gold_index") or [] if 0 <= i < len(choices)]
    if indices and len(choices) > 1:
        return [chr(ord("A") + i) if i < 26 else choices[i] for i in indices]
    return [str(g) for g in row.get("gold") or []]


def _answer(predictions: list[Any], choices: list[Any]) -> str:
    """The model's answer as text: the first generated text, else the choice of highest
    log-likelihood, else the predictions as JSON."""
    if predictions and isinstance(predictions[0], str):
        return str(predictions[0])
    numbers = [p for p in predictions if _finite(p)]
    if numbers and len(numbers) == len(predictions) == len(choices):
        return str(choices[max(range(len(numbers)), key=numbers.__getitem__)])
    return json.dumps(predictions)


# --- import ---------------------------------------------------------------------------------


def import_log(
    source: str, output_dir: str, *, task_names: Mapping[str, str] | None = None
) -> list[str]:
    """Record the inspect_ai log ``source`` (a log file, or a folder of one model's logs: one
    task each) as one evalstream run in ``output_dir``; returns the run folder written.

    ``task_names`` renames inspect tasks (``{"arc_easy": "lighteval|arc:easy|0"}``), so
    ``evalstream compare`` pairs them with another harness's run of the same docs; checked
    before anything is written."""
    logs = [_read(path) for path in _log_files(source)]
    models = sorted({log.eval.model for log in logs})
    if len(models) != 1:
        raise ConfigError(f"{source} holds logs of several models ({', '.join(models)})")
    renames = dict(task_names or {})
    unknown = sorted(set(renames) - {log.eval.task for log in logs})
    if unknown:
        raise InputError(f"{source}: task_names names no task of these logs: {unknown}")
    try:  # a name the tracker would refuse is refused before anything is written
        names = [check_task_name(renames.get(log.eval.task) or _task_name(log.eval.task))
                 for log in logs]  # fmt: skip
    except UnsafeNameError as exc:
        raise InputError(f"{source}: {exc}") from None
    if len(set(names)) != len(names):
        raise ConfigError(f"{source} holds several logs of one task: import them one by one")
    return [anyio.run(_record, logs, names, output_dir)]


def _log_files(source: str) -> list[str]:
    """The log ``source`` names, or the logs of the folder ``source`` as inspect's own listing
    finds them (its ``logs.json`` manifest and other files left out)."""
    path = Path(source)
    if path.is_dir():
        found = sorted(info.name for info in list_eval_logs(source, recursive=False))
        if not found:
            raise ConfigError(f"{source} holds no inspect log (*.eval, or *.json by inspect)")
        return found
    if not path.is_file():
        raise ConfigError(f"{source} does not exist")
    return [source]


def _read(path: str) -> Any:
    try:
        log = read_eval_log(path)
    except Exception as exc:  # inspect's reader raises what its parser raises
        raise ConfigError(f"{path} is not an inspect_ai log: {exc}") from exc
    if not log.samples:
        raise ConfigError(f"{path} holds no samples (written with log_samples=False?)")
    return log


def _task_name(task: str) -> str:
    """inspect's task name as an evalstream one: a registry name's ``/`` becomes ``:``."""
    return task.replace("/", ":").lstrip(".") or "task"


async def _record(logs: list[Any], names: list[str], output_dir: str) -> str:
    to_float = value_to_float()
    async with EvaluationTracker(output_dir, save_details=True) as tracker:
        first = logs[0].eval
        await tracker.log_model_info(
            ModelInfo(model_name=first.model, model_config=_jsonable(first.model_args))
        )
        await tracker.log_tasks([_spec(log, name) for log, name in zip(logs, names, strict=True)])
        for log, name in zip(logs, names, strict=True):
            reduced = _reduced(log)
            epochs: dict[str, list[Any]] = {}
            for sample in log.samples:
                epochs.setdefault(str(sample.id), []).append(sample)
            for sample_id, group in epochs.items():
                scores = reduced.get(sample_id) or _mean_of(group, to_float)
                await tracker.log_sample(name, *_doc(group), _metrics(scores, to_float))
            await tracker.log_num_docs(name, len(epochs), len(epochs))
        result = await tracker.save()
    return result.workdir


def _spec(log: Any, name: str) -> TaskSpec:
    version = log.eval.task_version
    config = {
        "inspect_task": log.eval.task,
        "inspect_task_id": log.eval.task_id,
        "inspect_log": log.location,
        "dataset": log.eval.dataset.name,
        "epochs": log.eval.config.epochs,
    }
    return TaskSpec(
        name=name, version=version if isinstance(version, int) else 0, config=_jsonable(config)
    )


def _doc(epochs: list[Any]) -> tuple[Doc, list[ModelResponse]]:
    """One inspect sample (all its epochs) as a doc and the model's response: one text per
    epoch, as lighteval keeps a doc's several samples."""
    sample = epochs[0]
    text = _text(sample.input)
    targets = [sample.target] if isinstance(sample.target, str) else list(sample.target)
    specific = {"inspect_id": str(sample.id), "epochs": str(len(epochs))}
    if sample.choices:
        specific["choices"] = json.dumps(sample.choices)
    doc = Doc(
        query=text,
        ctx=text,
        choices=targets,
        gold_index=0 if len(targets) == 1 else list(range(len(targets))),
        id=str(sample.id),
        specific=specific,
    )
    texts = [s.output.completion if s.output else "" for s in epochs]
    return doc, [ModelResponse(input=text, text=texts)]


def _reduced(log: Any) -> dict[str, dict[str, Any]]:
    """Per sample id, each scorer's score reduced over the epochs as inspect reduced it (what
    its metrics were computed on); a scorer's first reducer when it has several."""
    out: dict[str, dict[str, Any]] = {}
    for reduction in log.reductions or []:
        for score in reduction.samples:
            out.setdefault(str(score.sample_id), {}).setdefault(reduction.scorer, score)
    return out


def _mean_of(epochs: list[Any], to_float: Any) -> dict[str, Any]:
    """A log without reductions: each scalar score's mean over the epochs (inspect's default
    reducer), or the one epoch's scores as they are."""
    if len(epochs) == 1:
        return dict(epochs[0].scores or {})
    values: dict[str, list[float]] = {}
    for sample in epochs:
        for scorer, score in (sample.scores or {}).items():
            if not isinstance(score.value, dict | list):
                values.setdefault(scorer, []).append(float(to_float(score.value)))
    return {k: Score(value=sum(v) / len(v)) for k, v in values.items()}


def _metrics(scores: dict[str, Any], to_float: Any) -> dict[str, float]:
    """Each score as inspect's metrics see it: a scalar through ``value_to_float``, a dict
    value one metric per key (``scorer:key``); list values have no one number and are left out."""
    out: dict[str, float] = {}
    for scorer, score in scores.items():
        value = score.value
        if isinstance(value, dict):
            out.update({f"{scorer}:{k}": float(to_float(v)) for k, v in value.items()})
        elif not isinstance(value, list):
            out[scorer] = float(to_float(value))
    return out


def _text(value: Any) -> str:
    """A sample's input as one text: the string, or a chat's messages, one ``role: text`` each."""
    if isinstance(value, str):
        return value
    return "\n\n".join(f"{m.role}: {m.text}" for m in value)


def _jsonable(value: Any) -> dict[str, Any]:
    """``value`` as plain JSON types (model args may hold objects: those become their repr)."""
    decoded: dict[str, Any] = json.loads(json.dumps(value or {}, default=repr))
    return decoded
