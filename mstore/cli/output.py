"""Rendering for the CLI: JSON documents, plain tables, messages and progress bars.

JSON goes to stdout as one document; human text goes to stdout; errors, notes and
progress go to stderr. Progress bars appear only on a terminal and never with --quiet.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from mstore.core import ids


def emit_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit_json_line(document: Any) -> None:
    """One JSON document on one line, flushed (a stream of events: JSON lines)."""
    sys.stdout.write(orjson.dumps(document).decode() + "\n")
    sys.stdout.flush()


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    sys.stderr.write(f"mstore: {text}\n")


def stderr_descriptor() -> int:
    """stderr's descriptor, or 2 when stderr has none (a captured or in-memory stream):
    where hooks write, so that stdout stays the command's own (one JSON document)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def short(object_id: str | None) -> str:
    """An id as tables and lines show it (`core.ids.short`), "-" for none."""
    return ids.short(object_id, absent="-")


def move_cells(entry: Any) -> list[str]:
    """The first cells of a log line (a core.history.LogEntry): when, action, ref, move."""
    return [entry.when, entry.action, entry.ref, f"{short(entry.old)} -> {short(entry.new)}"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart (one format string for every row: `list`
    renders thousands)."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    return "\n".join(line.format(*row).rstrip() for row in (headers, *rows))


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@contextmanager
def byte_progress(
    label: str, quiet: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(start(total), advance(n)) callbacks; a rich bar only on a terminal and not quiet."""
    if quiet or not sys.stderr.isatty():
        yield (lambda total: None), (lambda n: None)
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield (lambda total: bar.update(task, total=total)), (lambda n: bar.advance(task, n))
