"""mstore/ui/chart.py: the SVG geometry of a metric's chart."""

from __future__ import annotations

from mstore.ui.chart import Step, line_chart, nice_ticks


def steps(*values: float | None) -> list[Step]:
    return [Step(f"move {i}", v, f"/version?rev={i}") for i, v in enumerate(values)]


def test_one_point_per_step_with_a_value_and_a_gap_for_one_without() -> None:
    chart = line_chart(steps(5.74, 5.41, None, 5.74, 2.97), "moves", "final_val_mae")

    assert [p.step.value for p in chart.points] == [5.74, 5.41, 5.74, 2.97]
    assert len(chart.lines) == 2  # broken where the value is missing
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and len(set(xs)) == 4


def test_higher_values_are_drawn_higher_between_round_ticks() -> None:
    chart = line_chart(steps(84.12, 142.87, 97.65), "versions", "final_val_loss")

    by_value = {p.step.value: p.y for p in chart.points}
    assert by_value[142.87] < by_value[97.65] < by_value[84.12]  # SVG y grows downwards
    labels = [label for _, label in chart.y_ticks]
    assert labels == ["80", "100", "120", "140", "160"]
    assert all(chart.top <= p.y <= chart.bottom for p in chart.points)


def test_at_most_twelve_labels_the_first_and_the_last_among_them() -> None:
    chart = line_chart(steps(*range(40)), "moves", "m")

    labels = [label for _, label in chart.x_ticks]
    assert len(labels) == 12
    assert labels[0] == "move 0" and labels[-1] == "move 39"


def test_a_single_value_and_no_value_still_draw() -> None:
    single = line_chart(steps(5.0), "moves", "m")
    empty = line_chart(steps(None, None), "moves", "m")

    assert len(single.points) == 1 and single.lines == ()
    assert empty.points == () and [label for _, label in empty.y_ticks] == ["0", "1"]


def test_ticks_cover_the_values() -> None:
    for low, high in ((2.97, 9.12), (5.74, 5.74), (-3, 100), (1e-9, 3e-9), (0, 0)):
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) >= 2, (low, high, ticks)
