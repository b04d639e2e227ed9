"""How the command line writes: rich tables on a terminal, plain text to a pipe, or JSON.

Progress bars go to stderr and only when it is a terminal, so piped or captured output stays
clean.
"""

from __future__ import annotations

import json
import math
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence


_NUMBER = re.compile(r"-|<?[+-]?[\d.]+(e[+-]?\d+)?|\[[+-]?[\d.]+, [+-]?[\d.]+\]")


def fmt(value: Any, digits: int = 4) -> str:
    """A cell: numbers to ``digits`` decimals, None and NaN as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def fmt_p(p: float | None) -> str:
    """A p-value: three significant digits, ``<0.001`` below that."""
    if p is None or not math.isfinite(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


class Output:
    """Where a command's tables go; ``json_mode`` collects one JSON document instead."""

    def __init__(self, *, json_mode: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.json_mode = json_mode
        self.rich = not json_mode and self.stream.isatty()

    def emit_json(self, document: Any) -> None:
        """Write ``document`` as indented JSON (NaN as null)."""
        text = json.dumps(_finite(document), indent=2, default=str)
        print(text, file=self.stream)

    def line(self, text: str = "") -> None:
        """A line of text."""
        if self.rich:
            from rich.console import Console

            Console(file=self.stream, highlight=False, soft_wrap=True).print(text, markup=False)
        else:
            print(text, file=self.stream)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table: a rich one on a terminal, aligned plain text otherwise."""
        if self.rich:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for i, col in enumerate(columns):
                right = all(_NUMBER.fullmatch(r[i]) for r in rows)
                table.add_column(col, justify="right" if right else "left", overflow="fold")
            for row in rows:
                table.add_row(*row)
            Console(file=self.stream).print(table)
            return
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        print(title, file=self.stream)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=self.stream)
        print("  ".join("-" * w for w in widths), file=self.stream)
        for row in rows:
            print(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(),
                file=self.stream,
            )
        print(file=self.stream)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@contextmanager
def progress(
    description: str, total: float | None, *, unit: str = "items"
) -> Iterator[Callable[..., None]]:
    """Yield ``update(completed=..., total=..., description=...)``; a bar only on a terminal.

    ``unit="bytes"`` shows the counts as sizes (MB), for the journal a recovery replays.
    """
    if not sys.stderr.isatty():
        yield lambda **_: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(**fields: Any) -> None:
            bar.update(task, **fields)

        yield update
