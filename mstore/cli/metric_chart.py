"""`mstore log --metric NAME`: a metric across a ref's history.

On a terminal, a chart (rich, imported only here and only then); in a pipe, plain
text, one point a line; with --json, the points as data.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from mstore.cli import output
from mstore.cli.common import open_repo

if TYPE_CHECKING:
    from mstore.ops.metrics import MetricHistory

BAR_WIDTH = 40
# Eighths of a block, so a bar's length shows small differences.
BLOCKS = " ▏▎▍▌▋▊▉█"


def show_metric_history(
    ctx: typer.Context, ref: str, metric: str, limit: int | None, as_json: bool
) -> None:
    from mstore.ops.metrics import metric_history

    history = metric_history(open_repo(ctx), ref, metric, limit)
    if as_json:
        output.emit_json(history.to_json())
    elif sys.stdout.isatty():
        _chart(history)
    else:
        _plain(history)


def _plain(history: MetricHistory) -> None:
    rows = [
        [
            p.when,
            p.action,
            output.short(p.manifest_id),
            p.version or "-",
            "-" if p.value is None else f"{p.value:g}",
        ]
        for p in history.points
    ]
    output.say(output.table(["WHEN", "ACTION", "ID", "VERSION", history.metric.upper()], rows))


def bar(value: float, low: float, high: float, width: int = BAR_WIDTH) -> str:
    """A bar for `value` on the scale low..high: at least one eighth, at most `width`."""
    share = 1.0 if high == low else (value - low) / (high - low)
    eighths = max(1, round((0.1 + 0.9 * share) * width * 8))
    full, part = divmod(eighths, 8)
    return BLOCKS[-1] * full + (BLOCKS[part] if part else "")


def _chart(history: MetricHistory) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    values = history.values
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    rows: list[list[str]] = []
    previous: float | None = None
    for point in history.points:
        version = point.version or output.short(point.manifest_id)
        value = "-" if point.value is None else f"{point.value:g}"
        change = "" if previous is None or point.value is None else f"{point.value - previous:+g}"
        rows.append([point.when, point.action, version, value, change])
        previous = point.value if point.value is not None else previous
    headers = ["when", "action", "version", history.metric, "change"]
    # The text columns keep their width; the bars get what is left of the terminal.
    used = sum(max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers))
    width = max(8, min(BAR_WIDTH, console.width - used - 1))
    title = f"{history.metric} on {history.ref}"
    if values:
        title += f": {values[0]:g} -> {values[-1]:g} (min {low:g}, max {high:g})"
    table = Table(title=Text(title), title_justify="left", box=None, pad_edge=False)
    for name in headers:
        right = name in (history.metric, "change")
        table.add_column(name, no_wrap=True, justify="right" if right else "left")
    table.add_column("", no_wrap=True, overflow="crop")
    for point, cells in zip(history.points, rows, strict=True):
        if point.value is None:
            drawn = Text(point.problem or "", style="dim")
        else:
            drawn = Text(bar(point.value, low, high, width), style="cyan")
        table.add_row(*map(Text, cells), drawn)
    console.print(table)
