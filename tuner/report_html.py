"""index.html: the report's figures as one interactive page that works offline (plotly, its JavaScript inlined).

Every attacked checkpoint is a point: hovering shows its full configuration, checkpoint path, validation and test
numbers; clicking a method in the legend, or picking it in the menu, filters by method. Colours, names and order
are the static figures' (tuner.plots), the front and the trade-off series are the same ones (tuner.report_figures).
"""
import html
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tuner.chance_level import ChanceLevel
from tuner.hyper_parameters import HYPER_PARAMETERS
from tuner.pareto_figure import CHANCE_REACH
from tuner.plots import TradeoffSeries, method_colour, method_order, method_title
from tuner.report_analysis import DISTANCES, Analysis, ConfigResult, config_columns, format_value, rate_interval
from tuner.report_figures import axis_scale, distance_panels, tradeoff_series
from tuner.report_statistics import is_missing

INDEX_HTML = "index.html"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}  # no logo: it links out of an offline page
CHECKPOINTS = "checkpoints"  # `meta` of the traces holding one point per attacked checkpoint
CONFIG_ITEMS_PER_LINE = 4
PANEL_HEIGHT = 520  # pixels per Pareto row


def write_html(analysis: Analysis, out: Path) -> str:
    """index.html into `out`; returns its name."""
    sections = [("pareto", "Pareto front: clean accuracy against ASR, test split", pareto_page_figure(analysis), "")]
    for parameter in analysis.swept:
        series = tradeoff_series(analysis.eligible, parameter)
        sections.append((f"tradeoff-{parameter}", f"Trade-off against {HYPER_PARAMETERS[parameter].axis}",
                         tradeoff_page_figure(series, parameter), ""))
    sections.append(("distance", "Test ASR against the distance from the pretrained model",
                     distance_page_figure(analysis), _correlation_list(analysis)))
    body = [f"<h2>{html.escape(title)}</h2>\n{note}\n" + figure.to_html(
        full_html=False, include_plotlyjs=index == 0, div_id=div_id, config=PLOT_CONFIG)
        for index, (div_id, title, figure, note) in enumerate(sections)]
    (out / INDEX_HTML).write_text(_page(analysis, body), encoding="utf-8")
    return INDEX_HTML


def _page(analysis: Analysis, body: list[str]) -> str:
    runs = html.escape(", ".join(sorted({row["run"] for row in analysis.rows})))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Robustness report: {runs}</title>
<link rel="icon" href="data:,">
<style>body {{font-family: sans-serif; margin: 1em 2em;}} li {{font-size: 0.9em;}}</style></head>
<body><h1>Robustness report: {runs}</h1>
<p>Hover a point for its configuration, checkpoint and numbers; click a method in a legend (double-click: only it)
or pick one in the menu to filter. Fronts are chosen on validation means and drawn at test means. Tables and the
full record: <a href="summary.md">summary.md</a>, <a href="summary.json">summary.json</a>.</p>
{"".join(body)}</body></html>
"""


def _number(value) -> str:
    return "n/a" if is_missing(value) else f"{float(value):.2f} %"


def _rate_line(row: dict, split: str) -> str:
    interval = rate_interval([row], split, "asr")
    bounds = "" if interval is None else f" [{interval.low:.1f}, {interval.high:.1f}]"
    return (f"{split}: clean {_number(row.get(f'{split}_clean_acc'))}, ASR {_number(row.get(f'{split}_asr'))}"
            f"{bounds}, noise ASR {_number(row.get(f'{split}_noise_asr'))}")


def checkpoint_hover(result: ConfigResult, row: dict, columns: list[str], marks: list[str]) -> str:
    """A checkpoint's hover text: what it is, where it is, its numbers on both splits, its whole config."""
    items = [f"{html.escape(c)}={html.escape(format_value(row.get(c)))}" for c in columns]
    config = ["<br>  " + " · ".join(items[i:i + CONFIG_ITEMS_PER_LINE])
              for i in range(0, len(items), CONFIG_ITEMS_PER_LINE)]
    return "<br>".join([
        f"<b>{html.escape(method_title(result.method))}</b> {html.escape(result.label)}",
        f"checkpoint: {html.escape(str(row.get('checkpoint_path')))}",
        f"trial: {html.escape(str(row.get('run')))}/{html.escape(str(row.get('trial_id')))}",
        _rate_line(row, "val"), _rate_line(row, "test"), *marks, "config:" + "".join(config)])


def _plotted(row: dict) -> bool:
    return not (is_missing(row.get("test_asr")) or is_missing(row.get("test_clean_acc")))


def _marks(analysis: Analysis, result: ConfigResult) -> list[str]:
    marks = ["stopped early: not a method result"] if result.stopped else []
    if analysis.below_minimum(result):
        marks.append(f"below --min-accuracy {analysis.min_accuracy:g} %: left out of the front")
    return marks


def checkpoint_trace(analysis: Analysis, results: list[ConfigResult], first_panel: bool) -> go.Scatter:
    """One method's checkpoints of one group: hollow when stopped early, × below --min-accuracy; bars: each
    ASR's Wilson interval."""
    columns = config_columns(analysis.rows)
    points = [(r, row) for r in results for row in r.rows if _plotted(row)]
    marks = [_marks(analysis, r) for r, _ in points]
    method = results[0].method
    return go.Scatter(
        x=[float(row["test_asr"]) for _, row in points], y=[float(row["test_clean_acc"]) for _, row in points],
        mode="markers", name=method_title(method), legendgroup=method, showlegend=first_panel, meta=CHECKPOINTS,
        marker={"color": method_colour(method), "size": 9, "line": {"width": 1.5, "color": method_colour(method)},
                "symbol": ["x" if analysis.below_minimum(r) else "circle-open" if r.stopped else "circle"
                           for r, _ in points]},
        error_x=_checkpoint_bars([row for _, row in points]),
        hovertext=[checkpoint_hover(r, row, columns, m) for (r, row), m in zip(points, marks)],
        hovertemplate="%{hovertext}<extra></extra>")


def _checkpoint_bars(rows: list[dict]) -> dict:
    """Each checkpoint's test-ASR Wilson interval; its own ASR (fooled / correct) always lies inside it."""
    intervals = [rate_interval([row], "test", "asr") for row in rows]
    asrs = [float(row["test_asr"]) for row in rows]
    return {"type": "data", "symmetric": False, "thickness": 1, "width": 2,
            "array": [0 if i is None else max(0.0, i.high - x) for i, x in zip(intervals, asrs)],
            "arrayminus": [0 if i is None else max(0.0, x - i.low) for i, x in zip(intervals, asrs)]}


def front_trace(front: list[ConfigResult], first_panel: bool) -> go.Scatter:
    """The front chosen on validation, numbered as in pareto.png, at its configurations' test means."""
    numbered = sorted(enumerate(front, start=1), key=lambda item: item[1].stats["test_asr"].mean)
    return go.Scatter(
        x=[r.stats["test_asr"].mean for _, r in numbered], y=[r.stats["test_clean_acc"].mean for _, r in numbered],
        mode="lines+markers+text", line={"shape": "hv", "color": "black", "width": 1.2},
        text=[str(n) for n, _ in numbered], textposition="top left",
        marker={"symbol": "circle-open", "size": 15, "color": "black"},
        name="Pareto front (chosen on validation)", legendgroup="front", showlegend=first_panel, meta="front",
        hovertext=[f"front #{n}: <b>{html.escape(method_title(r.method))}</b> {html.escape(r.label)}<br>test means "
                   f"over {len(r.rows)} seed(s): clean {r.stats['test_clean_acc'].mean:.2f} %, ASR "
                   f"{r.stats['test_asr'].mean:.2f} %" for n, r in numbered],
        hovertemplate="%{hovertext}<extra></extra>")


def pareto_page_figure(analysis: Analysis) -> go.Figure:
    groups = list(analysis.fronts)
    figure = make_subplots(rows=len(groups), cols=1, subplot_titles=groups, vertical_spacing=0.25 / len(groups))
    for panel, group in enumerate(groups, start=1):
        own = [r for r in analysis.results if r.group == group]
        for method in method_order([r.method for r in own]):
            figure.add_trace(checkpoint_trace(analysis, [r for r in own if r.method == method], panel == 1), panel, 1)
        figure.add_trace(front_trace(analysis.fronts[group], panel == 1), panel, 1)
        if analysis.chance[group] is not None:
            _chance(figure, analysis.chance[group], own, panel)
        figure.update_xaxes(title_text="test ASR (%), bars: 95 % Wilson CI", row=panel, col=1)
        figure.update_yaxes(title_text="test clean accuracy (%)", row=panel, col=1)
    figure.update_layout(height=PANEL_HEIGHT * len(groups), hovermode="closest", legend={"title": "method"},
                         updatemenus=[_method_menu(figure)])
    return figure


def _chance(figure: go.Figure, chance: ChanceLevel, results: list[ConfigResult], panel: int) -> None:
    """As in pareto.png: a dotted line when the accuracy axis can show it without squashing the points, else a
    note in the corner."""
    text = f"chance 1/{chance.num_classes} = {chance.accuracy:.2f} %"
    shown = [float(row["test_clean_acc"]) for r in results for row in r.rows if _plotted(row)]
    low, high = (min(shown), max(shown)) if shown else (0.0, 100.0)
    if chance.accuracy >= low - CHANCE_REACH * (high - low):
        figure.add_hline(y=chance.accuracy, row=panel, col=1, line={"dash": "dot", "color": "grey", "width": 1},
                         annotation_text=text)
    else:
        figure.add_annotation(text=f"{text}: below this axis", xref="x domain", yref="y domain", x=0, y=0,
                              xanchor="left", yanchor="bottom", showarrow=False, font={"size": 10, "color": "grey"},
                              row=panel, col=1)


def _method_menu(figure: go.Figure) -> dict:
    """A menu that shows every method or one: it toggles the checkpoint traces, the fronts stay."""
    methods = list(dict.fromkeys(t.legendgroup for t in figure.data if t.meta == CHECKPOINTS))

    def visible(method: str | None) -> list[bool]:
        return [t.meta != CHECKPOINTS or method in (None, t.legendgroup) for t in figure.data]

    buttons = [{"label": "all methods", "method": "restyle", "args": [{"visible": visible(None)}]}]
    buttons += [{"label": method_title(m), "method": "restyle", "args": [{"visible": visible(m)}]} for m in methods]
    return {"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.08, "yanchor": "bottom"}


def interval_trace(xs: list[float], lows: list[float], highs: list[float], colour: str, group: str) -> go.Scatter:
    """Bars from each low to high end, centred on the interval (it need not contain a mean over seeds); they
    hide with their series."""
    kept = [(x, low, high) for x, low, high in zip(xs, lows, highs) if not (math.isnan(low) or math.isnan(high))]
    return go.Scatter(x=[x for x, _, _ in kept], y=[(low + high) / 2 for _, low, high in kept], mode="markers",
                      marker={"opacity": 0}, legendgroup=group, showlegend=False, hoverinfo="skip",
                      error_y={"type": "data", "array": [(high - low) / 2 for _, low, high in kept], "color": colour})


def tradeoff_page_figure(series: list[TradeoffSeries], parameter: str) -> go.Figure:
    figure = make_subplots(rows=1, cols=2, subplot_titles=("clean accuracy (bars: ± std over seeds)",
                                                           "ASR (bars: 95 % Wilson CI)"))
    several_groups = len({s.group for s in series}) > 1
    for line in series:
        name = method_title(line.method) + (f" · {line.group}" if several_groups else "")
        colour = method_colour(line.method)
        for column, spread in ((1, line.clean), (2, line.asr)):
            figure.add_trace(go.Scatter(
                x=line.x, y=spread.mean, mode="lines+markers", name=name, legendgroup=name, showlegend=column == 1,
                line={"color": colour}, meta="tradeoff",
                hovertemplate=f"{html.escape(name)}<br>{parameter}=%{{x}}<br>%{{y:.2f}} %<extra></extra>"), 1, column)
            figure.add_trace(interval_trace(line.x, spread.low, spread.high, colour, name), 1, column)
    scale = axis_scale(parameter, series)
    figure.update_xaxes(title_text=HYPER_PARAMETERS[parameter].axis, type="log" if scale == "log" else "linear")
    figure.update_yaxes(title_text="test clean accuracy (%)", col=1)
    figure.update_yaxes(title_text="test ASR (%)", col=2)
    return figure


def distance_page_figure(analysis: Analysis) -> go.Figure:
    figure = make_subplots(rows=1, cols=len(DISTANCES), subplot_titles=list(DISTANCES.values()), shared_yaxes=True)
    columns = config_columns(analysis.rows)
    for column_index, column in enumerate(DISTANCES, start=1):
        for method in method_order([r.method for r in analysis.eligible]):
            points = [(r, row) for r in analysis.eligible if r.method == method for row in r.rows
                      if not (is_missing(row.get(column)) or is_missing(row.get("test_asr")))]
            figure.add_trace(go.Scatter(
                x=[float(row[column]) for _, row in points], y=[float(row["test_asr"]) for _, row in points],
                mode="markers", name=method_title(method), legendgroup=method, showlegend=column_index == 1,
                marker={"color": method_colour(method), "size": 8}, meta=f"distance {column}",
                error_y=_checkpoint_bars([row for _, row in points]),
                hovertext=[checkpoint_hover(r, row, columns, []) for r, row in points],
                hovertemplate=f"{column} %{{x:.4g}}<br>%{{hovertext}}<extra></extra>"), 1, column_index)
        figure.update_xaxes(title_text=column, col=column_index)
    figure.update_yaxes(title_text="test ASR (%)", col=1)
    return figure


def _correlation_list(analysis: Analysis) -> str:
    """The per-method correlations under the distance figure (the plotly legend is shared by both panels)."""
    items = []
    for panel in distance_panels(analysis):
        lines = [panel.title] + [text for _, text in panel.by_method]
        items.append(f"<li>{html.escape(panel.xlabel)}<ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul></li>")
    return "<ul>" + "".join(items) + "</ul>"
