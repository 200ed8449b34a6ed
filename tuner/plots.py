"""The report's figures: Pareto front, hyper-parameter trade-offs, distance vs ASR.

Figures are drawn on matplotlib's Agg canvas without pyplot, so building a report keeps no global state and
works in any thread or headless worker. Every figure colours a method the same way (`method_colour`).
"""
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from trainables.methods import METHODS

DPI = 150
FIGSIZE = (8.0, 5.0)  # inches, one panel row

FALLBACK_COLOURS = ("#e377c2", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
GROUP_LINESTYLES = ("-", "--", ":", "-.")
LABEL_FONT_SIZE = 6.5


def method_colour(method: str) -> str:
    """The method's own colour (its spec's) in every figure; a method no spec defines (a run made by another
    version) gets one from its name's checksum, so the same name has the same colour in every report."""
    if method in METHODS:
        return METHODS[method].colour
    return FALLBACK_COLOURS[zlib.crc32(method.encode()) % len(FALLBACK_COLOURS)]


def method_title(method: str) -> str:
    return METHODS[method].title if method in METHODS else method


def method_order(methods: Sequence[str]) -> list[str]:
    """The specs' order (the paper's), unknown methods after it by name."""
    known = [m for m in METHODS if m in methods]
    return known + sorted(set(methods) - set(known))


def group_marker(groups: Sequence[str], group: str) -> str:
    return GROUP_MARKERS[sorted(set(groups)).index(group) % len(GROUP_MARKERS)]


def group_linestyle(groups: Sequence[str], group: str) -> str:
    return GROUP_LINESTYLES[sorted(set(groups)).index(group) % len(GROUP_LINESTYLES)]


@dataclass(frozen=True)
class Point:
    method: str
    group: str  # dataset (and attack, when a report mixes attacks)
    x: float
    y: float
    x_error: float = 0.0  # half-length of the error bar: std over seeds (0: none)
    y_error: float = 0.0
    hollow: bool = False  # not a method result (a trial a scheduler stopped early)


@dataclass(frozen=True)
class ParetoPanel:
    title: str
    points: list[Point]  # x = test ASR %, y = test clean accuracy %
    front: list[int]  # indices into points: the front chosen on validation
    front_labels: list[str]  # one per front index


@dataclass(frozen=True)
class Spread:
    mean: list[float]
    low: list[float]
    high: list[float]


@dataclass(frozen=True)
class TradeoffSeries:
    method: str
    group: str
    x: list[float]  # ascending parameter values
    clean: Spread
    asr: Spread  # NaN where no row at that value has an ASR


@dataclass(frozen=True)
class DistancePanel:
    xlabel: str
    points: list[Point]  # x = distance, y = ASR %
    correlation: float | None  # Pearson r; None when it is undefined


def _new_figure(rows: int = 1, columns: int = 1, **shared: bool) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, **shared)
    return figure, [ax for row in axes for ax in row]


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI)


def _method_legend(figure: Figure, methods: Sequence[str], groups: Sequence[str], where: str,
                   lines: bool = False) -> None:
    """One legend outside the axes: a colour per method and, when there are several, a marker (and line style,
    for line plots) per group."""
    handles = [Line2D([], [], color=method_colour(m), marker="o", linestyle="",
                      label=method_title(m)) for m in method_order(methods)]
    distinct_groups = sorted(set(groups))
    if len(distinct_groups) > 1:
        handles += [Line2D([], [], color="0.3", marker=group_marker(groups, g), label=g,
                           linestyle=group_linestyle(groups, g) if lines else "")
                    for g in distinct_groups]
    columns = 1 if "right" in where else min(len(handles), 5)
    figure.legend(handles=handles, loc=where, ncols=columns, fontsize=8, frameon=False)


def pareto_plot(panels: list[ParetoPanel], path: Path) -> None:
    figure, axes = _new_figure(rows=len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        _draw_pareto_panel(ax, panel)
    methods = [p.method for panel in panels for p in panel.points]
    _method_legend(figure, methods, [], "outside right upper")  # a panel per group: no group markers
    figure.suptitle("Each point: a configuration at its test means (bars: ± std over seeds)\n"
                    "black: the Pareto front chosen on validation; hollow: stopped early", fontsize=10)
    figure.canvas.draw()  # final axes positions, so labels can be placed in pixels
    for ax, panel in zip(axes, panels, strict=True):
        _place_labels(ax, panel)
    _save(figure, path)


def _scatter_by_method(ax: Axes, points: list[Point], groups: Sequence[str], **style) -> None:
    """One scatter per method and group: the method's colour (its edge only, for hollow points), the group's
    marker."""
    for method, group in dict.fromkeys((p.method, p.group) for p in points):
        members = [p for p in points if p.method == method and p.group == group]
        colour = {"edgecolors": method_colour(method)} if style.get("facecolors") == "none" else {
            "color": method_colour(method)}
        ax.scatter([p.x for p in members], [p.y for p in members], marker=group_marker(groups, group),
                   **colour, **style)


def _draw_pareto_panel(ax: Axes, panel: ParetoPanel) -> None:
    on_front = set(panel.front)
    groups = [p.group for p in panel.points]
    others = [p for i, p in enumerate(panel.points) if i not in on_front]
    _error_bars(ax, panel.points)
    _scatter_by_method(ax, [p for p in others if not p.hollow], groups, s=28, alpha=0.45, edgecolors="none",
                       zorder=2)
    _scatter_by_method(ax, [p for p in others if p.hollow], groups, s=28, facecolors="none", zorder=2)
    _scatter_by_method(ax, [panel.points[i] for i in panel.front], groups,
                       s=55, edgecolors="black", linewidths=0.8, zorder=3)
    front = sorted((panel.points[i] for i in panel.front), key=lambda p: p.x)
    ax.step([p.x for p in front], [p.y for p in front], where="post", color="black", linewidth=1.2, zorder=1)
    ax.set_title(panel.title)
    ax.set_xlabel("test attack success rate, ASR (%) — lower is more robust")
    ax.set_ylabel("test clean accuracy (%)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)


def _error_bars(ax: Axes, points: list[Point]) -> None:
    for point in points:
        if point.x_error or point.y_error:
            ax.errorbar(point.x, point.y, xerr=point.x_error, yerr=point.y_error, color=method_colour(point.method),
                        alpha=0.5, linewidth=0.8, capsize=2, zorder=1)


def _place_labels(ax: Axes, panel: ParetoPanel) -> None:
    """Label each front point where its label overlaps no other label and no marker, joined to its point by a
    thin leader in the method's colour. Candidates go outwards in rings, up-left first: above-left of the
    front no point can lie (it would dominate the front), so that is where the room is."""
    renderer = ax.figure.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    radius = 5.0  # pixels around a front marker kept clear
    markers = [Bbox.from_bounds(x - radius, y - radius, 2 * radius, 2 * radius)
               for x, y in ax.transData.transform([(panel.points[i].x, panel.points[i].y) for i in panel.front])]
    placed: list[Bbox] = []
    order = sorted(range(len(panel.front)), key=lambda k: panel.points[panel.front[k]].y)
    for k in order:
        point = panel.points[panel.front[k]]
        colour = method_colour(point.method)
        annotation = ax.annotate(
            panel.front_labels[k], (point.x, point.y), xytext=(0, 0), textcoords="offset points",
            fontsize=LABEL_FONT_SIZE, zorder=4, annotation_clip=False,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour, "linewidth": 0.6,
                  "alpha": 0.9},
            arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.7, "shrinkA": 0, "shrinkB": 3},
        )
        annotation.set_in_layout(False)
        best: tuple[float, tuple[float, float], str, str] | None = None
        for offset, horizontal, vertical in LABEL_CANDIDATES:
            annotation.xyann = offset
            annotation.set_horizontalalignment(horizontal)
            annotation.set_verticalalignment(vertical)
            box = _text_extent(annotation, renderer)
            # a label over a label is the worst, then leaving the axes, then hiding a front marker
            cost = (100.0 * sum(box.overlaps(other) for other in placed) + 1000.0 * (not _inside(box, axes_box))
                    + 10.0 * sum(box.overlaps(marker) for marker in markers))
            if best is None or cost < best[0]:
                best = (cost, offset, horizontal, vertical)
            if cost == 0:
                break
        _, annotation.xyann, horizontal, vertical = best
        annotation.set_horizontalalignment(horizontal)
        annotation.set_verticalalignment(vertical)
        placed.append(_text_extent(annotation, renderer))


def _label_candidates() -> list[tuple[tuple[float, float], str, str]]:
    """(offset in points, horizontal, vertical alignment), nearest ring first, up-left first within a ring."""
    angles = [135, 157.5, 112.5, 180, 90, 202.5, 67.5, 225, 45, 22.5, 247.5, 0, 270, 292.5, 315, 337.5]
    candidates = []
    for distance in (6, 10, 15, 21, 28, 36, 45, 55, 66, 78, 91, 105, 120, 136, 153, 171, 190, 210, 231, 253):
        for angle in angles:
            dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            horizontal = "right" if dx < -0.3 else "left" if dx > 0.3 else "center"
            vertical = "top" if dy < -0.3 else "bottom" if dy > 0.3 else "center"
            candidates.append(((dx * distance, dy * distance), horizontal, vertical))
    return candidates


LABEL_CANDIDATES = _label_candidates()


def _inside(box: Bbox, frame: Bbox) -> bool:
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def _text_extent(annotation: Annotation, renderer: RendererBase) -> Bbox:
    """The label's own box, without its leader line (which always reaches the point)."""
    annotation.update_positions(renderer)
    return Text.get_window_extent(annotation, renderer).padded(2.0)


def tradeoff_plot(series: list[TradeoffSeries], parameter_label: str, scale: str, path: Path) -> None:
    """Clean accuracy and ASR against one hyper-parameter, a line per method and group (the paper's Fig. 4)."""
    figure, (clean_ax, asr_ax) = _new_figure(columns=2, sharex=True)
    groups = [s.group for s in series]
    for line in series:
        style = {"color": method_colour(line.method), "marker": group_marker(groups, line.group), "capsize": 3,
                 "linestyle": group_linestyle(groups, line.group), "markersize": 5, "linewidth": 1.4}
        for ax, spread in ((clean_ax, line.clean), (asr_ax, line.asr)):
            kept = [i for i, mean in enumerate(spread.mean) if not math.isnan(mean)]
            means = [spread.mean[i] for i in kept]
            ax.errorbar([line.x[i] for i in kept], means,
                        yerr=[[m - spread.low[i] for m, i in zip(means, kept)],
                              [spread.high[i] - m for m, i in zip(means, kept)]], **style)
    for ax, title, metric in ((clean_ax, "Clean accuracy", "test clean accuracy (%)"),
                              (asr_ax, "Attack success rate", "test attack success rate, ASR (%)")):
        ax.set_xscale(scale, **({"linthresh": _smallest_positive(series)} if scale == "symlog" else {}))
        ax.set_xlabel(parameter_label + ("" if scale == "linear" else f" ({scale} scale)"))
        ax.set_ylabel(metric)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    _method_legend(figure, [s.method for s in series], groups, "outside lower center", lines=True)
    figure.suptitle(f"Trade-off against {parameter_label}: test split, mean over seeds, bars ± std")
    _save(figure, path)


def _smallest_positive(series: list[TradeoffSeries]) -> float:
    return min(x for s in series for x in s.x if x > 0)


def distance_plot(panels: list[DistancePanel], path: Path) -> None:
    """ASR against the transferred model's distance from the pretrained one (the paper's Fig. 1)."""
    figure, axes = _new_figure(columns=len(panels), sharey=True)
    all_points = [p for panel in panels for p in panel.points]
    groups = [p.group for p in all_points]
    for ax, panel in zip(axes, panels, strict=True):
        _scatter_by_method(ax, panel.points, groups, s=28, alpha=0.8)
        r = "n/a" if panel.correlation is None else f"{panel.correlation:+.2f}"
        ax.set_title(f"Pearson r = {r} (n = {len(panel.points)})")
        ax.set_xlabel(panel.xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test attack success rate, ASR (%)")
    _method_legend(figure, [p.method for p in all_points], groups, "outside lower center")
    figure.suptitle("Robustness vs distance from the pretrained model")
    _save(figure, path)
