"""`python -m tuner.report --run RUN_DIR [--run RUN_DIR2 ...] [--out DIR]`: figures and tables of a sweep.

Reads RUN_DIR/robustness.parquet (one row per attacked checkpoint), and trials.parquet and sweep.json where
present, and writes pareto.png, tradeoff_<param>.png, distance_vs_asr.png, summary.md and summary.json into
--out (default RUN_DIR/report of the first run). Works on a sweep still running: it reports the rows so far.

Selection and reporting are kept apart: a configuration's seeds are aggregated (mean ± sample std), the Pareto
set and each method's best configuration are chosen on the validation split, and the numbers shown for them
are the test split's. Runs with val_fraction = 0 can only be selected on test, and the report says so.
"""
import argparse
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from trainables.errors import UserError
from tuner.cli import run_cli
from tuner.paper_comparison import PAPER_COMPARISON, paper_comparison, paper_comparison_markdown
from tuner.pareto import pareto_front
from tuner.plots import (DistancePanel, ParetoPanel, Point, Spread, TradeoffSeries, distance_plot, method_order,
                         pareto_plot, tradeoff_plot)
from tuner.recipes import get_recipe
from tuner.tables import read_rows

ROBUSTNESS_TABLE = "robustness.parquet"
TRIALS_TABLE = "trials.parquet"
SWEEP_SETTINGS = "sweep.json"
SPLITS = ("val", "test")
SPLIT_METRICS = ("clean_acc", "asr", "noise_asr")
DISTANCES = {  # column -> axis label
    "weight_distance": "weight distance ‖θ − θ₀‖₂ (backbone)",
    "feature_distance": "feature distance Σ_layers MSE to the pretrained model",
}
AGGREGATED = tuple(f"{split}_{metric}" for split in SPLITS for metric in SPLIT_METRICS) + tuple(DISTANCES)
# Columns of robustness.parquet that are not part of the trial's config; the rest is the config, so a new config
# key shows up in the report without a change here.
RESULT_PREFIXES = ("val_", "test_", "attack_")
PREFIXED_CONFIG_KEYS = frozenset({"val_fraction"})  # config keys that merely look like results
RESULT_COLUMNS = frozenset({"run", "trial_id", "selection_split", "stopped_early", "weights_digest",
                            "checkpoint_path", "evaluated_at", *DISTANCES})
# Config values that say where or how fast a trial ran, not what it learnt: never a "key hyper-parameter".
BOOKKEEPING_COLUMNS = frozenset({"data_root", "cache_dir", "num_workers", "eval_every", "checkpoint_every", "weights"})
SHORT_NAMES = {
    "lambda_feat": "λ_feat", "lambda_l2sp": "λ_l2sp", "weight_decay": "wd", "dropout_p": "p_drop",
    "dropout": "DO", "swa": "SWA", "fraction": "frac", "momentum": "mom", "batch_size": "bs",
}
TRADEOFF_PARAMETERS = {  # swept parameter -> (axis label, log-scaled)
    "lambda_feat": ("λ_feat (feature-distillation weight)", True),
    "lambda_l2sp": ("λ_l2sp (L2-SP weight)", True),
    "lr": ("learning rate", True),
    "dropout_p": ("spatial-dropout rate p", False),
    "weight_decay": ("weight decay", True),
    "swa_every": ("SWA averaging interval (iterations)", False),
    "fraction": ("fraction of the training data", False),
}
PACKAGES = ("torch", "torchvision", "ray", "optuna", "advertorch", "pyarrow")


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(message)


@dataclass(frozen=True)
class RunInputs:
    rows: list[dict]  # robustness rows of every run, each with a `run` column
    trials: list[dict]
    sweeps: dict[str, Any]  # run name -> its sweep.json


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation over a configuration's seeds (std NaN for one seed)."""

    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class ConfigResult:
    """One configuration of one group (dataset, and attack when a report mixes attacks), over its seeds."""

    group: str
    method: str
    label: str  # its key hyper-parameters
    config: dict  # the config values its seeds share
    seeds: list
    trials: list[str]  # run/trial_id of each seed
    stopped: bool  # a scheduler stopped at least one seed early: not the method's result
    selection_split: str  # "val", or "test" when the sweep had no validation split
    stats: dict[str, Statistic]
    rows: list[dict]  # one per seed

    def selected_on(self, metric: str) -> float:
        """The number selection compares: the metric's mean on the selection split."""
        return self.stats[f"{self.selection_split}_{metric}"].mean

    def gap(self, metric: str) -> float:
        """test − validation mean: how optimistic the number selection saw was."""
        return self.stats[f"test_{metric}"].mean - self.stats[f"val_{metric}"].mean


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_number(value: Any) -> float:
    return math.nan if value is None else float(value)


def load_inputs(run_dirs: Sequence[Path]) -> RunInputs:
    rows, trials, sweeps = [], [], {}
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise UserError(f"run directory {run_dir} does not exist")
        run_rows = read_rows(run_dir / ROBUSTNESS_TABLE)
        if not run_rows:
            raise UserError(f"{run_dir} has no evaluated checkpoints ({ROBUSTNESS_TABLE}); "
                            f"run python -m tuner.attack --run {run_dir} first")
        rows += [{**row, "run": run_dir.name} for row in run_rows]
        trials += [{**row, "run": run_dir.name} for row in read_rows(run_dir / TRIALS_TABLE)]
        settings = run_dir / SWEEP_SETTINGS
        if settings.is_file():
            try:
                sweeps[run_dir.name] = json.loads(settings.read_text())
            except json.JSONDecodeError as error:
                raise UserError(f"{settings} is not valid JSON: {error}") from None
    return RunInputs(rows, trials, sweeps)


def config_columns(rows: list[dict]) -> list[str]:
    columns = dict.fromkeys(key for row in rows for key in row)
    return [c for c in columns if c in PREFIXED_CONFIG_KEYS
            or (c not in RESULT_COLUMNS and not c.startswith(RESULT_PREFIXES))]


def attack_label(row: dict) -> str:
    return f"{row.get('attack_preset')} B={row.get('attack_budget')} {row.get('attack_units')}"


def grouped(rows: list[dict]) -> dict[str, list[dict]]:
    """What a front or table column compares within: one dataset, and one attack when the report holds several
    (ASRs under different attacks are not comparable)."""
    several_attacks = len({attack_label(row) for row in rows}) > 1
    groups: dict[str, list[dict]] = {}
    for row in rows:
        group = f"{row['dataset']} · {attack_label(row)}" if several_attacks else str(row["dataset"])
        groups.setdefault(group, []).append(row)
    return dict(sorted(groups.items()))


def key_hyper_parameters(rows: list[dict], columns: list[str]) -> dict[str, list[str]]:
    """Per method, the config columns that vary among its rows (seed and bookkeeping aside)."""
    candidates = [c for c in columns if c not in BOOKKEEPING_COLUMNS | {"method", "dataset", "seed"}]
    varying = {}
    for method in {row["method"] for row in rows}:
        own = [row for row in rows if row["method"] == method]
        varying[method] = [c for c in candidates if len({repr(row.get(c)) for row in own}) > 1]
    return varying


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def hyper_parameter_label(row: dict, keys: list[str]) -> str:
    return ", ".join(f"{SHORT_NAMES.get(k, k)}={format_value(row.get(k))}" for k in keys)


def statistic(values: Iterable[Any]) -> Statistic:
    present = [float(v) for v in values if not is_missing(v)]
    if not present:
        return Statistic(math.nan, math.nan, 0)
    return Statistic(statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else math.nan,
                     len(present))


def aggregate(groups: dict[str, list[dict]], columns: list[str], keys: dict[str, list[str]]) -> list[ConfigResult]:
    """The rows of each group collapsed to one result per configuration (every config value but the seed)."""
    identity = [c for c in columns if c != "seed"]
    results = []
    for group, rows in groups.items():
        configurations: dict[str, list[dict]] = {}
        for row in rows:
            configurations.setdefault(repr([row.get(c) for c in identity]), []).append(row)
        for seeds in configurations.values():
            first = seeds[0]
            results.append(ConfigResult(
                group=group, method=first["method"], label=hyper_parameter_label(first, keys[first["method"]]),
                config={c: first.get(c) for c in identity}, seeds=[row.get("seed") for row in seeds],
                trials=[f"{row['run']}/{row['trial_id']}" for row in seeds],
                stopped=any(bool(row.get("stopped_early")) for row in seeds),
                selection_split=str(first.get("selection_split") or "test"),
                stats={column: statistic(row.get(column) for row in seeds) for column in AGGREGATED}, rows=seeds,
            ))
    return results


def eligible(results: list[ConfigResult], include_stopped: bool) -> list[ConfigResult]:
    """Results that stand for their method: trials a scheduler stopped early only when asked for."""
    return [r for r in results if include_stopped or not r.stopped]


def front_of(results: list[ConfigResult]) -> list[ConfigResult]:
    """The Pareto-optimal configurations by their selection-split means, by ascending ASR."""
    front = pareto_front([r.selected_on("clean_acc") for r in results], [r.selected_on("asr") for r in results])
    return [results[i] for i in front]


def best_configurations(results: list[ConfigResult]) -> dict[str, dict[str, ConfigResult]]:
    """row label -> group -> the method's configuration with the best mean selection-split accuracy, rows in
    the paper's method order (by backbone when it varies)."""
    several_archs = len({str(r.config.get("arch")) for r in results}) > 1
    table: dict[str, dict[str, ConfigResult]] = {}
    for arch in sorted({str(r.config.get("arch")) for r in results}):
        for method in method_order([r.method for r in results]):
            label = f"{arch} {method}" if several_archs else method
            for group in sorted({r.group for r in results}):
                own = [r for r in results if r.method == method and str(r.config.get("arch")) == arch
                       and r.group == group and not math.isnan(r.selected_on("clean_acc"))]
                if own:
                    table.setdefault(label, {})[group] = max(own, key=lambda r: r.selected_on("clean_acc"))
    return table


def best_per_column(table: dict[str, dict[str, ConfigResult]]) -> dict[tuple[str, str], float]:
    """(group, metric) -> the best test mean among the table's cells: highest clean accuracy, lowest ASR."""
    best: dict[tuple[str, str], float] = {}
    for cells in table.values():
        for group, result in cells.items():
            for metric, better in (("clean_acc", max), ("asr", min)):
                value = result.stats[f"test_{metric}"].mean
                if not math.isnan(value):
                    best[(group, metric)] = better(best.get((group, metric), value), value)
    return best


def pearson(xs: Iterable[Any], ys: Iterable[Any]) -> tuple[float | None, int]:
    """Pearson r over the pairs where both values are present; None below 3 pairs or with a constant side."""
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if not (is_missing(x) or is_missing(y))]
    if len(pairs) < 3:
        return None, len(pairs)
    try:
        return statistics.correlation([x for x, _ in pairs], [y for _, y in pairs]), len(pairs)
    except statistics.StatisticsError:
        return None, len(pairs)


def swept_parameters(results: list[ConfigResult]) -> list[str]:
    """Trade-off parameters that take at least two values within some method's results of one group."""
    swept = []
    for parameter in TRADEOFF_PARAMETERS:
        values: dict[tuple[str, str], set] = {}
        for r in results:
            if not is_missing(r.config.get(parameter)):
                values.setdefault((r.group, r.method), set()).add(float(r.config[parameter]))
        if any(len(v) > 1 for v in values.values()):
            swept.append(parameter)
    return swept


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
    if not TRADEOFF_PARAMETERS[parameter][1]:
        return "linear"
    values = [x for s in series for x in s.x]
    if all(x > 0 for x in values):
        return "log"
    return "symlog" if any(x > 0 for x in values) else "linear"


def package_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def distinct_records(rows: list[dict], columns: list[str]) -> list[dict]:
    records = {repr([row.get(c) for c in columns]): {c: row.get(c) for c in columns} for row in rows}
    return list(records.values())


def json_safe(value: Any) -> Any:
    """NaN becomes null so summary.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class Analysis:
    rows: list[dict]
    results: list[ConfigResult]  # every configuration, early-stopped ones included
    eligible: list[ConfigResult]  # those that stand for their method
    fronts: dict[str, list[ConfigResult]]  # group -> Pareto-optimal configurations, chosen on validation
    keys: dict[str, list[str]]  # method -> key hyper-parameters
    table: dict[str, dict[str, ConfigResult]]
    correlations: dict[str, tuple[float | None, int]]
    swept: list[str]
    nan_asr_rows: int
    include_stopped: bool


def analyse(rows: list[dict], include_stopped: bool = False) -> Analysis:
    columns = config_columns(rows)
    keys = key_hyper_parameters(rows, columns)
    results = aggregate(grouped(rows), columns, keys)
    chosen = eligible(results, include_stopped)
    checkpoints = [row for result in chosen for row in result.rows]
    return Analysis(
        rows=rows, results=results, eligible=chosen,
        fronts={group: front_of([r for r in chosen if r.group == group]) for group in sorted({r.group for r in results})},
        keys=keys, table=best_configurations(chosen),
        correlations={c: pearson((r.get(c) for r in checkpoints), (r.get("test_asr") for r in checkpoints))
                      for c in DISTANCES},
        swept=swept_parameters(chosen),
        nan_asr_rows=sum(is_missing(row.get("test_asr")) for row in rows),
        include_stopped=include_stopped,
    )


def selection_notes(analysis: Analysis) -> list[str]:
    """What every number of the report was chosen on, and how many seeds stand behind it."""
    notes = []
    on_test = sorted({r.trials[0].split("/")[0] for r in analysis.results if r.selection_split == "test"})
    if on_test:
        notes.append(f"**Selection used the test split** in {', '.join(on_test)} (val_fraction = 0: no validation "
                     "split): the test numbers of the configurations chosen there are optimistically biased.")
    if len(on_test) < len({row["run"] for row in analysis.rows}):
        fractions = sorted({format_value(r.config.get("val_fraction")) for r in analysis.results
                            if r.selection_split == "val"})
        notes.append(f"Selection: the Pareto set and each method's best configuration are chosen by validation "
                     f"means (a stratified split of the training images, val_fraction = {', '.join(fractions)}); "
                     "every number shown for them is a test-split mean. Validation numbers appear only to show the "
                     "val → test gap.")
    seeds = sorted({len(r.seeds) for r in analysis.results})
    if seeds == [1]:
        notes.append("Single seed: one run per configuration, so no spread is shown; differences of a few points "
                     "may be noise (the counts behind each rate are in robustness.parquet).")
    else:
        notes.append(f"Seeds per configuration: {', '.join(map(str, seeds))}. Each number is the mean over the "
                     "seeds ± their sample standard deviation; fronts and best configurations use the means.")
    stopped = sum(r.stopped for r in analysis.results)
    if stopped:
        notes.append(f"{stopped} configuration(s) include trials a scheduler stopped early: "
                     + ("counted as results (--include-stopped)." if analysis.include_stopped else
                        "drawn hollow, left out of the fronts, tables and statistics."))
    return notes


def gap_summary(results: list[ConfigResult]) -> dict:
    """test − validation over every configuration with both splits."""
    summary = {}
    for metric in ("clean_acc", "asr"):
        gaps = [r.gap(metric) for r in results if r.selection_split == "val" and not math.isnan(r.gap(metric))]
        summary[metric] = {"mean": statistics.fmean(gaps) if gaps else None,
                           "max_abs": max(map(abs, gaps)) if gaps else None, "n": len(gaps)}
    return summary


def stat_record(stat: Statistic) -> dict:
    return {"mean": stat.mean, "std": stat.std, "n": stat.n}


def result_record(result: ConfigResult, keys: list[str]) -> dict:
    """One configuration for summary.json: its identity, per-split statistics and the val → test gap."""
    return {
        "group": result.group, "method": result.method, "label": result.label,
        "hyper_parameters": {k: result.config.get(k) for k in keys}, "trials": result.trials,
        "seeds": result.seeds, "stopped_early": result.stopped, "selection_split": result.selection_split,
        **{split: {metric: stat_record(result.stats[f"{split}_{metric}"]) for metric in SPLIT_METRICS}
           for split in SPLITS},
        "gap": {metric: result.gap(metric) for metric in ("clean_acc", "asr")},
    }


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


def draw_figures(analysis: Analysis, out: Path) -> list[str]:
    """Every figure into `out`; returns their file names."""
    images = ["pareto.png"]
    pareto_plot(pareto_panels(analysis), out / images[-1])
    for parameter in analysis.swept:
        series = tradeoff_series(analysis.eligible, parameter)
        images.append(f"tradeoff_{parameter}.png")
        tradeoff_plot(series, TRADEOFF_PARAMETERS[parameter][0], axis_scale(parameter, series), out / images[-1])
    images.append("distance_vs_asr.png")
    distance_plot(distance_panels(analysis), out / images[-1])
    return images


def format_stat(stat: Statistic) -> str:
    """mean ± std over seeds; the mean alone for one seed."""
    if stat.n == 0:
        return "n/a"
    return f"{stat.mean:.2f}" if math.isnan(stat.std) else f"{stat.mean:.2f} ± {stat.std:.2f}"


def _gap_text(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2f}"


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def summary_markdown(analysis: Analysis, summary: dict) -> str:
    runs = sorted({row["run"] for row in analysis.rows})
    lines = [f"# Robustness report: {', '.join(runs)}", "", *(f"- {note}" for note in selection_notes(analysis)), "",
             f"Evaluated checkpoints: {len(analysis.rows)}, {len(analysis.results)} configurations. Checkpoints with "
             f"an undefined test ASR (no test image classified correctly, so none to fool): {analysis.nan_asr_rows},"
             " left out of the Pareto fronts and the ASR statistics.", ""]
    lines += _front_markdown(analysis, summary["val_test_gap"]) + [""]
    lines += _results_table_markdown(analysis) + [""]
    lines += ["## Correlation of test ASR with the distance from the pretrained model", ""]
    for column, (r, n) in analysis.correlations.items():
        lines.append(f"- {column}: Pearson r = {'n/a' if r is None else f'{r:+.3f}'} (n = {n} checkpoints)")
    lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in summary["images"]] + [""]
    lines += _configuration_markdown(summary)
    return "\n".join(lines) + "\n"


def _front_markdown(analysis: Analysis, gaps: dict) -> list[str]:
    body = []
    for group, front in analysis.fronts.items():
        for r in front:
            stats = r.stats
            body.append([group, r.method, r.label or "—", str(len(r.seeds)), format_stat(stats["val_clean_acc"]),
                         format_stat(stats["test_clean_acc"]), _gap_text(r.gap("clean_acc")),
                         format_stat(stats["val_asr"]), format_stat(stats["test_asr"]), _gap_text(r.gap("asr")),
                         format_stat(stats["test_noise_asr"]), ", ".join(r.trials)])
    clean, asr = gaps["clean_acc"], gaps["asr"]
    gap_line = ("No configuration has a validation split: no val → test gap to show." if not clean["n"] else
                f"val → test gap over {clean['n']} configurations: clean accuracy {clean['mean']:+.2f} points on "
                f"average (largest |Δ| {clean['max_abs']:.2f}), ASR "
                + ("n/a" if asr["mean"] is None else f"{asr['mean']:+.2f} (largest |Δ| {asr['max_abs']:.2f})") + ".")
    return (["## Pareto set", "", "Non-dominated configurations by validation means (highest clean accuracy, lowest "
             "ASR), per dataset, by ascending validation ASR; Δ = test − validation. Noise ASR: uniform noise of the "
             "same budget, the attack's baseline.", ""]
            + markdown_table(["dataset", "method", "key hyper-parameters", "seeds", "val clean (%)",
                              "test clean (%)", "Δ clean", "val ASR (%)", "test ASR (%)", "Δ ASR",
                              "test noise ASR (%)", "trials"], body) + ["", gap_line])


def _results_table_markdown(analysis: Analysis) -> list[str]:
    best = best_per_column(analysis.table)
    groups = sorted({group for cells in analysis.table.values() for group in cells})
    body = []
    for label, cells in analysis.table.items():
        for metric, name in (("clean_acc", "test clean (%)"), ("asr", "test ASR (%)")):
            texts = []
            for group in groups:
                stat = cells[group].stats[f"test_{metric}"] if group in cells else None
                text = "—" if stat is None else format_stat(stat)
                bold = stat is not None and best.get((group, metric)) == stat.mean
                texts.append(f"**{text}**" if bold else text)
            body.append([label if metric == "clean_acc" else "", name] + texts)
    configurations = [f"- {label} · {group}: {r.label or 'one configuration'} (n = {len(r.seeds)}; selected on "
                      f"{r.selection_split}: clean {r.selected_on('clean_acc'):.2f}%)"
                      for label, cells in analysis.table.items() for group, r in cells.items()]
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
        lines += [f"Sweep settings of {run} ({SWEEP_SETTINGS}):", "", "```json", json.dumps(settings, indent=2),
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
    lines += markdown_table(["package", "version"], [[k, v] for k, v in summary["packages"].items()])
    return lines


def trials_summary(trials: list[dict]) -> dict | None:
    if not trials:
        return None
    return {
        "count": len(trials),
        "by_status": dict(sorted(Counter(str(t.get("status")) for t in trials).items())),
        "wall_hours": sum(as_number(t.get("wall_s")) for t in trials if not is_missing(t.get("wall_s"))) / 3600,
    }


def summary_record(analysis: Analysis, inputs: RunInputs, images: list[str]) -> dict:
    rows = analysis.rows
    columns = config_columns(rows)
    attack_columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c.startswith("attack_")]
    return {
        "runs": sorted({row["run"] for row in rows}),
        "evaluated_checkpoints": len(rows),
        "configurations": len(analysis.results),
        "nan_asr_rows": analysis.nan_asr_rows,
        "selection": selection_notes(analysis),
        "groups": list(analysis.fronts),
        "pareto": {group: [result_record(r, analysis.keys[r.method]) for r in front]
                   for group, front in analysis.fronts.items()},
        "val_test_gap": gap_summary(analysis.eligible),
        "results_table": {
            "rows": {label: {group: result_record(r, analysis.keys[r.method]) for group, r in cells.items()}
                     for label, cells in analysis.table.items()},
            "best": [{"group": g, "metric": m, "mean": v} for (g, m), v in best_per_column(analysis.table).items()],
        },
        "correlations": {c: {"pearson_r": r, "n": n} for c, (r, n) in analysis.correlations.items()},
        "key_hyper_parameters": analysis.keys,
        "swept_parameters": analysis.swept,
        "fixed_configuration": {c: rows[0].get(c) for c in columns if len({repr(row.get(c)) for row in rows}) == 1},
        "attacks": distinct_records(rows, attack_columns),
        "pretrained_weights": distinct_records(rows, ["arch", "weights", "weights_digest"]),
        "trials": trials_summary(inputs.trials),
        "sweeps": inputs.sweeps,
        "packages": package_versions(),
        "images": images,
    }


def build_report(run_dirs: list[Path], out: Path | None = None, recipe: str | None = None,
                 include_stopped: bool = False) -> Path:
    """Write the report of the runs' robustness rows into `out` (default: first run's report/); returns it.
    With a recipe (`recipe`, else the first sweep.json naming one) whose tables have published numbers, also
    paper_comparison.md."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    run_dirs = [Path(d).expanduser().resolve() for d in run_dirs]
    inputs = load_inputs(run_dirs)
    recipe = recipe or next((s["recipe"] for s in inputs.sweeps.values() if isinstance(s, dict) and s.get("recipe")),
                            None)
    tables = get_recipe(recipe).tables if recipe else ()
    out = Path(out).expanduser().resolve() if out is not None else run_dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse(inputs.rows, include_stopped)
    images = draw_figures(analysis, out)
    summary = summary_record(analysis, inputs, images)
    if tables:
        summary["paper_comparison"] = paper_comparison(
            [row for r in analysis.eligible for row in r.rows], tables)
        (out / PAPER_COMPARISON).write_text(paper_comparison_markdown(recipe, summary["paper_comparison"]))
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    (out / "summary.md").write_text(summary_markdown(analysis, summary))
    return out


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _OneLineErrorParser(prog="python -m tuner.report", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, type=Path,
                        help="a sweep's run directory (holding robustness.parquet); repeat to combine runs")
    parser.add_argument("--out", type=Path, help="where to write the report (default: RUN_DIR/report of the first run)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="count trials a scheduler stopped early as results (fronts, tables, statistics)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = build_report(args.run, args.out, include_stopped=args.include_stopped)
    print("\n".join(front_digest(json.loads((out / "summary.json").read_text()))))
    print(f"report: {out / 'summary.md'}")


if __name__ == "__main__":
    run_cli(main)
