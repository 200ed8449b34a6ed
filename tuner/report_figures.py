"""What the report's figures show, built from the analysis (figures need every configuration and checkpoint,
not only what the summary record keeps): Pareto panels, trade-off series, distance panels. The static figures
(tuner.plots, tuner.pareto_figure) and the interactive page (tuner.report_html) draw the same ones."""
import math
from pathlib import Path

from tuner.hyper_parameters import HYPER_PARAMETERS
from tuner.pareto_figure import pareto_plot
from tuner.plots import (
    DistancePanel,
    Interval,
    ParetoPanel,
    Point,
    Spread,
    TradeoffSeries,
    distance_plot,
    method_order,
    method_title,
    tradeoff_plot,
)
from tuner.report_analysis import DISTANCES, Analysis, ConfigResult, rate_interval
from tuner.report_statistics import Correlation, RateInterval, Statistic, is_missing, statistic


def pareto_panels(analysis: Analysis) -> list[ParetoPanel]:
    panels = []
    for group, front in analysis.fronts.items():
        results = [r for r in analysis.results if r.group == group]
        position = {id(r): i for i, r in enumerate(results)}
        chance = analysis.chance[group]
        panels.append(ParetoPanel(
            title=f"{group}: {len(front)} Pareto-optimal on validation of {len(results)} configurations",
            points=[config_point(r) for r in results],
            front=[position[id(r)] for r in front],
            front_labels=[r.label for r in front],
            chance=None if chance is None else chance.accuracy,
            chance_label=f"chance 1/{chance.num_classes}" if chance else "chance",
            below_minimum=[i for i, r in enumerate(results) if analysis.below_minimum(r)],
        ))
    return panels


def spread_interval(stat: Statistic) -> Interval | None:
    """mean ± std over seeds, within [0, 100] % (a percentage cannot leave it); None for a single seed."""
    return None if math.isnan(stat.std) else (max(0.0, stat.mean - stat.std), min(100.0, stat.mean + stat.std))


def interval_bounds(interval: RateInterval | None) -> Interval | None:
    return None if interval is None else (interval.low, interval.high)


def config_point(result: ConfigResult) -> Point:
    """A configuration at its test means: ASR bars the Wilson interval of its pooled counts (± std where the rows
    have no counts), accuracy bars ± std over seeds."""
    asr, clean = result.stats["test_asr"], result.stats["test_clean_acc"]
    x_interval = interval_bounds(result.intervals["test_asr"]) or spread_interval(asr)
    return Point(result.method, result.group, asr.mean, clean.mean, x_interval, spread_interval(clean),
                 hollow=result.stopped)


def correlation_text(correlation: Correlation) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.2f}"

    return f"Spearman ρ = {number(correlation.spearman_rho)}, Pearson r = {number(correlation.pearson_r)} " \
           f"(n = {correlation.n})"


def distance_panels(analysis: Analysis) -> list[DistancePanel]:
    panels = []
    for column, label in DISTANCES.items():
        points = [Point(r.method, r.group, float(row[column]), float(row["test_asr"]),
                        y_interval=interval_bounds(rate_interval([row], "test", "asr")))
                  for r in analysis.eligible for row in r.rows
                  if not (is_missing(row.get(column)) or is_missing(row.get("test_asr")))]
        correlations = analysis.correlations[column]
        panels.append(DistancePanel(label, points, "all checkpoints: " + correlation_text(correlations["all"]),
                                    [_method_line(key, c) for key, c in correlations.items() if key != "all"]))
    return panels


def _method_line(key: str, correlation: Correlation) -> tuple[str, str]:
    """(method, its line) of a per-method correlation keyed `method` or `method · group`."""
    method, _, group = key.partition(" · ")
    return method, f"{method_title(method)}{' · ' + group if group else ''}: {correlation_text(correlation)}"


def tradeoff_series(results: list[ConfigResult], parameter: str) -> list[TradeoffSeries]:
    """A series per method and group in which `parameter` takes at least two values: test clean accuracy
    (mean ± std over the seeds) and ASR (mean, with the Wilson interval of the pooled counts) at each value;
    configurations differing in other keys are pooled."""
    series = []
    for group in sorted({r.group for r in results}):
        for method in method_order([r.method for r in results if r.group == group]):
            own = [r for r in results if r.group == group and r.method == method
                   and not is_missing(r.config.get(parameter))]
            xs = sorted({float(r.config[parameter]) for r in own})
            if len(xs) > 1:
                at = {x: [row for r in own if float(r.config[parameter]) == x for row in r.rows] for x in xs}
                series.append(TradeoffSeries(method, group, xs, _clean_spread(at), _asr_spread(at)))
    return series


def _clean_spread(rows_at: dict[float, list[dict]]) -> Spread:
    stats = [statistic(row.get("test_clean_acc") for row in rows) for rows in rows_at.values()]
    deviation = [0.0 if math.isnan(s.std) else s.std for s in stats]
    return Spread([s.mean for s in stats], [s.mean - d for s, d in zip(stats, deviation)],
                  [s.mean + d for s, d in zip(stats, deviation)])


def _asr_spread(rows_at: dict[float, list[dict]]) -> Spread:
    means = [statistic(row.get("test_asr") for row in rows).mean for rows in rows_at.values()]
    intervals = [rate_interval(rows, "test", "asr") for rows in rows_at.values()]
    return Spread(means, [math.nan if i is None else i.low for i in intervals],
                  [math.nan if i is None else i.high for i in intervals])


def axis_scale(parameter: str, series: list[TradeoffSeries]) -> str:
    """Log for the parameters swept over decades; symlog when such a sweep includes 0."""
    if not HYPER_PARAMETERS[parameter].log_scale:
        return "linear"
    values = [x for s in series for x in s.x]
    if all(x > 0 for x in values):
        return "log"
    return "symlog" if any(x > 0 for x in values) else "linear"


def draw_figures(analysis: Analysis, out: Path) -> list[str]:
    """Every static figure into `out`; returns their file names."""
    images = ["pareto.png"]
    pareto_plot(pareto_panels(analysis), out / images[-1])
    for parameter in analysis.swept:
        series = tradeoff_series(analysis.eligible, parameter)
        images.append(f"tradeoff_{parameter}.png")
        tradeoff_plot(series, HYPER_PARAMETERS[parameter].axis, axis_scale(parameter, series), out / images[-1])
    images.append("distance_vs_asr.png")
    distance_plot(distance_panels(analysis), out / images[-1])
    return images
