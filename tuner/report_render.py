"""The report's rendering: summary.md and the console digest from the summary record alone, and the figures
from the analysis (they need every configuration and checkpoint, not only what the record keeps)."""
import json
import math
from pathlib import Path

from tuner.hyper_parameters import HYPER_PARAMETERS
from tuner.plots import (DistancePanel, ParetoPanel, Point, Spread, TradeoffSeries, distance_plot, method_order,
                         pareto_plot, tradeoff_plot)
from tuner.report_analysis import (DISTANCES, Analysis, ConfigResult, format_value, is_missing,
                                   statistic)
from tuner.run_dir import SWEEP_RECORD


def pareto_panels(analysis: Analysis) -> list[ParetoPanel]:
    panels = []
    for group, front in analysis.fronts.items():
        results = [r for r in analysis.results if r.group == group]
        position = {id(r): i for i, r in enumerate(results)}
        panels.append(ParetoPanel(
            title=f"{group}: {len(front)} Pareto-optimal on validation of {len(results)} configurations",
            points=[_point(r) for r in results],
            front=[position[id(r)] for r in front],
            front_labels=front_point_labels(front),
        ))
    return panels


def _point(result: ConfigResult) -> Point:
    asr, clean = result.stats["test_asr"], result.stats["test_clean_acc"]
    return Point(result.method, result.group, asr.mean, clean.mean, 0.0 if math.isnan(asr.std) else asr.std,
                 0.0 if math.isnan(clean.std) else clean.std, hollow=result.stopped)


def front_point_labels(front: list[ConfigResult]) -> list[str]:
    """Key hyper-parameters (the colour tells the method; the method's name where nothing varies)."""
    return [result.label or result.method for result in front]


def distance_panels(analysis: Analysis) -> list[DistancePanel]:
    panels = []
    for column, label in DISTANCES.items():
        points = [Point(r.method, r.group, float(row[column]), float(row["test_asr"]))
                  for r in analysis.eligible for row in r.rows
                  if not (is_missing(row.get(column)) or is_missing(row.get("test_asr")))]
        panels.append(DistancePanel(label, points, analysis.correlations[column][0]))
    return panels


def tradeoff_series(results: list[ConfigResult], parameter: str) -> list[TradeoffSeries]:
    """A series per method and group in which `parameter` takes at least two values: test clean accuracy and
    ASR at each value, mean ± std over the seeds (configurations differing in other keys are pooled)."""
    series = []
    for group in sorted({r.group for r in results}):
        for method in method_order([r.method for r in results if r.group == group]):
            own = [r for r in results if r.group == group and r.method == method
                   and not is_missing(r.config.get(parameter))]
            xs = sorted({float(r.config[parameter]) for r in own})
            if len(xs) > 1:
                at = {x: [r for r in own if float(r.config[parameter]) == x] for x in xs}
                series.append(TradeoffSeries(method, group, xs, _spread(at, "test_clean_acc"), _spread(at, "test_asr")))
    return series


def _spread(results_at: dict[float, list[ConfigResult]], column: str) -> Spread:
    stats = [statistic(row.get(column) for r in results for row in r.rows) for results in results_at.values()]
    deviation = [0.0 if math.isnan(s.std) else s.std for s in stats]
    return Spread([s.mean for s in stats], [s.mean - d for s, d in zip(stats, deviation)],
                  [s.mean + d for s, d in zip(stats, deviation)])


def axis_scale(parameter: str, series: list[TradeoffSeries]) -> str:
    """Log for the parameters swept over decades; symlog when such a sweep includes 0."""
    if not HYPER_PARAMETERS[parameter].log_scale:
        return "linear"
    values = [x for s in series for x in s.x]
    if all(x > 0 for x in values):
        return "log"
    return "symlog" if any(x > 0 for x in values) else "linear"


def draw_figures(analysis: Analysis, out: Path) -> list[str]:
    """Every figure into `out`; returns their file names."""
    images = ["pareto.png"]
    pareto_plot(pareto_panels(analysis), out / images[-1])
    for parameter in analysis.swept:
        series = tradeoff_series(analysis.eligible, parameter)
        images.append(f"tradeoff_{parameter}.png")
        tradeoff_plot(series, HYPER_PARAMETERS[parameter].axis, axis_scale(parameter, series), out / images[-1])
    images.append("distance_vs_asr.png")
    distance_plot(distance_panels(analysis), out / images[-1])
    return images


def format_stat(stat: dict) -> str:
    """mean ± std over seeds (a record's {"mean", "std", "n"}); the mean alone for one seed."""
    if not stat["n"]:
        return "n/a"
    return f"{stat['mean']:.2f}" if stat["std"] is None else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _gap_text(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def summary_markdown(summary: dict) -> str:
    """summary.md, from the summary record alone."""
    lines = [f"# Robustness report: {', '.join(summary['runs'])}", "", *(f"- {note}" for note in summary["selection"]),
             "", f"Evaluated checkpoints: {summary['evaluated_checkpoints']}, {summary['configurations']} "
             "configurations. Checkpoints with an undefined test ASR (no test image classified correctly, so none to "
             f"fool): {summary['nan_asr_rows']}, left out of the Pareto fronts and the ASR statistics.", ""]
    lines += _front_markdown(summary) + [""]
    lines += _results_table_markdown(summary["results_table"]) + [""]
    lines += ["## Correlation of test ASR with the distance from the pretrained model", ""]
    for column, correlation in summary["correlations"].items():
        r = correlation["pearson_r"]
        lines.append(f"- {column}: Pearson r = {'n/a' if r is None else f'{r:+.3f}'} (n = {correlation['n']} "
                     "checkpoints)")
    lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in summary["images"]] + [""]
    lines += _configuration_markdown(summary)
    return "\n".join(lines) + "\n"


def _front_row(group: str, entry: dict) -> list[str]:
    val, test = entry["val"], entry["test"]
    return [group, entry["method"], entry["label"] or "—", str(len(entry["seeds"])), format_stat(val["clean_acc"]),
            format_stat(test["clean_acc"]), _gap_text(entry["gap"]["clean_acc"]), format_stat(val["asr"]),
            format_stat(test["asr"]), _gap_text(entry["gap"]["asr"]), format_stat(test["noise_asr"]),
            ", ".join(entry["trials"])]


def _gap_line(gaps: dict) -> str:
    clean, asr = gaps["clean_acc"], gaps["asr"]
    if not clean["n"]:
        return "No configuration has a validation split: no val → test gap to show."
    return (f"val → test gap over {clean['n']} configurations: clean accuracy {clean['mean']:+.2f} points on "
            f"average (largest |Δ| {clean['max_abs']:.2f}), ASR "
            + ("n/a" if asr["mean"] is None else f"{asr['mean']:+.2f} (largest |Δ| {asr['max_abs']:.2f})") + ".")


def _front_markdown(summary: dict) -> list[str]:
    body = [_front_row(group, entry) for group, front in summary["pareto"].items() for entry in front]
    return (["## Pareto set", "", "Non-dominated configurations by validation means (highest clean accuracy, lowest "
             "ASR), per dataset, by ascending validation ASR; Δ = test − validation. Noise ASR: uniform noise of the "
             "same budget, the attack's baseline.", ""]
            + markdown_table(["dataset", "method", "key hyper-parameters", "seeds", "val clean (%)",
                              "test clean (%)", "Δ clean", "val ASR (%)", "test ASR (%)", "Δ ASR",
                              "test noise ASR (%)", "trials"], body) + ["", _gap_line(summary["val_test_gap"])])


def _results_table_markdown(table: dict) -> list[str]:
    best = {(b["group"], b["metric"]): b["mean"] for b in table["best"]}
    groups = sorted({group for cells in table["rows"].values() for group in cells})
    body = []
    for label, cells in table["rows"].items():
        for metric, name in (("clean_acc", "test clean (%)"), ("asr", "test ASR (%)")):
            stats = [cells[group]["test"][metric] if group in cells else None for group in groups]
            texts = ["—" if stat is None else format_stat(stat) for stat in stats]
            texts = [f"**{text}**" if stat is not None and best.get((group, metric)) == stat["mean"] else text
                     for text, stat, group in zip(texts, stats, groups)]
            body.append([label if metric == "clean_acc" else "", name] + texts)
    configurations = [f"- {label} · {group}: {r['label'] or 'one configuration'} (n = {len(r['seeds'])}; selected "
                      f"on {r['selection_split']}: clean {r[r['selection_split']]['clean_acc']['mean']:.2f}%)"
                      for label, cells in table["rows"].items() for group, r in cells.items()]
    return (["## Results by method (Table 2/4 style)", "", "Each cell: the test numbers of the method's configuration "
             "with the best mean validation accuracy (the paper tunes on clean accuracy). Bold: the best value per "
             "column (highest clean accuracy, lowest ASR).", ""]
            + markdown_table(["method", "metric"] + groups, body)
            + ["", "Configuration behind each cell:", ""] + configurations)


def _configuration_markdown(summary: dict) -> list[str]:
    lines = ["## Configuration", ""]
    fixed = summary["fixed_configuration"]
    lines += markdown_table(["config key", "value (same in every evaluated checkpoint)"],
                            [[k, format_value(v)] for k, v in fixed.items()]) + [""]
    for run, settings in summary["sweeps"].items():
        lines += [f"Sweep settings of {run} ({SWEEP_RECORD}):", "", "```json", json.dumps(settings, indent=2),
                  "```", ""]
    trials = summary["trials"]
    if trials is not None:
        statuses = ", ".join(f"{status} {count}" for status, count in trials["by_status"].items())
        lines += [f"Trials: {trials['count']} ({statuses}); trial wall time in all "
                  f"{trials['wall_hours']:.2f} h.", ""]
    lines += ["### Attack", ""]
    attacks = summary["attacks"]
    if attacks:
        lines += markdown_table(list(attacks[0]), [[format_value(a[k]) for k in attacks[0]] for a in attacks]) + [""]
    lines += ["Budget and step are in the units column: `pixels` = [0, 1] images, `normalized` = after ImageNet "
              "normalisation; `attack_budget_pixels` is the budget as an L∞ bound on [0, 1] pixels.", "",
              "### Pretrained weights", ""]
    lines += markdown_table(["arch", "weights", "weights digest"],
                            [[format_value(w["arch"]), format_value(w["weights"]), f"`{w['weights_digest']}`"]
                             for w in summary["pretrained_weights"]]) + [""]
    lines += ["### Packages (the environment that wrote this report)", ""]
    lines += markdown_table(["package", "version"], [[k, v or "not installed"] for k, v in summary["packages"].items()])
    return lines


def front_digest(summary: dict) -> list[str]:
    """The Pareto set in a few console lines: what selection saw (validation) and what it reports (test)."""
    lines = ["Pareto set, chosen on validation means; test numbers for reporting (mean over seeds):"]
    for group, front in summary["pareto"].items():
        for entry in front:
            val, test = entry["val"], entry["test"]
            seen = ("selected on test" if entry["selection_split"] == "test" else
                    f"val clean {_mean_text(val['clean_acc'])} ASR {_mean_text(val['asr'])}")
            lines.append(f"  {group:<8} {entry['method']:<12} {entry['label'] or '—':<22} {seen} -> test clean "
                         f"{_mean_text(test['clean_acc'])} ASR {_mean_text(test['asr'])} (n = {len(entry['seeds'])})")
    return lines


def _mean_text(stat: dict) -> str:
    return "n/a" if stat["n"] == 0 else f"{stat['mean']:6.2f}%"
