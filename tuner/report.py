"""`python -m tuner.report --run RUN_DIR [--run RUN_DIR2 ...] [--out DIR]`: figures and tables of a sweep.

Reads RUN_DIR/robustness.parquet (one row per attacked checkpoint), and trials.parquet and sweep.json where
present, and writes pareto.png, tradeoff_<param>.png, distance_vs_asr.png, summary.md and summary.json into
--out (default RUN_DIR/report of the first run). Works on a sweep still running: it reports the rows so far.
"""
import argparse
import importlib.metadata
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
from tuner.paper_results import PAPER_RESULTS, row_label
from tuner.pareto import pareto_front
from tuner.plots import (DistancePanel, ParetoPanel, Point, Spread, TradeoffSeries, distance_plot, method_order,
                         pareto_plot, tradeoff_plot)
from tuner.recipes import get_recipe
from tuner.tables import read_rows

ROBUSTNESS_TABLE = "robustness.parquet"
PAPER_COMPARISON = "paper_comparison.md"
# paper_comparison metric -> (the robustness column measuring it, its heading)
COMPARED_METRICS = {"clean": ("clean_acc", "clean (%)"), "asr": ("asr", "ASR (%)"),
                    "feature_loss": ("feature_distance", "feature loss")}
TRIALS_TABLE = "trials.parquet"
SWEEP_SETTINGS = "sweep.json"

# Every column of robustness.parquet that is not part of the trial's config; the rest is the config, so a new
# config key shows up in the report without a change here.
RESULT_COLUMNS = frozenset({
    "run", "trial_id", "clean_acc", "adv_acc", "asr", "clean_correct", "fooled", "test_images", "noise_asr",
    "noise_fooled", "weight_distance", "feature_distance", "weights_digest", "checkpoint_path", "evaluated_at",
})
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
DISTANCES = {  # column -> axis label
    "weight_distance": "weight distance ‖θ − θ₀‖₂ (backbone)",
    "feature_distance": "feature distance (distillation loss)",
}
PACKAGES = ("torch", "torchvision", "ray", "optuna", "advertorch", "pyarrow")
SPREAD_NOTE = ("mean ± half range ((max − min) / 2) over the seeds of the configuration with the best mean clean "
               "accuracy for that method and column (the paper tunes on clean accuracy); n = seeds")


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(message)


@dataclass(frozen=True)
class RunInputs:
    rows: list[dict]  # robustness rows of every run, each with a `run` column
    trials: list[dict]
    sweeps: dict[str, Any]  # run name -> its sweep.json


@dataclass(frozen=True)
class TableCell:
    mean: float
    spread: float
    n: int
    configuration: str


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
    return [c for c in columns if c not in RESULT_COLUMNS and not c.startswith("attack_")]


def attack_label(row: dict) -> str:
    return f"{row.get('attack_preset')} B={row.get('attack_budget')} {row.get('attack_units')}"


def group_of(row: dict, several_attacks: bool) -> str:
    """What a front or table column compares within: one dataset, and one attack when the report holds several
    (ASRs under different attacks are not comparable)."""
    return f"{row['dataset']} · {attack_label(row)}" if several_attacks else str(row["dataset"])


def grouped(rows: list[dict]) -> dict[str, list[int]]:
    several_attacks = len({attack_label(row) for row in rows}) > 1
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(group_of(row, several_attacks), []).append(index)
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


def front_of(rows: list[dict], indices: list[int]) -> list[int]:
    """Pareto-optimal rows among `indices` (indices into rows), by ascending ASR."""
    front = pareto_front([as_number(rows[i]["clean_acc"]) for i in indices],
                         [as_number(rows[i]["asr"]) for i in indices])
    return [indices[i] for i in front]


def spread_of(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (max(values) - min(values)) / 2


def table_cells(rows: list[dict], indices: list[int], identity: list[str],
                keys: list[str]) -> dict[str, TableCell | None]:
    """Clean accuracy and ASR of one method in one column: its best configuration by mean clean accuracy."""
    configurations: dict[str, list[dict]] = {}
    for i in indices:
        configurations.setdefault(repr([rows[i].get(c) for c in identity]), []).append(rows[i])
    best = max(configurations.values(), key=lambda runs: statistics.fmean(as_number(r["clean_acc"]) for r in runs))
    label = hyper_parameter_label(best[0], keys)
    cells: dict[str, TableCell | None] = {}
    for metric in ("clean_acc", "asr"):
        values = [as_number(r[metric]) for r in best if not is_missing(r[metric])]
        cells[metric] = TableCell(*spread_of(values), len(values), label) if values else None
    return cells


def results_table(rows: list[dict], groups: dict[str, list[int]], columns: list[str],
                  keys: dict[str, list[str]]) -> dict[str, dict[str, dict[str, TableCell | None]]]:
    """row label -> group -> metric -> cell, rows in the paper's method order (by backbone when it varies)."""
    several_archs = len({row.get("arch") for row in rows}) > 1
    identity = [c for c in columns if c != "seed"]
    table: dict[str, dict[str, dict[str, TableCell | None]]] = {}
    archs = sorted({str(row.get("arch")) for row in rows})
    for arch in archs:
        for method in method_order([row["method"] for row in rows]):
            label = f"{arch} {method}" if several_archs else method
            for group, indices in groups.items():
                own = [i for i in indices if rows[i]["method"] == method and str(rows[i].get("arch")) == arch]
                if own:
                    table.setdefault(label, {})[group] = table_cells(rows, own, identity, keys[method])
    return table


def best_per_column(table: dict[str, dict[str, dict[str, TableCell | None]]]) -> dict[tuple[str, str], float]:
    """(group, metric) -> the best mean: highest clean accuracy, lowest ASR."""
    best: dict[tuple[str, str], float] = {}
    for cells in table.values():
        for group, metrics in cells.items():
            for metric, cell in metrics.items():
                if cell is None:
                    continue
                better = max if metric == "clean_acc" else min
                best[(group, metric)] = better(best.get((group, metric), cell.mean), cell.mean)
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


def swept_parameters(rows: list[dict], groups: dict[str, list[int]]) -> list[str]:
    """Trade-off parameters that take at least two values within some method's rows of one group."""
    swept = []
    for parameter in TRADEOFF_PARAMETERS:
        for indices in groups.values():
            by_method: dict[str, set] = {}
            for i in indices:
                if not is_missing(rows[i].get(parameter)):
                    by_method.setdefault(rows[i]["method"], set()).add(float(rows[i][parameter]))
            if any(len(values) > 1 for values in by_method.values()):
                swept.append(parameter)
                break
    return swept


def spread_at(values_by_x: dict[float, list[float]], xs: list[float]) -> Spread:
    mean, low, high = [], [], []
    for x in xs:
        values = [v for v in values_by_x.get(x, []) if not math.isnan(v)]
        mean.append(statistics.fmean(values) if values else math.nan)
        low.append(min(values) if values else math.nan)
        high.append(max(values) if values else math.nan)
    return Spread(mean, low, high)


def tradeoff_series(rows: list[dict], groups: dict[str, list[int]], parameter: str) -> list[TradeoffSeries]:
    """A series per method and group in which `parameter` takes at least two values: the mean, min and max of
    clean accuracy and ASR over the rows (seeds) at each value."""
    series = []
    for group, indices in groups.items():
        for method in method_order([rows[i]["method"] for i in indices]):
            own = [rows[i] for i in indices if rows[i]["method"] == method and not is_missing(rows[i].get(parameter))]
            clean: dict[float, list[float]] = {}
            asr: dict[float, list[float]] = {}
            for row in own:
                clean.setdefault(float(row[parameter]), []).append(as_number(row["clean_acc"]))
                asr.setdefault(float(row[parameter]), []).append(as_number(row["asr"]))
            if len(clean) > 1:
                xs = sorted(clean)
                series.append(TradeoffSeries(method, group, xs, spread_at(clean, xs), spread_at(asr, xs)))
    return series


def axis_scale(parameter: str, series: list[TradeoffSeries]) -> str:
    """Log for the parameters swept over decades; symlog when such a sweep includes 0."""
    if not TRADEOFF_PARAMETERS[parameter][1]:
        return "linear"
    values = [x for s in series for x in s.x]
    if all(x > 0 for x in values):
        return "log"
    return "symlog" if any(x > 0 for x in values) else "linear"


def package_versions() -> dict[str, str]:
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
    groups: dict[str, list[int]]
    fronts: dict[str, list[int]]
    keys: dict[str, list[str]]  # method -> key hyper-parameters
    table: dict[str, dict[str, dict[str, TableCell | None]]]
    correlations: dict[str, tuple[float | None, int]]
    swept: list[str]
    nan_asr_rows: int


def analyse(rows: list[dict]) -> Analysis:
    columns = config_columns(rows)
    groups = grouped(rows)
    keys = key_hyper_parameters(rows, columns)
    return Analysis(
        rows=rows, groups=groups,
        fronts={group: front_of(rows, indices) for group, indices in groups.items()},
        keys=keys, table=results_table(rows, groups, columns, keys),
        correlations={c: pearson((r.get(c) for r in rows), (r["asr"] for r in rows)) for c in DISTANCES},
        swept=swept_parameters(rows, groups),
        nan_asr_rows=sum(is_missing(row["asr"]) for row in rows),
    )


def front_record(analysis: Analysis, group: str, index: int) -> dict:
    """One Pareto-optimal checkpoint for summary.json; `row` indexes the robustness rows of every run,
    concatenated in --run order."""
    row = analysis.rows[index]
    keys = analysis.keys[row["method"]]
    return {
        "group": group, "row": index, "run": row["run"], "trial_id": row["trial_id"], "method": row["method"],
        "hyper_parameters": {k: row.get(k) for k in keys}, "label": hyper_parameter_label(row, keys),
        "seed": row.get("seed"), "clean_acc": row["clean_acc"], "asr": row["asr"], "noise_asr": row.get("noise_asr"),
        "checkpoint_path": row.get("checkpoint_path"),
    }


def pareto_panels(analysis: Analysis) -> list[ParetoPanel]:
    rows, panels = analysis.rows, []
    for group, indices in analysis.groups.items():
        position = {row_index: i for i, row_index in enumerate(indices)}
        front = analysis.fronts[group]
        panels.append(ParetoPanel(
            title=f"{group}: {len(front)} Pareto-optimal of {len(indices)} checkpoints",
            points=[Point(rows[i]["method"], group, as_number(rows[i]["asr"]), as_number(rows[i]["clean_acc"]))
                    for i in indices],
            front=[position[i] for i in front],
            front_labels=front_point_labels(rows, front, analysis.keys),
        ))
    return panels


def distance_panels(analysis: Analysis) -> list[DistancePanel]:
    group_of_row = {i: group for group, indices in analysis.groups.items() for i in indices}
    panels = []
    for column, label in DISTANCES.items():
        points = [Point(row["method"], group_of_row[i], float(row[column]), float(row["asr"]))
                  for i, row in enumerate(analysis.rows) if not (is_missing(row.get(column)) or is_missing(row["asr"]))]
        panels.append(DistancePanel(label, points, analysis.correlations[column][0]))
    return panels


def draw_figures(analysis: Analysis, out: Path) -> list[str]:
    """Every figure into `out`; returns their file names."""
    images = ["pareto.png"]
    pareto_plot(pareto_panels(analysis), out / images[-1])
    for parameter in analysis.swept:
        series = tradeoff_series(analysis.rows, analysis.groups, parameter)
        images.append(f"tradeoff_{parameter}.png")
        tradeoff_plot(series, TRADEOFF_PARAMETERS[parameter][0], axis_scale(parameter, series), out / images[-1])
    images.append("distance_vs_asr.png")
    distance_plot(distance_panels(analysis), out / images[-1])
    return images


def front_point_labels(rows: list[dict], front: list[int], keys: dict[str, list[str]]) -> list[str]:
    """Key hyper-parameters (the colour tells the method; the method's name where nothing varies), with the seed
    where it tells apart front points that would otherwise read the same."""
    labels = [hyper_parameter_label(rows[i], keys[rows[i]["method"]]) or rows[i]["method"] for i in front]
    seeds: dict[tuple[str, str], set] = {}
    for label, i in zip(labels, front):
        seeds.setdefault((rows[i]["method"], label), set()).add(rows[i].get("seed"))
    return [f"{label}, seed={rows[i].get('seed')}" if len(seeds[(rows[i]["method"], label)]) > 1 else label
            for label, i in zip(labels, front)]


def _number(value: Any) -> str:
    return "n/a" if is_missing(value) else f"{float(value):.2f}"


def _cell_text(cell: TableCell | None, best: float | None) -> str:
    if cell is None:
        return "n/a"
    text = f"{cell.mean:.2f} ± {cell.spread:.2f}"
    return f"**{text}**" if best is not None and f"{cell.mean:.2f}" == f"{best:.2f}" else text


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def summary_markdown(analysis: Analysis, inputs: RunInputs, images: list[str], summary: dict) -> str:
    rows = analysis.rows
    runs = sorted({row["run"] for row in rows})
    lines = [f"# Robustness report: {', '.join(runs)}", "",
             f"Evaluated checkpoints: {len(rows)}. Checkpoints with an undefined ASR (no test image classified "
             f"correctly, so none to fool): {analysis.nan_asr_rows}, left out of the Pareto fronts and the ASR "
             "statistics.", ""]
    lines += ["## Pareto set", "", "Non-dominated checkpoints (highest clean accuracy, lowest ASR), per dataset, by "
              "ascending ASR. Noise ASR: uniform noise of the same budget, the attack's baseline.", ""]
    body = []
    for group, front in analysis.fronts.items():
        for index in front:
            row = rows[index]
            parameters = hyper_parameter_label(row, analysis.keys[row["method"]]) or "—"
            body.append([group, row["method"], parameters, str(row.get("seed")), _number(row["clean_acc"]),
                         _number(row["asr"]), _number(row.get("noise_asr")), f"{row['run']}/{row['trial_id']}"])
    lines += markdown_table(["dataset", "method", "key hyper-parameters", "seed", "clean (%)", "ASR (%)",
                             "noise ASR (%)", "trial"], body) + [""]
    lines += _results_table_markdown(analysis) + [""]
    lines += ["## Correlation of ASR with the distance from the pretrained model", ""]
    for column, (r, n) in analysis.correlations.items():
        lines.append(f"- {column}: Pearson r = {'n/a' if r is None else f'{r:+.3f}'} (n = {n})")
    lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += _configuration_markdown(inputs, summary)
    return "\n".join(lines) + "\n"


def _results_table_markdown(analysis: Analysis) -> list[str]:
    best = best_per_column(analysis.table)
    columns = list(analysis.groups)
    body = []
    for label, cells in analysis.table.items():
        for metric, name in (("clean_acc", "clean (%)"), ("asr", "ASR (%)")):
            texts = [_cell_text(cells[g][metric], best.get((g, metric))) if g in cells else "—" for g in columns]
            body.append([label if metric == "clean_acc" else "", name] + texts)
    configurations = [f"- {label} · {group}: {metrics['clean_acc'].configuration or 'one configuration'} "
                      f"(n = {metrics['clean_acc'].n})"
                      for label, cells in analysis.table.items() for group, metrics in cells.items()
                      if metrics["clean_acc"] is not None]
    return (["## Results by method (Table 2/4 style)", "", f"Each cell: {SPREAD_NOTE}. Bold: the best value per "
             "column (highest clean accuracy, lowest ASR).", ""]
            + markdown_table(["method", "metric"] + columns, body)
            + ["", "Configuration behind each cell:", ""] + configurations)


def _configuration_markdown(inputs: RunInputs, summary: dict) -> list[str]:
    lines = ["## Configuration", ""]
    fixed = summary["fixed_configuration"]
    lines += markdown_table(["config key", "value (same in every evaluated checkpoint)"],
                            [[k, format_value(v)] for k, v in fixed.items()]) + [""]
    for run, settings in inputs.sweeps.items():
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
              "normalisation.", "", "### Pretrained weights", ""]
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
        "nan_asr_rows": analysis.nan_asr_rows,
        "groups": list(analysis.groups),
        "pareto": {group: [front_record(analysis, group, i) for i in front]
                   for group, front in analysis.fronts.items()},
        "results_table": {
            "spread": SPREAD_NOTE,
            "rows": {label: {group: {metric: None if cell is None else vars(cell) for metric, cell in metrics.items()}
                             for group, metrics in cells.items()}
                     for label, cells in analysis.table.items()},
            "best": [{"group": g, "metric": m, "mean": v} for (g, m), v in best_per_column(analysis.table).items()],
        },
        "correlations": {c: {"pearson_r": r, "n": n} for c, (r, n) in analysis.correlations.items()},
        "key_hyper_parameters": analysis.keys,
        "swept_parameters": analysis.swept,
        "fixed_configuration": {c: rows[0].get(c) for c in columns
                                if len({repr(row.get(c)) for row in rows}) == 1},
        "attacks": distinct_records(rows, attack_columns),
        "pretrained_weights": distinct_records(rows, ["arch", "weights", "weights_digest"]),
        "trials": trials_summary(inputs.trials),
        "sweeps": inputs.sweeps,
        "packages": package_versions(),
        "images": images,
    }


def paper_comparison(rows: list[dict], tables: tuple[str, ...]) -> list[dict]:
    """Per published result of `tables`: the mean over the rows of the same label (method and dropout / SWA
    switches), dataset, backbone and training fraction (the seeds), the published value and measured − published;
    status "not run" (n = 0, measured None) where no row matches."""
    comparison = []
    for published in (result for result in PAPER_RESULTS if result.table in tables):
        matching = [row for row in rows if row_label(row) == published.label and row["dataset"] == published.dataset
                    and row.get("arch") == published.arch
                    and math.isclose(as_number(row.get("fraction", 1.0)), published.fraction)]
        record = {"table": published.table, "label": published.label, "dataset": published.dataset,
                  "arch": published.arch, "fraction": published.fraction, "n": len(matching),
                  "status": "measured" if matching else "not run"}
        for metric, (column, _) in COMPARED_METRICS.items():
            value = getattr(published, metric)
            if value is None:
                continue
            values = [as_number(row.get(column)) for row in matching if not is_missing(row.get(column))]
            measured = statistics.fmean(values) if values else None
            record |= {f"{metric}_measured": measured, f"{metric}_published": value,
                       f"{metric}_difference": None if measured is None else measured - value}
        comparison.append(record)
    return comparison


def paper_comparison_markdown(recipe: str, comparison: list[dict]) -> str:
    metrics = [m for m in COMPARED_METRICS if any(f"{m}_published" in record for record in comparison)]
    header = ["table", "label", "dataset", "arch", "fraction", "n"] + [
        f"{COMPARED_METRICS[m][1]} {kind}" for m in metrics for kind in ("measured", "paper", "Δ")]
    body = []
    for record in comparison:
        cells = [record["table"], record["label"], record["dataset"], record["arch"], f"{record['fraction']:g}",
                 str(record["n"])]
        for metric in metrics:
            if f"{metric}_published" not in record:
                cells += ["—"] * 3
            elif record["n"] == 0:
                cells += ["not run", _number(record[f"{metric}_published"]), "—"]
            else:
                difference = record[f"{metric}_difference"]
                cells += [_number(record[f"{metric}_measured"]), _number(record[f"{metric}_published"]),
                          "n/a" if difference is None else f"{difference:+.2f}"]
        body.append(cells)
    lines = [f"# Paper comparison: recipe {recipe}", "",
             "Measured: the mean over the seeds of the checkpoints with the same label (method, plus `+DO` / `+SWA` "
             "for spatial dropout / SWA switched on against the method's default), dataset, backbone and training "
             "fraction. Δ = measured − published. Table 7's \"Renofeation\" is DELTA-R + DO + SWA "
             "(`delta_r+DO+SWA`). Feature loss: the measured `feature_distance`.", ""]
    return "\n".join(lines + markdown_table(header, body)) + "\n"


def build_report(run_dirs: list[Path], out: Path | None = None, recipe: str | None = None) -> Path:
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
    analysis = analyse(inputs.rows)
    images = draw_figures(analysis, out)
    summary = summary_record(analysis, inputs, images)
    if tables:
        summary["paper_comparison"] = paper_comparison(inputs.rows, tables)
        (out / PAPER_COMPARISON).write_text(paper_comparison_markdown(recipe, summary["paper_comparison"]))
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    (out / "summary.md").write_text(summary_markdown(analysis, inputs, images, summary))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _OneLineErrorParser(prog="python -m tuner.report", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, type=Path,
                        help="a sweep's run directory (holding robustness.parquet); repeat to combine runs")
    parser.add_argument("--out", type=Path, help="where to write the report (default: RUN_DIR/report of the first run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = build_report(args.run, args.out)
    print(f"report: {out / 'summary.md'}")


if __name__ == "__main__":
    run_cli(main)
