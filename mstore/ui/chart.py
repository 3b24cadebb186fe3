"""A line chart as SVG geometry, computed here and drawn by a template (no JavaScript).

Points are spaced evenly along x, one per step of the series (one per move of a ref:
moves are events, not a clock), and placed along y by value between round ticks.
A step without a value leaves a gap: no point and no line through it. Each point
carries its label and value for the `<title>` a browser shows on hover; the page's
table beside the chart has the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 340
LEFT, RIGHT, TOP, BOTTOM = 110, 16, 16, 110
INSET = 28
"""Room between the y axis (and the right edge) and the first (last) point."""
TICKS = 5


@dataclass(frozen=True)
class Step:
    """One step of the series: its label (x axis) and value (None: no value)."""

    label: str
    value: float | None
    href: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    step: Step


@dataclass(frozen=True)
class Chart:
    points: tuple[Point, ...]
    lines: tuple[str, ...]
    """SVG `points` attributes, one per run of steps that all have values."""
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    """(x, label): drawn slanted, ending under their step, so that long labels never overlap."""
    x_title: str
    y_title: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: float = HEIGHT - BOTTOM
    right: float = WIDTH - RIGHT


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) covering low..high."""
    if high == low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 1e-9 or len(ticks) < 2:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def line_chart(steps: list[Step], x_title: str, y_title: str) -> Chart:
    values = [s.value for s in steps if s.value is not None]
    ticks = nice_ticks(min(values), max(values)) if values else [0.0, 1.0]
    low, high = ticks[0], ticks[-1]
    plot_width = WIDTH - LEFT - RIGHT - 2 * INSET
    plot_height = HEIGHT - TOP - BOTTOM

    def x_of(index: int) -> float:
        if len(steps) == 1:
            return LEFT + INSET + plot_width / 2
        return LEFT + INSET + plot_width * index / (len(steps) - 1)

    def y_of(value: float) -> float:
        return TOP + plot_height * (high - value) / (high - low)

    points = tuple(
        Point(round(x_of(i), 2), round(y_of(s.value), 2), s)
        for i, s in enumerate(steps)
        if s.value is not None
    )
    return Chart(
        points=points,
        lines=_runs(steps, x_of, y_of),
        y_ticks=tuple((round(y_of(t), 2), f"{t:g}") for t in ticks),
        x_ticks=tuple((round(x_of(i), 2), s.label) for i, s in _spread(steps)),
        x_title=x_title,
        y_title=y_title,
    )


def _runs(
    steps: list[Step], x_of: Callable[[int], float], y_of: Callable[[float], float]
) -> tuple[str, ...]:
    """The polylines through consecutive steps that have values."""
    runs: list[list[str]] = [[]]
    for index, step in enumerate(steps):
        if step.value is None:
            runs.append([])
        else:
            runs[-1].append(f"{x_of(index):.2f},{y_of(step.value):.2f}")
    return tuple(" ".join(run) for run in runs if len(run) > 1)


def _spread(steps: list[Step], most: int = 12) -> list[tuple[int, Step]]:
    """At most `most` x-axis labels, evenly picked (always the first and the last)."""
    if len(steps) <= most:
        return list(enumerate(steps))
    picked = sorted({round(i * (len(steps) - 1) / (most - 1)) for i in range(most)})
    return [(i, steps[i]) for i in picked]
