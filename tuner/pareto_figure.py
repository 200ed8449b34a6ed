"""pareto.png: each configuration at its test means, the front chosen on validation, and that front as a
numbered table beside each panel.

Front points carry only their number, placed where it overlaps no other number and no marker; the table lists
them in the front's order (ascending validation ASR) with their hyper-parameters and numbers. Long labels on a
crowded front could not be placed apart; a number can, and the table cannot be misread.
"""
import math
import textwrap
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

from tuner.plots import (
    ParetoPanel,
    Point,
    error_bars,
    method_colour,
    method_legend,
    method_title,
    new_figure,
    save_figure,
    scatter_by_method,
)

TAG_FONT_SIZE = 7.0
TABLE_FONT_SIZES = (6.5, 5.5, 4.5)  # tried in turn until the table fits its panel
SYMLOG_THRESHOLD = 1.0  # ASR %: a symlog axis is linear below it, logarithmic above
CROWDED_SHARE = 0.05  # front points in this lowest share of the ASR axis are "crowded near 0 %"
CHANCE_REACH = 0.25  # extend the accuracy axis by at most this share of its span to show the chance line
MARKER_RADIUS = 5.0  # pixels around a marker kept clear of numbers


def asr_scale(panel: ParetoPanel) -> str:
    """symlog when two or more front points lie in the lowest CROWDED_SHARE of the ASR axis (robust methods
    near 0 % beside others near 100 %): a linear axis would pile them onto each other."""
    xs = [p.x for p in panel.points if not math.isnan(p.x)]
    if not xs or max(xs) <= 10 * SYMLOG_THRESHOLD:
        return "linear"
    crowded = [i for i in panel.front if panel.points[i].x < CROWDED_SHARE * max(xs)]
    return "symlog" if len(crowded) >= 2 else "linear"


def pareto_figure(panels: list[ParetoPanel]) -> Figure:
    """A row per panel: the scatter, and the front's table beside it."""
    figure, axes = new_figure(rows=len(panels), columns=2, width_ratios=(3, 2))
    for plot_ax, panel in zip(axes[::2], panels, strict=True):
        _draw_pareto_panel(plot_ax, panel)
    for table_ax in axes[1::2]:
        table_ax.axis("off")
    methods = [p.method for panel in panels for p in panel.points]
    method_legend(figure, methods, [], "outside lower center", extra=_legend_extras(panels))
    figure.suptitle("Each point: a configuration at its test means (bars: 95 % Wilson CI of the ASR from its "
                    "counts, ± std of accuracy over seeds)\nnumbered, black edge: the Pareto front chosen on "
                    "validation; hollow: stopped early", fontsize=9)
    figure.canvas.draw()  # final axes positions, so numbers and table rows can be placed in pixels
    for plot_ax, table_ax, panel in zip(axes[::2], axes[1::2], panels, strict=True):
        _place_tags(plot_ax, panel)
        _front_table(table_ax, panel)
    return figure


def pareto_plot(panels: list[ParetoPanel], path: Path) -> None:
    save_figure(pareto_figure(panels), path)


def _legend_extras(panels: list[ParetoPanel]) -> list[Line2D]:
    extras = [Line2D([], [], color="black", marker="o", markerfacecolor="white", label="Pareto front (validation)")]
    if any(panel.chance is not None for panel in panels):
        extras.append(Line2D([], [], color="0.35", linestyle=":", label="chance accuracy"))
    if any(panel.below_minimum for panel in panels):
        extras.append(Line2D([], [], color="0.2", marker="x", linestyle="", label="below --min-accuracy"))
    return extras


def _draw_pareto_panel(ax: Axes, panel: ParetoPanel) -> None:
    on_front = set(panel.front)
    groups = [p.group for p in panel.points]
    others = [p for i, p in enumerate(panel.points) if i not in on_front]
    error_bars(ax, panel.points)
    scatter_by_method(ax, [p for p in others if not p.hollow], groups, s=28, alpha=0.45, edgecolors="none",
                      zorder=2)
    scatter_by_method(ax, [p for p in others if p.hollow], groups, s=28, facecolors="none", zorder=2)
    scatter_by_method(ax, [panel.points[i] for i in panel.front], groups,
                      s=55, edgecolors="black", linewidths=0.8, zorder=3)
    if panel.below_minimum:
        ax.scatter([panel.points[i].x for i in panel.below_minimum], [panel.points[i].y for i in panel.below_minimum],
                   marker="x", color="0.2", s=40, linewidths=1.0, zorder=4, gid="below-minimum")
    front = sorted((panel.points[i] for i in panel.front), key=lambda p: p.x)
    ax.step([p.x for p in front], [p.y for p in front], where="post", color="black", linewidth=1.2, zorder=1)
    scale = asr_scale(panel)
    if scale == "symlog":
        ax.set_xscale(scale, linthresh=SYMLOG_THRESHOLD)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0, 1, 10, 100: not 10^k
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("test attack success rate, ASR (%) — lower is more robust"
                  + (f"\n(symlog scale: linear below {SYMLOG_THRESHOLD:g} %)" if scale == "symlog" else ""))
    ax.set_ylabel("test clean accuracy (%)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)
    _chance_line(ax, panel)


def _chance_line(ax: Axes, panel: ParetoPanel) -> None:
    """A dotted line at chance accuracy when the axis can show it without squashing the points; else a note
    that it lies below."""
    if panel.chance is None:
        return
    low, high = ax.get_ylim()
    text = f"{panel.chance_label} = {panel.chance:.2f} %"
    if panel.chance >= low - CHANCE_REACH * (high - low):
        ax.axhline(panel.chance, color="0.35", linestyle=":", linewidth=1.0, zorder=1, gid="chance")
        ax.text(0.99, panel.chance, text, transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                fontsize=6.5, color="0.35")
    else:
        ax.text(0.01, 0.01, f"{text}: below this axis", transform=ax.transAxes, ha="left", va="bottom",
                fontsize=6.5, color="0.35", gid="chance-note")


def _place_tags(ax: Axes, panel: ParetoPanel) -> None:
    """Number each front point (1 = lowest validation ASR) where the number overlaps no other number and no
    marker, joined to its point by a thin leader in the method's colour."""
    renderer = ax.figure.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    shown = [(p.x, p.y) for p in panel.points if not (math.isnan(p.x) or math.isnan(p.y))]
    markers = [Bbox.from_bounds(x - MARKER_RADIUS, y - MARKER_RADIUS, 2 * MARKER_RADIUS, 2 * MARKER_RADIUS)
               for x, y in ax.transData.transform(shown)] if shown else []
    placed: list[Bbox] = []
    for number, index in enumerate(panel.front, start=1):
        point = panel.points[index]
        tag = _tag(ax, point, str(number))
        # a number over a number is never chosen while any place is free, then leaving the axes, then a marker
        costs = []
        for offset, horizontal, vertical in TAG_CANDIDATES:
            box = _moved(tag, renderer, offset, horizontal, vertical)
            costs.append((1e6 * sum(box.overlaps(other) for other in placed) + 1000.0 * (not _inside(box, axes_box))
                          + 10.0 * sum(box.overlaps(marker) for marker in markers), offset, horizontal, vertical))
            if costs[-1][0] == 0:
                break
        _, offset, horizontal, vertical = min(costs, key=lambda cost: cost[0])
        placed.append(_moved(tag, renderer, offset, horizontal, vertical))


def _tag(ax: Axes, point: Point, text: str) -> Annotation:
    colour = method_colour(point.method)
    tag = ax.annotate(
        text, (point.x, point.y), xytext=(0, 0), textcoords="offset points", fontsize=TAG_FONT_SIZE, zorder=5,
        annotation_clip=False, gid="front-tag",
        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": colour, "linewidth": 0.6,
              "alpha": 0.95},
        arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.7, "shrinkA": 0, "shrinkB": 3},
    )
    tag.set_in_layout(False)
    return tag


def _moved(tag: Annotation, renderer: RendererBase, offset: tuple[float, float], horizontal: str,
           vertical: str) -> Bbox:
    tag.xyann = offset
    tag.set_horizontalalignment(horizontal)
    tag.set_verticalalignment(vertical)
    return tag_extent(tag, renderer)


def tag_extent(tag: Annotation, renderer: RendererBase) -> Bbox:
    """The number's own box with its frame, without its leader line (which always reaches the point)."""
    tag.update_positions(renderer)
    return Text.get_window_extent(tag, renderer).padded(3.0)


def _tag_candidates() -> list[tuple[tuple[float, float], str, str]]:
    """(offset in points, horizontal, vertical alignment), nearest ring first, up-left first within a ring:
    above-left of a front point no point can lie (it would dominate the point)."""
    angles = [135, 157.5, 112.5, 180, 90, 202.5, 67.5, 225, 45, 22.5, 247.5, 0, 270, 292.5, 315, 337.5]
    candidates = []
    for distance in (6, 10, 15, 21, 28, 36, 45, 55, 66, 78, 91, 105, 120, 136, 153, 171, 190, 210, 231, 253):
        for angle in angles:
            dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            horizontal = "right" if dx < -0.3 else "left" if dx > 0.3 else "center"
            vertical = "top" if dy < -0.3 else "bottom" if dy > 0.3 else "center"
            candidates.append(((dx * distance, dy * distance), horizontal, vertical))
    return candidates


TAG_CANDIDATES = _tag_candidates()


def _inside(box: Bbox, frame: Bbox) -> bool:
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def front_rows(panel: ParetoPanel) -> list[str]:
    """The table's rows, in the front's order: number, method, hyper-parameters, test numbers."""
    rows = []
    for number, (index, label) in enumerate(zip(panel.front, panel.front_labels, strict=True), start=1):
        point = panel.points[index]
        interval = "" if point.x_interval is None else f" [{point.x_interval[0]:.1f}, {point.x_interval[1]:.1f}]"
        rows.append(f"{number}. {method_title(point.method)}{': ' + label if label else ''}\n"
                    f"clean {point.y:.1f} %, ASR {point.x:.1f} %{interval}")
    return rows


def _front_table(ax: Axes, panel: ParetoPanel) -> None:
    """The front's rows stacked top-down in the panel's right column, at the largest font size that fits."""
    if not panel.front:
        return
    renderer = ax.figure.canvas.get_renderer()
    header = ax.text(0, 1, "Pareto front, test numbers\n(ASR 95 % CI in brackets)", transform=ax.transAxes,
                     va="top", fontsize=TABLE_FONT_SIZES[0], weight="bold")
    header.set_in_layout(False)
    top = 1 - _height(header, ax, renderer) - 0.02
    for size in TABLE_FONT_SIZES:
        texts = _stack(ax, front_rows(panel), top, size, renderer)
        if _bottom(texts[-1], ax, renderer) >= 0 or size == TABLE_FONT_SIZES[-1]:
            break
        for text in texts:
            text.remove()
    hidden = [text for text in texts if _bottom(text, ax, renderer) < 0]
    for text in hidden:
        text.remove()
    if hidden:
        ax.text(0, 0, f"… {len(hidden)} more: see summary.md", transform=ax.transAxes, fontsize=TABLE_FONT_SIZES[-1])


def _stack(ax: Axes, rows: list[str], top: float, size: float, renderer: RendererBase) -> list[Text]:
    box = ax.get_window_extent(renderer)
    points = ax.figure.dpi / 72  # pixels per typographic point
    characters = max(12, int(box.width / (size * points * 0.55)))  # a character is about 0.55 em wide
    gap = 0.4 * size * points / box.height  # between rows, in axes fractions
    texts, y = [], top
    for row in rows:
        text = ax.text(0, y, "\n".join(textwrap.fill(line, characters, subsequent_indent="   ")
                                       for line in row.splitlines()),
                       transform=ax.transAxes, va="top", fontsize=size, gid="front-table-row")
        text.set_in_layout(False)
        texts.append(text)
        y -= _height(text, ax, renderer) + gap
    return texts


def _height(text: Text, ax: Axes, renderer: RendererBase) -> float:
    """In axes fractions."""
    return text.get_window_extent(renderer).height / ax.get_window_extent(renderer).height


def _bottom(text: Text, ax: Axes, renderer: RendererBase) -> float:
    box = ax.get_window_extent(renderer)
    return (text.get_window_extent(renderer).y0 - box.y0) / box.height
