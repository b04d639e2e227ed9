"""The report's plots: matplotlib figures rendered to inline SVG when the report is written.

Why matplotlib SVG: the plots are finished drawings inside the HTML file, so the report opens
anywhere, offline, with JavaScript off, and looks the same in every browser; text is drawn as
paths, so no font has to be present at view time. matplotlib is well kept and ubiquitous; only
its object-oriented ``Figure`` is used (no pyplot, no global backend switch). It is imported
lazily: only ``evalstream report`` needs it (the ``report`` extra).
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from evalstream._errors import ConfigError
from evalstream.stats.rows import metric_rows

if TYPE_CHECKING:
    from collections.abc import Sequence

_PALETTE = [  # matplotlib's tab10: ten colours told apart on screen and in print
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
_LINES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D"]


def style(k: int) -> dict[str, str]:
    """The ``k``-th line's colour, line style and marker: the colours first, then each colour
    again with the next line style and marker, so 40 lines are all told apart."""
    turn = k // len(_PALETTE) % len(_LINES)
    return {
        "color": _PALETTE[k % len(_PALETTE)],
        "linestyle": _LINES[turn],
        "marker": _MARKERS[turn],
    }


class Series:
    """One run's rows, as the plots read them: ``rows[task][metric]``, ``_stderr`` beside."""

    def __init__(self, label: str, rows: dict[str, dict[str, Any]], tick: str = "") -> None:
        self.label = label
        self.rows = rows
        self.tick = tick or label
        self._index = {(r.task, r.metric): r for r in metric_rows(rows)}

    def value(self, task: str, metric: str) -> tuple[float, float] | None:
        """(value, 95 % half-width; 0 without an interval) or None."""
        row = self._index.get((task, metric))
        if row is None or row.value is None:
            return None
        return float(row.value), row.half_width


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the report extra is missing
        raise ConfigError(
            "evalstream report draws its plots with matplotlib: pip install 'evalstream[report]'"
        ) from exc
    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Any, salt: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), ids unique per ``salt``."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # no fixed size: the viewBox scales the drawing to the page's width (the report's CSS)
    head, rest = text.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return head + ">" + re.sub(r"<metadata>.*?</metadata>", "", rest, flags=re.DOTALL)


def _short(task: str) -> str:
    parts = task.split("|")
    return parts[1] if len(parts) == 3 else parts[0]


def task_scores(series: Sequence[Series], tasks: Sequence[str], metric: str, salt: str) -> str:
    """Dots with 95 % CI bars, one row per task, one colour per run."""
    legend = 0.3 * ((len(series) + 1) // 2) if len(series) > 1 else 0.0
    fig = _figure(8.0, 1.0 + legend + 0.32 * len(tasks) * max(1, len(series)) ** 0.5)
    ax = fig.add_subplot()
    step = 0.8 / max(1, len(series))
    for k, s in enumerate(series):
        ys, xs, errs = [], [], []
        for i, task in enumerate(tasks):
            got = s.value(task, metric)
            if got is not None:
                ys.append(len(tasks) - 1 - i + 0.4 - step * (k + 0.5))
                xs.append(got[0])
                errs.append(got[1])
        look = style(k)
        ax.errorbar(
            xs, ys, xerr=errs, fmt=look["marker"], capsize=3, markersize=5,
            color=look["color"], label=s.tick.replace("\n", " "),
        )  # fmt: skip
    ax.set_yticks(range(len(tasks)), [_short(t) for t in reversed(tasks)])
    ax.set_xlabel(f"{metric} (95 % CI)")
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        fig.legend(loc="outside lower center", fontsize="small", ncols=min(2, len(series)))
    return to_svg(fig, salt)


def suite_breakdown(series: Series, suites: dict[str, list[str]], metric: str, salt: str) -> str:
    """Per suite: its tasks as bars with CIs, the suite mean as a line with its CI band."""
    names = list(suites)
    heights = [0.6 + 0.3 * len(suites[n]) for n in names]
    fig = _figure(8.0, 0.6 + sum(heights))
    axes = fig.subplots(len(names), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, suite in zip(axes, names, strict=True):
        tasks = suites[suite]
        points = [series.value(t, metric) for t in tasks]
        ys = list(range(len(tasks)))[::-1]
        ax.barh(
            ys, [p[0] if p else 0.0 for p in points], xerr=[p[1] if p else 0.0 for p in points],
            color="#9ecae1", capsize=3,
        )  # fmt: skip
        ax.set_yticks(ys, [_short(t) for t in tasks])
        mean = series.value(suite, metric)
        if mean is not None:
            ax.axvline(mean[0], color="#08519c", linestyle="--", label=f"mean {mean[0]:.3f}")
            ax.axvspan(mean[0] - mean[1], mean[0] + mean[1], color="#08519c", alpha=0.12)
            ax.legend(loc="lower right", fontsize="small")
        ax.set_title(f"{_short(suite)}  ({metric})", fontsize="medium", loc="left")
        ax.set_xlim(0, 1.05 if all(p is None or p[0] <= 1 for p in points) else None)
    return to_svg(fig, salt)


def run_over_run(series: Sequence[Series], tasks: Sequence[str], metric: str, salt: str) -> str:
    """One line per task across the runs in order, the ``all`` row bold, with CI bars."""
    return to_svg(run_over_run_figure(series, tasks, metric), salt)


def run_over_run_figure(series: Sequence[Series], tasks: Sequence[str], metric: str) -> Any:
    """The figure of ``run_over_run``: each task's line has its own colour and line style."""
    fig = _figure(9.0, 4.2)
    ax = fig.add_subplot()
    xs = list(range(len(series)))
    for k, task in enumerate(tasks):
        points = [s.value(task, metric) for s in series]
        kept = [(x, p) for x, p in zip(xs, points, strict=True) if p is not None]
        if not kept:
            continue
        bold = task == "all"
        look = {"color": "black", "linestyle": "-", "marker": "o"} if bold else style(k)
        ax.errorbar(
            [x for x, _ in kept], [p[0] for _, p in kept], yerr=[p[1] for _, p in kept],
            capsize=3, linewidth=2.8 if bold else 1.2, label=_short(task),
            alpha=1.0 if bold else 0.8, **look,
        )  # fmt: skip
    ax.set_xticks(xs, [s.tick for s in series], fontsize="small")
    ax.set_ylabel(f"{metric} (95 % CI)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="x-small")
    return fig
