"""The report's rendering: summary.md and the console digest, from the summary record alone."""
import json

from tuner.report_analysis import format_value
from tuner.run_dir import SWEEP_RECORD

INTERACTIVE_NOTE = ("hover a point for its full configuration, checkpoint and validation and test numbers; click a "
                    "method in the legend (or pick one in the menu) to filter; self-contained, works offline")
CI_NOTE = ("[low, high] after an ASR: its 95 % Wilson score interval from the attack counts (images fooled among "
           "those classified correctly when clean, pooled over the seeds): the counting uncertainty, not the "
           "seed-to-seed spread.")


def format_stat(stat: dict) -> str:
    """mean ± std over seeds (a record's {"mean", "std", "n"}); the mean alone for one seed (no spread)."""
    if not stat["n"]:
        return "n/a"
    if stat["n"] == 1 or stat["std"] is None:
        return f"{stat['mean']:.2f}"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def format_interval(interval: dict | None) -> str:
    return "" if interval is None else f" [{interval['low']:.1f}, {interval['high']:.1f}]"


def format_rate(split: dict, metric: str) -> str:
    """A rate's statistic and its confidence interval, from a result record's split."""
    return format_stat(split[metric]) + format_interval(split.get(f"{metric}_ci"))


def _gap_text(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def summary_markdown(summary: dict) -> str:
    """summary.md, from the summary record alone."""
    lines = [f"# Robustness report: {', '.join(summary['runs'])}", ""]
    if summary.get("interactive"):
        lines += [f"Interactive report: [{summary['interactive']}]({summary['interactive']}) ({INTERACTIVE_NOTE}).",
                  ""]
    lines += [*(f"- {note}" for note in summary["selection"]), "",
              f"Evaluated checkpoints: {summary['evaluated_checkpoints']}, {summary['configurations']} configurations. "
              "Checkpoints with an undefined test ASR (no test image classified correctly, so none to fool): "
              f"{summary['nan_asr_rows']}, left out of the Pareto fronts and the ASR statistics.", ""]
    lines += _front_markdown(summary) + [""] + _chance_markdown(summary["chance_accuracy"]) + [""]
    lines += _minimum_markdown(summary["min_accuracy"])
    lines += _results_table_markdown(summary["results_table"]) + [""]
    lines += _correlation_markdown(summary["correlations"]) + [""]
    lines += ["## Figures", ""] + [f"![{name}]({name})" for name in summary["images"]] + [""]
    lines += _configuration_markdown(summary)
    return "\n".join(lines) + "\n"


def _front_row(group: str, entry: dict) -> list[str]:
    val, test = entry["val"], entry["test"]
    return [group, entry["method"], entry["label"] or "—", str(len(entry["seeds"])), format_stat(val["clean_acc"]),
            format_stat(test["clean_acc"]), _gap_text(entry["gap"]["clean_acc"]), format_rate(val, "asr"),
            format_rate(test, "asr"), _gap_text(entry["gap"]["asr"]), format_rate(test, "noise_asr"),
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
             "same budget, the attack's baseline. " + CI_NOTE, ""]
            + markdown_table(["dataset", "method", "key hyper-parameters", "seeds", "val clean (%)",
                              "test clean (%)", "Δ clean", "val ASR (%)", "test ASR (%)", "Δ ASR",
                              "test noise ASR (%)", "trials"], body) + ["", _gap_line(summary["val_test_gap"])])


def _chance_markdown(chance: dict) -> list[str]:
    """Chance accuracy per group: the floor a clean accuracy has to be read against."""
    lines = ["Chance accuracy (100 / number of classes; the dotted line of the Pareto figures):", ""]
    for group, level in chance.items():
        lines.append(f"- {group}: unknown (no class count for this dataset)" if level is None else
                     f"- {group}: {level['accuracy']:.2f} % ({level['num_classes']} classes, from {level['source']})")
    return lines


def _minimum_markdown(minimum: dict | None) -> list[str]:
    if minimum is None:
        return []
    below = minimum["below"]
    lines = [f"Minimum accuracy (--min-accuracy): {minimum['percent']:g} % mean clean accuracy on the selection split. "
             f"{len(below)} of {minimum['configurations']} configurations fall below it: left out of the Pareto "
             "fronts, marked × in the figures" + (":" if below else "."), ""]
    lines += [f"- {entry['group']} · {entry['method']} {entry['label'] or ''}: {entry['clean_acc']:.2f} % on "
              f"{entry['selection_split']} ({', '.join(entry['trials'])})" for entry in below]
    return lines + ([""] if below else [])


def _results_cell(stat: dict, interval: str, bold: bool) -> str:
    """A results-table cell: the statistic (bold when best), its interval, and how many seeds stand behind it."""
    value = format_stat(stat)
    return f"{f'**{value}**' if bold else value}{interval} (n={stat['n']})"


def _results_table_markdown(table: dict) -> list[str]:
    best = {(b["group"], b["metric"]): b["mean"] for b in table["best"]}
    groups = sorted({group for cells in table["rows"].values() for group in cells})
    body = []
    for label, cells in table["rows"].items():
        for metric, name in (("clean_acc", "test clean (%)"), ("asr", "test ASR (%)")):
            texts = ["—" if group not in cells else _results_cell(
                cells[group]["test"][metric], format_interval(cells[group]["test"].get(f"{metric}_ci")),
                best.get((group, metric)) == cells[group]["test"][metric]["mean"]) for group in groups]
            body.append([label if metric == "clean_acc" else "", name] + texts)
    configurations = [f"- {label} · {group}: {r['label'] or 'one configuration'} (n = {len(r['seeds'])}; "
                      f"{_how_chosen(r)})" for label, cells in table["rows"].items() for group, r in cells.items()]
    return (["## Results by method (Table 2/4 style)", "", "Each cell: the test numbers of the method's configuration "
             "with the best mean validation accuracy (the paper tunes on clean accuracy), and n, its seeds. Bold: the "
             "best value per column (highest clean accuracy, lowest ASR). " + CI_NOTE, ""]
            + markdown_table(["method", "metric"] + groups, body)
            + ["", "Configuration behind each cell:", ""] + configurations)


def _how_chosen(entry: dict) -> str:
    """A configuration's provenance: what chose it, at which number, and whose test numbers are shown."""
    if entry["selection_split"] == "test":
        return entry["selection"]
    chosen = f"selected on val: clean {entry['val']['clean_acc']['mean']:.2f}%"
    return chosen + ("; test numbers of the refit model, re-trained on train + val" if entry["test_from_refit"] else "")


def _coefficient(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _correlation_markdown(correlations: dict) -> list[str]:
    """Per distance: every checkpoint pooled, then each method alone, rank-based (Spearman) beside Pearson."""
    body = []
    for column, record in correlations.items():
        subjects = {"all methods (pooled)": record["pooled"], **record["by_method"]}
        body += [[column, subject, str(c["n"]), _coefficient(c["spearman_rho"]), _coefficient(c["pearson_r"])]
                 for subject, c in subjects.items()]
    return (["## Correlation of test ASR with the distance from the pretrained model", "",
             "Methods sit at different operating points, so a pooled coefficient "
             "can show a trend no single method has: read the per-method rows. Spearman's ρ is rank-based (any "
             "monotonic relation, robust to outliers); Pearson's r measures a linear one. n/a: fewer than 3 "
             "checkpoints, or a constant side.", ""]
            + markdown_table(["distance", "checkpoints of", "n", "Spearman ρ", "Pearson r"], body))


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
            seen = (entry["selection"] if entry["selection_split"] == "test" else
                    f"val clean {_mean_text(val['clean_acc'])} ASR {_mean_text(val['asr'])}")
            seen += " (refit)" if entry["test_from_refit"] else ""
            lines.append(f"  {group:<8} {entry['method']:<12} {entry['label'] or '—':<22} {seen} -> test clean "
                         f"{_mean_text(test['clean_acc'])} ASR {_mean_text(test['asr'])} (n = {len(entry['seeds'])})")
    return lines


def _mean_text(stat: dict) -> str:
    return "n/a" if stat["n"] == 0 else f"{stat['mean']:6.2f}%"
