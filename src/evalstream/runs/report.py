"""``evalstream report``: one self-contained HTML file about one or more saved runs.

Sections: the runs; per-task scores with 95 % CI bars per metric (all runs overlaid); the suite
breakdown (each benchmark suite's tasks against its mean); run-over-run lines when several runs
are given (checkpoints, in the order given); each run's results table; and a sample browser with
the first N details rows of every task (prompt, prediction, gold, metrics). Plots are inline SVG
(``plots.py``); the page loads nothing and runs no script, so it works offline and as an e-mail
attachment.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstream.runs import plots
from evalstream.runs.catalog import headline, sample_counts, timings_note
from evalstream.stats.rows import metric_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evalstream.runs.loading import LoadedRun

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:0 24px 48px;color:#1b1f24}
h1{font-size:24px;margin:24px 0 4px}h2{font-size:19px;margin:32px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:8px 0 16px}figure svg{display:block;width:100%;height:auto}
details{margin:4px 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;max-height:12em;overflow:auto;margin:0;font-size:12px}
.muted{color:#57606a}.warn{color:#9a6700;font-weight:600}
"""
_MAX_METRICS = 4
_MAX_LINES = 12
_PROMPT_CHARS = 2000


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _e("-" if value is None else value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: int = 1) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i >= numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics(runs: Sequence[LoadedRun]) -> list[str]:
    """Metrics by how many tasks report them, most first."""
    count: Counter[str] = Counter()
    for run in runs:
        rows = {task: run.results["results"][task] for task in run.tasks()}
        count.update(r.metric for r in metric_rows(rows))
    return [m for m, _ in count.most_common(_MAX_METRICS)]


def suites_of(run: LoadedRun) -> dict[str, list[str]]:
    """Each ``suite|bench:_average|fewshot`` row with the tasks it averages."""
    out: dict[str, list[str]] = {}
    for row in run.results.get("results") or {}:
        if ":_average|" not in row:
            continue
        prefix, fewshot = row.split(":_average|")
        out[row] = [
            t for t in run.tasks() if t.startswith(prefix + ":") and t.endswith("|" + fewshot)
        ]
    return out


def _runs_section(runs: Sequence[LoadedRun]) -> str:
    rows = []
    for i, run in enumerate(runs, 1):
        h = headline(run.results)
        partial = (run.results.get("evalstream") or {}).get("partial")
        rows.append(
            [
                str(i), _e(run.model_name), _e(run.date_id), str(len(run.tasks())),
                str(sum(sample_counts(run.results).values())),
                _e(f"{h.metric} {_num(h.value)}") if h else "-",
                _status(run.results, partial),
                f'<span class="muted">{_e(run.where)}</span>',
            ]
        )  # fmt: skip
    cols = ["#", "model", "date_id", "tasks", "samples", "headline", "status", "results file"]
    return "<h2>Runs</h2>" + _table(cols, rows, numeric=99)


def _status(results: dict[str, Any], partial: Any) -> str:
    """The runs table's status cell; a replayed run says whose times its config holds."""
    section = results.get("evalstream") or {}
    replay = (
        "recovery" if section.get("recovered_from") else "merge" if section.get("merged") else ""
    )
    times = f"<br><span class='muted'>times are the {replay}'s</span>" if replay else ""
    if partial:
        return f"<span class='warn'>partial ({'recovered' if replay == 'recovery' else 'merged'})</span>{times}"
    return f"saved{times}"


def _results_table(run: LoadedRun) -> str:
    rows = [
        [_e(r.task), _e(r.metric), _num(r.value), _num(r.stderr),
         f"[{r.low:.4f}, {r.high:.4f}]" if r.low is not None and r.high is not None else "-"]
        for r in metric_rows(run.results.get("results") or {})
    ]  # fmt: skip
    return _table(["task", "metric", "value", "stderr", "95 % CI"], rows, numeric=2)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _PROMPT_CHARS:
        text = text[:_PROMPT_CHARS] + " …"
    return f"<pre>{_e(text)}</pre>"


def chosen_answer(predictions: Any, choices: Any, gold_index: Any) -> str | None:
    """A multiple-choice prediction as people read it: the chosen choice (the highest
    log-likelihood), whether it is gold, then every choice's log-likelihood to 3 decimals;
    None when ``predictions`` is not one number per choice (a generation)."""
    if not (
        isinstance(predictions, list)
        and isinstance(choices, list)
        and len(predictions) == len(choices) > 0
        and all(isinstance(p, int | float) and not isinstance(p, bool) for p in predictions)
    ):
        return None
    best = max(range(len(predictions)), key=predictions.__getitem__)
    verdict = "right" if best in (gold_index or []) else "wrong"
    each = " · ".join(f"{c}: {p:.3f}" for c, p in zip(choices, predictions, strict=True))
    return f"chose {choices[best]} ({verdict})\nlog-likelihoods: {each}"


def _config(run: LoadedRun) -> str:
    config = run.results.get("config_general") or {}
    note = timings_note(run.results)
    rows = [[_e(k), _e(json.dumps(v, default=str) if isinstance(v, dict | list) else v)]
            for k, v in config.items()]  # fmt: skip
    warn = f"<p class='warn' data-note='timings'>{_e(note)}</p>" if note else ""
    return f"<h3>config</h3>{warn}{_table(['key', 'value'], rows, numeric=99)}"


def _samples(run: LoadedRun, task: str, limit: int) -> str:
    columns = ["full_prompt", "example", "predictions", "gold", "choices", "gold_index", "metrics"]
    table = run.read_details(task, columns, limit=limit)
    total = sample_counts(run.results).get(task)
    if table is None:
        return f"<details><summary>{_e(task)}: no details file</summary></details>"
    data = table.to_pydict()
    rows = []
    for i in range(table.num_rows):
        prompt = data.get("full_prompt", [None] * (i + 1))[i] or data.get("example", [""])[i]
        gold = data.get("gold", [None] * (i + 1))[i] or None
        picks = (data.get("gold_index") or [None] * (i + 1))[i] or []
        choices = (data.get("choices") or [None] * (i + 1))[i] or []
        if not gold and picks and choices:
            gold = [choices[g] for g in picks if 0 <= g < len(choices)] or picks
        predicted = data.get("predictions", [None] * (i + 1))[i]
        chosen = chosen_answer(predicted, choices, picks)
        rows.append(
            [str(i), _cell(prompt), _cell(chosen if chosen is not None else predicted),
             _cell(gold), _cell(data.get("metrics", [None] * (i + 1))[i])]
        )  # fmt: skip
    shown = f"first {table.num_rows} of {total if total is not None else '?'} rows"
    body = _table(["#", "prompt", "prediction", "gold", "metrics"], rows, numeric=99)
    return f"<details><summary>{_e(task)} <span class='muted'>({shown})</span></summary>{body}</details>"


def build_report(
    runs: Sequence[LoadedRun],
    *,
    samples: int = 20,
    on_progress: Callable[..., None] | None = None,
) -> str:
    """The report's HTML (blocking: reads the details files)."""
    update = on_progress or (lambda **_: None)
    tasks_of_last = runs[-1].tasks()
    tasks = tasks_of_last + [t for r in runs for t in r.tasks() if t not in tasks_of_last]
    series = [
        plots.Series(
            f"{i}: {r.label}",
            r.results.get("results") or {},
            tick=f"{i}: {r.model_name.rsplit('/', 1)[-1]}\n{r.date_id[:19]}",
        )
        for i, r in enumerate(runs, 1)
    ]
    metrics = _metrics(runs)
    work = len(metrics) + 2 + sum(len(r.tasks()) for r in runs)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        update(completed=done, total=work, description=f"report: {what}")

    written = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        (
            f"<h1>evalstream report</h1><p class='muted'>{len(runs)} run(s), written {written}. "
            "Intervals are 95 % (value ± 1.96 x stderr). Plots: matplotlib SVG, drawn when the "
            "report was written; the page needs no network and no JavaScript.</p>"
        ),
        _runs_section(runs),
        "<h2>Scores per task</h2>",
    ]
    for n, metric in enumerate(metrics):
        with_metric = [t for t in tasks if any(s.value(t, metric) for s in series)]
        svg = plots.task_scores(series, with_metric, metric, f"scores{n}")
        parts.append(f"<figure class='plot' data-plot='scores-{_e(metric)}'>{svg}</figure>")
        step(f"scores {metric}")
    suites = {k: v for k, v in suites_of(runs[-1]).items() if v}
    top = headline(runs[-1].results)
    main = top.metric if top is not None else None
    parts.append("<h2>Suite breakdown</h2>")
    if suites and isinstance(main, str):
        parts.append(f"<p class='muted'>Run {len(runs)} ({_e(runs[-1].label)}), {_e(main)}.</p>")
        svg = plots.suite_breakdown(series[-1], suites, main, "suites")
        parts.append(f"<figure class='plot' data-plot='suites'>{svg}</figure>")
    else:
        parts.append("<p class='muted'>No benchmark suite with more than one task.</p>")
    step("suites")
    if len(runs) > 1 and isinstance(main, str):
        lines = [*tasks[:_MAX_LINES], *suites, "all"]
        parts.append(
            f"<h2>Run over run</h2><p class='muted'>{_e(main)}, runs in the order given.</p>"
        )
        svg = plots.run_over_run(series, lines, main, "runs")
        parts.append(f"<figure class='plot' data-plot='run-over-run'>{svg}</figure>")
    step("run over run")
    parts.append("<h2>Results</h2>")
    for i, run in enumerate(runs, 1):
        opened = " open" if i == len(runs) else ""
        parts.append(
            f"<details{opened}><summary>{i}: {_e(run.label)}</summary>{_results_table(run)}"
            f"{_config(run)}</details>"
        )
    parts.append(f"<h2>Samples</h2><p class='muted'>The first {samples} details rows per task.</p>")
    for i, run in enumerate(runs, 1):
        parts.append(f"<h3>{i}: {_e(run.label)}</h3>")
        for task in run.tasks():
            parts.append(_samples(run, task, samples))
            step(f"samples {task}")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>evalstream report</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def write_report(
    runs: Sequence[LoadedRun],
    output: str | Path,
    *,
    samples: int = 20,
    on_progress: Callable[..., None] | None = None,
) -> Path:
    """Write the report of ``runs`` to ``output`` (blocking); returns its path."""
    text = build_report(runs, samples=samples, on_progress=on_progress)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
