"""The report's figures: what they draw (points, series, panels), each method's look, the trade-off and the
distance figures (the Pareto figure is tuner.pareto_figure's).

Figures are drawn on matplotlib's Agg canvas without pyplot, so building a report keeps no global state and
works in any thread or headless worker. Every figure, static or interactive, colours, names and orders the
methods the same way (`method_colour`, `method_title`, `method_order`).
"""
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from trainables.methods import METHODS

DPI = 150
FIGSIZE = (8.0, 5.0)  # inches, one panel row

FALLBACK_COLOURS = ("#e377c2", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
GROUP_LINESTYLES = ("-", "--", ":", "-.")


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


Interval = tuple[float, float]  # (low, high) of an error bar, absolute


@dataclass(frozen=True)
class Point:
    method: str
    group: str  # dataset (and attack, when a report mixes attacks)
    x: float
    y: float
    x_interval: Interval | None = None  # error bar along x (None: none)
    y_interval: Interval | None = None
    hollow: bool = False  # not a method result (a trial a scheduler stopped early)


@dataclass(frozen=True)
class ParetoPanel:
    title: str
    points: list[Point]  # x = test ASR %, y = test clean accuracy %
    front: list[int]  # indices into points: the front chosen on validation, in its order (ascending val ASR)
    front_labels: list[str]  # one per front index: its key hyper-parameters ("" when nothing varies)
    chance: float | None = None  # chance accuracy %, None when the class count is unknown
    chance_label: str = "chance"
    below_minimum: list[int] = field(default_factory=list)  # indices left out of the front by --min-accuracy


@dataclass(frozen=True)
class Spread:
    mean: list[float]
    low: list[float]  # error bar ends, absolute; NaN: no bar
    high: list[float]


@dataclass(frozen=True)
class TradeoffSeries:
    method: str
    group: str
    x: list[float]  # ascending parameter values
    clean: Spread  # bars: ± std over seeds
    asr: Spread  # NaN where no row at that value has an ASR; bars: confidence interval from the counts


@dataclass(frozen=True)
class DistancePanel:
    xlabel: str
    points: list[Point]  # x = distance, y = ASR % (y_interval: its confidence interval)
    title: str  # the pooled correlation
    by_method: list[tuple[str, str]]  # (method, its correlation in words), in method order


def new_figure(rows: int = 1, columns: int = 1, **subplots) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, **subplots)
    return figure, [ax for row in axes for ax in row]


def save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI)


def method_legend(figure: Figure, methods: Sequence[str], groups: Sequence[str], where: str, lines: bool = False,
                  extra: Sequence[Line2D] = ()) -> None:
    """One legend outside the axes: a colour per method and, when there are several, a marker (and line style,
    for line plots) per group; then `extra` entries."""
    handles = [Line2D([], [], color=method_colour(m), marker="o", linestyle="",
                      label=method_title(m)) for m in method_order(methods)]
    distinct_groups = sorted(set(groups))
    if len(distinct_groups) > 1:
        handles += [Line2D([], [], color="0.3", marker=group_marker(groups, g), label=g,
                           linestyle=group_linestyle(groups, g) if lines else "")
                    for g in distinct_groups]
    handles += list(extra)
    columns = 1 if "right" in where else min(len(handles), 5)
    figure.legend(handles=handles, loc=where, ncols=columns, fontsize=8, frameon=False)


def scatter_by_method(ax: Axes, points: list[Point], groups: Sequence[str], **style) -> None:
    """One scatter per method and group: the method's colour (its edge only, for hollow points), the group's
    marker."""
    for method, group in dict.fromkeys((p.method, p.group) for p in points):
        members = [p for p in points if p.method == method and p.group == group]
        colour = {"edgecolors": method_colour(method)} if style.get("facecolors") == "none" else {
            "color": method_colour(method)}
        ax.scatter([p.x for p in members], [p.y for p in members], marker=group_marker(groups, group),
                   **colour, **style)


def interval_bars(ax: Axes, xs: Sequence[float], ys: Sequence[float], intervals: Sequence[Interval | None],
                  vertical: bool, colour: str, **style) -> None:
    """Each interval as a bar from its low to its high end at its point's other coordinate. The bar is centred on
    the interval, not on the point: an interval from counts pooled over seeds need not contain their mean."""
    kept = [(x, y, i) for x, y, i in zip(xs, ys, intervals, strict=True)
            if i is not None and not (math.isnan(i[0]) or math.isnan(i[1]))]
    if not kept:
        return
    middles = [(low + high) / 2 for _, _, (low, high) in kept]
    halves = [(high - low) / 2 for _, _, (low, high) in kept]
    positions = [x if vertical else y for x, y, _ in kept]
    ax.errorbar(positions if vertical else middles, middles if vertical else positions,
                **({"yerr": halves} if vertical else {"xerr": halves}), fmt="none", ecolor=colour, **style)


def error_bars(ax: Axes, points: list[Point]) -> None:
    for point in points:
        for vertical, interval in ((False, point.x_interval), (True, point.y_interval)):
            interval_bars(ax, [point.x], [point.y], [interval], vertical, method_colour(point.method), alpha=0.5,
                          linewidth=0.8, capsize=2, zorder=1)


def tradeoff_plot(series: list[TradeoffSeries], parameter_label: str, scale: str, path: Path) -> None:
    """Clean accuracy and ASR against one hyper-parameter, a line per method and group (the paper's Fig. 4)."""
    figure, (clean_ax, asr_ax) = new_figure(columns=2, sharex=True)
    groups = [s.group for s in series]
    for line in series:
        colour = method_colour(line.method)
        for ax, spread in ((clean_ax, line.clean), (asr_ax, line.asr)):
            kept = [i for i, mean in enumerate(spread.mean) if not math.isnan(mean)]
            xs, means = [line.x[i] for i in kept], [spread.mean[i] for i in kept]
            ax.plot(xs, means, color=colour, marker=group_marker(groups, line.group), markersize=5, linewidth=1.4,
                    linestyle=group_linestyle(groups, line.group))
            interval_bars(ax, xs, means, [(spread.low[i], spread.high[i]) for i in kept], True, colour, capsize=3,
                          linewidth=1.0)
    for ax, title, metric in ((clean_ax, "Clean accuracy (bars: ± std over seeds)", "test clean accuracy (%)"),
                              (asr_ax, "Attack success rate (bars: 95 % Wilson CI)",
                               "test attack success rate, ASR (%)")):
        ax.set_xscale(scale, **({"linthresh": _smallest_positive(series)} if scale == "symlog" else {}))
        ax.set_xlabel(parameter_label + ("" if scale == "linear" else f" ({scale} scale)"))
        ax.set_ylabel(metric)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    method_legend(figure, [s.method for s in series], groups, "outside lower center", lines=True)
    figure.suptitle(f"Trade-off against {parameter_label}: test split, mean over seeds")
    save_figure(figure, path)


def _smallest_positive(series: list[TradeoffSeries]) -> float:
    return min(x for s in series for x in s.x if x > 0)


def distance_figure(panels: list[DistancePanel]) -> Figure:
    """ASR against the transferred model's distance from the pretrained model (the paper's Fig. 1), each
    panel with its correlations: pooled in the title, per method in the corner."""
    figure, axes = new_figure(columns=len(panels), sharey=True)
    all_points = [p for panel in panels for p in panel.points]
    groups = [p.group for p in all_points]
    for ax, panel in zip(axes, panels, strict=True):
        error_bars(ax, panel.points)
        scatter_by_method(ax, panel.points, groups, s=28, alpha=0.8, zorder=2)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel)
        ax.grid(alpha=0.3)
        for line, (method, text) in enumerate(panel.by_method):
            ax.text(0.98, 0.98 - 0.06 * line, text, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                    color=method_colour(method), gid="method-correlation")
    axes[0].set_ylabel("test attack success rate, ASR (%)")
    method_legend(figure, [p.method for p in all_points], groups, "outside lower center")
    figure.suptitle("Robustness vs distance from the pretrained model (bars: 95 % Wilson CI of each ASR)")
    return figure


def distance_plot(panels: list[DistancePanel], path: Path) -> None:
    save_figure(distance_figure(panels), path)
