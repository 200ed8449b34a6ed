"""The Pareto front of clean accuracy (max) against ASR (min), and how pareto.png draws it."""
import math

from matplotlib.text import Text

from tuner.pareto import pareto_front
from tuner.pareto_figure import pareto_figure
from tuner.plots import ParetoPanel, Point

NAN = math.nan


def test_a_point_better_on_both_axes_removes_the_other():
    assert pareto_front([90.0, 80.0], [10.0, 20.0]) == [0]


def test_a_trade_off_keeps_both_by_ascending_asr():
    clean = [95.0, 70.0, 85.0]
    asr = [60.0, 5.0, 20.0]
    assert pareto_front(clean, asr) == [1, 2, 0]


def test_same_clean_lower_asr_wins():
    assert pareto_front([90.0, 90.0], [30.0, 10.0]) == [1]


def test_same_asr_higher_clean_wins():
    assert pareto_front([80.0, 90.0], [10.0, 10.0]) == [1]


def test_exact_duplicates_are_both_kept():
    assert sorted(pareto_front([90.0, 90.0, 70.0], [10.0, 10.0, 50.0])) == [0, 1]


def test_nan_points_are_never_on_the_front_and_dominate_nothing():
    clean = [99.0, 80.0, NAN, 85.0]
    asr = [NAN, 20.0, 1.0, 30.0]
    assert pareto_front(clean, asr) == [1, 3]


def test_order_is_ascending_asr_for_a_long_front():
    asr = [50.0, 10.0, 40.0, 20.0, 30.0]
    clean = [99.0, 70.0, 95.0, 80.0, 90.0]
    front = pareto_front(clean, asr)
    assert front == [1, 3, 4, 2, 0]
    assert [asr[i] for i in front] == sorted(asr)


def test_dominated_points_inside_a_front_are_dropped():
    clean = [70.0, 90.0, 75.0, 60.0]
    asr = [5.0, 50.0, 60.0, 10.0]
    assert pareto_front(clean, asr) == [0, 1]


def test_empty_and_all_nan_inputs_give_an_empty_front():
    assert pareto_front([], []) == []
    assert pareto_front([NAN, 90.0], [10.0, NAN]) == []


# The front drawn: pareto.png's numbered points, its table, its ASR axis and its chance line.

def crowded_panel(chance: float | None = None) -> ParetoPanel:
    """Twelve robust configurations within 3 % ASR of each other and four vulnerable ones far right: the front
    a linear axis and long labels could not show apart."""
    asr = [0.2 + 0.25 * i for i in range(12)] + [60.0, 70.0, 80.0, 90.0]
    clean = [80.0 + 0.5 * i for i in range(12)] + [87.0, 88.0, 89.0, 90.0]
    points = [Point("renofeation" if i < 12 else "delta", "digits", x, y, x_interval=(x * 0.5, x * 1.5))
              for i, (x, y) in enumerate(zip(asr, clean))]
    front = pareto_front(clean, asr)
    return ParetoPanel("digits", points, front, [f"λ_feat={i}" for i in front], chance=chance,
                       chance_label="chance 1/10")


def spread_panel(chance: float | None = None) -> ParetoPanel:
    asr, clean = [10.0, 40.0, 70.0], [15.0, 30.0, 40.0]
    return ParetoPanel("digits", [Point("delta", "digits", x, y) for x, y in zip(asr, clean)],
                       pareto_front(clean, asr), ["a", "b", "c"], chance=chance, chance_label="chance 1/10")


def test_a_front_crowded_near_zero_asr_gets_a_symlog_axis():
    assert pareto_figure([crowded_panel()]).axes[0].get_xscale() == "symlog"
    assert pareto_figure([spread_panel()]).axes[0].get_xscale() == "linear"


def test_front_numbers_never_overlap_and_follow_the_fronts_order():
    panel = crowded_panel()
    figure = pareto_figure([panel])
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    tags = [t for t in figure.axes[0].texts if t.get_gid() == "front-tag"]
    assert [t.get_text() for t in tags] == [str(k) for k in range(1, len(panel.front) + 1)]
    for tag, index in zip(tags, panel.front):
        assert tag.xy == (panel.points[index].x, panel.points[index].y)
    boxes = [Text.get_window_extent(tag, renderer) for tag in tags]
    assert not [(a, b) for a in range(len(boxes)) for b in range(a) if boxes[a].overlaps(boxes[b])]


def test_the_front_table_lists_every_front_point_in_order_without_overlap():
    panel = crowded_panel()
    figure = pareto_figure([panel])
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    rows = [t for t in figure.axes[1].texts if t.get_gid() == "front-table-row"]
    assert len(rows) == len(panel.front)
    for number, (row, index, label) in enumerate(zip(rows, panel.front, panel.front_labels), start=1):
        point = panel.points[index]
        text = row.get_text().replace("\n", " ")
        assert text.startswith(f"{number}. ") and label in text
        assert f"ASR {point.x:.1f} % [{point.x_interval[0]:.1f}, {point.x_interval[1]:.1f}]" in text
    boxes = [row.get_window_extent(renderer) for row in rows]
    assert all(upper.y0 > lower.y1 for upper, lower in zip(boxes, boxes[1:]))  # top-down, apart
    assert boxes[-1].y0 >= figure.axes[1].get_window_extent(renderer).y0


def test_chance_accuracy_is_a_line_when_near_and_a_note_when_far_below():
    near = pareto_figure([spread_panel(chance=10.0)]).axes[0]
    lines = [line for line in near.get_lines() if line.get_gid() == "chance"]
    assert len(lines) == 1 and list(lines[0].get_ydata()) == [10.0, 10.0]
    assert near.get_ylim()[0] <= 10.0
    far = pareto_figure([crowded_panel(chance=0.5)]).axes[0]
    assert not [line for line in far.get_lines() if line.get_gid() == "chance"]
    notes = [t.get_text() for t in far.texts if t.get_gid() == "chance-note"]
    assert notes == ["chance 1/10 = 0.50 %: below this axis"]
