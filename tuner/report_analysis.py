"""The report's analysis: robustness rows -> one summary record (what summary.json holds, what summary.md and
the figures render).

Selection and reporting are kept apart: a configuration's seeds are aggregated (mean ± sample std), the Pareto
set and each method's best configuration are chosen on the validation split, and the numbers shown for them
are the test split's. Runs with val_fraction = 0 can only be selected on test, and the record says so.
"""
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from tuner.chance_level import ChanceLevel, chance_level
from tuner.hyper_parameters import TRADEOFF_PARAMETERS, short_name
from tuner.pareto import pareto_front
from tuner.plots import method_order
from tuner.report_statistics import (
    Correlation,
    RateInterval,
    Statistic,
    correlation,
    is_missing,
    pooled_interval,
    statistic,
)
from tuner.run_dir import package_versions

SPLITS = ("val", "test")

SPLIT_METRICS = ("clean_acc", "asr", "noise_asr")
# Each rate's numerator column (`{split}_fooled`); the denominator of both is `{split}_clean_correct`: an ASR is
# P(fooled | classified correctly when clean).
RATE_SUCCESSES = {"asr": "fooled", "noise_asr": "noise_fooled"}

DISTANCES = {  # column -> axis label
    "weight_distance": "weight distance ‖θ − θ₀‖₂ (backbone)",
    "feature_distance": "feature distance: MSE to the pretrained model, sum over the distilled stages "
                        "(4 on ResNets; the paper's text: averaged)",
}

AGGREGATED = tuple(f"{split}_{metric}" for split in SPLITS for metric in SPLIT_METRICS) + tuple(DISTANCES)
# Columns of robustness.parquet that are not part of the trial's config; the rest is the config, so a new config
# key shows up in the report without a change here.
RESULT_PREFIXES = ("val_", "test_", "attack_")

PREFIXED_CONFIG_KEYS = frozenset({"val_fraction"})  # config keys that merely look like results

RESULT_COLUMNS = frozenset({"run", "trial_id", "selection_split", "stopped_early", "weights_digest",
                            "checkpoint_path", "evaluated_at", "refit", *DISTANCES})
# The one config value a refit model's differs in from the trial it re-trains: 0, train + validation images.
REFIT_CHANGED_COLUMN = "val_fraction"
# Config values that say where or how fast a trial ran, not what it learnt: never a "key hyper-parameter".
BOOKKEEPING_COLUMNS = frozenset({"data_root", "cache_dir", "num_workers", "eval_every", "checkpoint_every", "weights"})

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
    intervals: dict[str, RateInterval | None]  # "test_asr" ... -> confidence interval from the seeds' pooled counts
    rows: list[dict]  # one per seed: the checkpoints whose test numbers are shown (the refit models, if refit)
    selection_rows: list[dict] | None = None  # with a refit: the searched trials' rows selection compared
    fixed: bool = False  # a recipe part with the authors' published settings: nothing was selected

    @property
    def refit(self) -> bool:
        """Whether the test numbers are those of models re-trained on training + validation images (--refit)."""
        return self.selection_rows is not None

    @property
    def selection(self) -> str:
        """How this configuration came to be reported, in words."""
        if self.fixed:
            return "fixed published settings, no selection"
        if self.refit:
            return "selected on val, test numbers of the refit model (re-trained on train + val)"
        return f"selected on {self.selection_split}"

    def selected_on(self, metric: str) -> float:
        """The number selection compares: the metric's mean on the selection split."""
        return self.stats[f"{self.selection_split}_{metric}"].mean

    def gap(self, metric: str) -> float:
        """test − validation mean: how optimistic the number selection saw was."""
        return self.stats[f"test_{metric}"].mean - self.stats[f"val_{metric}"].mean


def as_number(value: Any) -> float:
    return math.nan if value is None else float(value)


def rate_interval(rows: list[dict], split: str, metric: str) -> RateInterval | None:
    """The interval of a rate (`asr`, `noise_asr`) of `split` from the rows' counts, pooled over the rows."""
    return pooled_interval((row.get(f"{split}_{RATE_SUCCESSES[metric]}"), row.get(f"{split}_clean_correct"))
                           for row in rows)


def rate_intervals(rows: list[dict]) -> dict[str, RateInterval | None]:
    return {f"{split}_{metric}": rate_interval(rows, split, metric) for split in SPLITS for metric in RATE_SUCCESSES}


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
    return ", ".join(f"{short_name(k)}={format_value(row.get(k))}" for k in keys)


def aggregate(groups: dict[str, list[dict]], columns: list[str], keys: dict[str, list[str]],
              fixed_runs: frozenset[str] = frozenset()) -> list[ConfigResult]:
    """The rows of each group collapsed to one result per configuration (every config value but the seed);
    `fixed_runs` ran the authors' published settings (recipe parts that select nothing)."""
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
                stats={column: statistic(row.get(column) for row in seeds) for column in AGGREGATED},
                intervals=rate_intervals(seeds), rows=seeds, fixed=first["run"] in fixed_runs,
            ))
    return results


def refit_identity(row: dict, columns: list[str]) -> str:
    """What a refit row shares with the searched trial it re-trains: every config value (the seed too) but
    val_fraction, and the attack it was scored with."""
    return repr([row.get(c) for c in columns if c != REFIT_CHANGED_COLUMN] + [attack_label(row)])


def with_refit_tests(results: list[ConfigResult], refit_rows: list[dict], columns: list[str]) -> list[ConfigResult]:
    """Each configuration that was re-trained after selection (--refit) shown at its refit models' test numbers
    and distances; its validation numbers, which chose it, stay those of the searched trials."""
    refits: dict[str, list[dict]] = {}
    for row in refit_rows:
        refits.setdefault(refit_identity(row, columns), []).append(row)
    merged = []
    for result in results:
        rows = [refit for row in result.rows for refit in refits.get(refit_identity(row, columns), [])]
        if not rows:
            merged.append(result)
            continue
        tested = {column: statistic(row.get(column) for row in rows) for column in AGGREGATED
                  if not column.startswith("val_")}
        merged.append(replace(
            result, trials=result.trials + [f"{row['run']}/{row['trial_id']}" for row in rows],
            stats=result.stats | tested,
            intervals={k: v for k, v in result.intervals.items() if k.startswith("val_")} | {
                k: v for k, v in rate_intervals(rows).items() if k.startswith("test_")},
            rows=rows, selection_rows=result.rows))
    return merged


def eligible(results: list[ConfigResult], include_stopped: bool) -> list[ConfigResult]:
    """Results that stand for their method: trials a scheduler stopped early only when asked for."""
    return [r for r in results if include_stopped or not r.stopped]


def below_minimum(result: ConfigResult, min_accuracy: float | None) -> bool:
    """Whether the configuration's selection-split mean accuracy misses the user's minimum (--min-accuracy)."""
    accuracy = result.selected_on("clean_acc")
    return min_accuracy is not None and not math.isnan(accuracy) and accuracy < min_accuracy


def front_of(results: list[ConfigResult], min_accuracy: float | None = None) -> list[ConfigResult]:
    """The Pareto-optimal configurations by their selection-split means, by ascending ASR, among those that reach
    the minimum accuracy."""
    kept = [r for r in results if not below_minimum(r, min_accuracy)]
    front = pareto_front([r.selected_on("clean_acc") for r in kept], [r.selected_on("asr") for r in kept])
    return [kept[i] for i in front]


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


def distance_correlations(results: list[ConfigResult]) -> dict[str, dict[str, Correlation]]:
    """Distance column -> {"all": pooled over every checkpoint, then one per method (per method and group when
    the report has several groups)}. Methods sit at different operating points, so a pooled coefficient can
    show a trend no single method has; Spearman's needs no linear relation."""
    several_groups = len({r.group for r in results}) > 1
    subsets: dict[str, list[dict]] = {"all": [row for r in results for row in r.rows]}
    for method in method_order([r.method for r in results]):
        for group in sorted({r.group for r in results if r.method == method}):
            key = f"{method} · {group}" if several_groups else method
            subsets[key] = [row for r in results if r.method == method and r.group == group for row in r.rows]
    return {column: {key: correlation([row.get(column) for row in rows], [row.get("test_asr") for row in rows])
                     for key, rows in subsets.items()} for column in DISTANCES}


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
    rows: list[dict]  # the searched trials' checkpoints
    refit_rows: list[dict]  # the refit models' (--refit), each also in the rows of the result it re-trains
    results: list[ConfigResult]  # every configuration, early-stopped ones included
    eligible: list[ConfigResult]  # those that stand for their method
    fronts: dict[str, list[ConfigResult]]  # group -> Pareto-optimal configurations, chosen on validation
    keys: dict[str, list[str]]  # method -> key hyper-parameters
    table: dict[str, dict[str, ConfigResult]]
    correlations: dict[str, dict[str, Correlation]]  # see distance_correlations
    swept: list[str]
    nan_asr_rows: int
    include_stopped: bool
    min_accuracy: float | None  # on the selection split; below it a configuration is left out of the fronts
    chance: dict[str, ChanceLevel | None]  # group -> its dataset's chance accuracy, None when unknown

    def below_minimum(self, result: ConfigResult) -> bool:
        return below_minimum(result, self.min_accuracy)


def analyse(rows: list[dict], include_stopped: bool = False, min_accuracy: float | None = None,
            fixed_runs: frozenset[str] = frozenset()) -> Analysis:
    """`rows`: robustness rows of the searched trials and, with --refit, of the refit models (`refit` true),
    which only ever supply the test numbers of the configurations they re-train."""
    refit_rows = [row for row in rows if row.get("refit")]
    rows = [row for row in rows if not row.get("refit")]
    columns = config_columns(rows)
    keys = key_hyper_parameters(rows, columns)
    groups = grouped(rows)
    results = with_refit_tests(aggregate(groups, columns, keys, fixed_runs), refit_rows, columns)
    chosen = eligible(results, include_stopped)
    return Analysis(
        rows=rows, refit_rows=refit_rows, results=results, eligible=chosen,
        fronts={group: front_of([r for r in chosen if r.group == group], min_accuracy) for group in groups},
        keys=keys, table=best_configurations(chosen), correlations=distance_correlations(chosen),
        swept=swept_parameters(chosen), nan_asr_rows=sum(is_missing(row.get("test_asr")) for row in rows),
        include_stopped=include_stopped, min_accuracy=min_accuracy,
        chance={group: chance_level(group_rows) for group, group_rows in groups.items()},
    )


def runs_where(results: list[ConfigResult], condition) -> list[str]:
    return sorted({r.trials[0].split("/")[0] for r in results if condition(r)})


def split_notes(analysis: Analysis) -> list[str]:
    """Which split chose what: validation, test (no validation split), or nothing (fixed published settings);
    and where the test numbers come from refit models."""
    notes = []
    fixed = runs_where(analysis.results, lambda r: r.fixed)
    if fixed:
        notes.append(f"**Fixed published settings, no selection** in {', '.join(fixed)}: each configuration is the "
                     "authors' own, trained on the full official training split (val_fraction = 0); the numbers are "
                     "its test-split numbers.")
    on_test = runs_where(analysis.results, lambda r: r.selection_split == "test" and not r.fixed)
    if on_test:
        notes.append(f"**Selection used the test split** in {', '.join(on_test)} (val_fraction = 0: no validation "
                     "split): the test numbers of the configurations chosen there are optimistically biased.")
    if len(fixed) + len(on_test) < len({row["run"] for row in analysis.rows}):
        fractions = sorted({format_value(r.config.get("val_fraction")) for r in analysis.results
                            if r.selection_split == "val"})
        notes.append(f"Selection: the Pareto set and each method's best configuration are chosen by validation "
                     f"means (a stratified split of the training images, val_fraction = {', '.join(fractions)}); "
                     "every number shown for them is a test-split mean. Validation numbers appear only to show the "
                     "val → test gap.")
    refit = [r for r in analysis.results if r.refit]
    if refit:
        notes.append(f"Refit (--refit): the {len(refit)} configuration(s) chosen on validation were re-trained on the "
                     "full training split (training + validation images) with the same seeds; their test numbers, "
                     "in the tables, fronts and figures, are those of the refit models (marked \"refit\").")
    return notes


def selection_notes(analysis: Analysis) -> list[str]:
    """What every number of the report was chosen on, and how many seeds stand behind it."""
    notes = split_notes(analysis)
    seeds = sorted({len(r.seeds) for r in analysis.results})
    if seeds == [1]:
        notes.append("Single seed: one run per configuration (n = 1), so no spread is shown; differences of a few "
                     "points may be noise: the interval beside each ASR is its counting uncertainty.")
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


def interval_record(interval: RateInterval | None) -> dict | None:
    return None if interval is None else asdict(interval)


def split_record(result: ConfigResult, split: str) -> dict:
    """A split's statistics, and each rate's confidence interval (`asr_ci`, `noise_asr_ci`)."""
    return {**{metric: stat_record(result.stats[f"{split}_{metric}"]) for metric in SPLIT_METRICS},
            **{f"{metric}_ci": interval_record(result.intervals[f"{split}_{metric}"]) for metric in RATE_SUCCESSES}}


def result_record(result: ConfigResult, keys: list[str]) -> dict:
    """One configuration for summary.json: its identity, per-split statistics and the val → test gap."""
    return {
        "group": result.group, "method": result.method, "label": result.label,
        "hyper_parameters": {k: result.config.get(k) for k in keys}, "trials": result.trials,
        "seeds": result.seeds, "stopped_early": result.stopped, "selection_split": result.selection_split,
        "selection": result.selection, "test_from_refit": result.refit,
        **{split: split_record(result, split) for split in SPLITS},
        "gap": {metric: result.gap(metric) for metric in ("clean_acc", "asr")},
    }


def minimum_record(analysis: Analysis) -> dict | None:
    """The --min-accuracy filter and the configurations it kept out of the fronts."""
    if analysis.min_accuracy is None:
        return None
    below = [r for r in analysis.eligible if analysis.below_minimum(r)]
    return {"percent": analysis.min_accuracy, "configurations": len(analysis.eligible),
            "below": [{"group": r.group, "method": r.method, "label": r.label, "trials": r.trials,
                       "selection_split": r.selection_split, "clean_acc": r.selected_on("clean_acc")} for r in below]}


def chance_record(chance: ChanceLevel | None) -> dict | None:
    return None if chance is None else {"num_classes": chance.num_classes, "accuracy": chance.accuracy,
                                        "source": chance.source}


def trials_summary(trials: list[dict]) -> dict | None:
    if not trials:
        return None
    return {
        "count": len(trials),
        "by_status": dict(sorted(Counter(str(t.get("status")) for t in trials).items())),
        "wall_hours": sum(as_number(t.get("wall_s")) for t in trials if not is_missing(t.get("wall_s"))) / 3600,
    }


def summary_record(analysis: Analysis, trials: list[dict], sweeps: dict[str, Any], images: list[str],
                   interactive: str | None = None) -> dict:
    """Everything the report says, as strict-JSON data: summary.json, and what summary.md is rendered from."""
    rows = analysis.rows
    columns = config_columns(rows)
    attack_columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c.startswith("attack_")]
    return json_safe({
        "runs": sorted({row["run"] for row in rows}),
        "evaluated_checkpoints": len(rows) + len(analysis.refit_rows),
        "refit_checkpoints": len(analysis.refit_rows),
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
        "correlations": {column: {"pooled": asdict(by_subset["all"]),
                                  "by_method": {k: asdict(c) for k, c in by_subset.items() if k != "all"}}
                         for column, by_subset in analysis.correlations.items()},
        "chance_accuracy": {group: chance_record(chance) for group, chance in analysis.chance.items()},
        "min_accuracy": minimum_record(analysis),
        "key_hyper_parameters": analysis.keys,
        "swept_parameters": analysis.swept,
        "fixed_configuration": {c: rows[0].get(c) for c in columns if len({repr(row.get(c)) for row in rows}) == 1},
        "attacks": distinct_records(rows, attack_columns),
        "pretrained_weights": distinct_records(rows, ["arch", "weights", "weights_digest"]),
        "trials": trials_summary(trials),
        "sweeps": sweeps,
        "packages": package_versions(),
        "images": images,
        "interactive": interactive,
    })
