"""Measured results beside the paper's published ones (`tuner.paper_results`), like for like: the same label,
dataset, backbone and training fraction, each row naming the attack preset, its units and its budget in
[0, 1] pixels. Measured values are test-split means over the seeds."""
import math
import statistics
from typing import Any

from tuner.paper_results import PAPER_RESULTS, row_label

PAPER_COMPARISON = "paper_comparison.md"
# metric -> (the robustness column measuring it, its heading)
COMPARED_METRICS = {
    "clean": ("test_clean_acc", "clean (%)"),
    "asr": ("test_asr", "ASR (%)"),
    "feature_loss": ("feature_distance", "feature loss: sum over 4 stages (the paper's text: averaged)"),
}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _matches(row: dict, published) -> bool:
    return (row_label(row) == published.label and row["dataset"] == published.dataset
            and row.get("arch") == published.arch
            and math.isclose(_number(row.get("fraction", 1.0)), published.fraction))


def _attack_of(row: dict) -> tuple:
    return (row.get("attack_preset"), row.get("attack_units"), row.get("attack_budget"),
            row.get("attack_budget_pixels"))


def paper_comparison(rows: list[dict], tables: tuple[str, ...]) -> list[dict]:
    """Per published result of `tables` and attack preset measured: the mean over the matching rows (the
    seeds), the published value and measured − published; one "not run" record where no row matches."""
    comparison = []
    for published in (result for result in PAPER_RESULTS if result.table in tables):
        matching = [row for row in rows if _matches(row, published)]
        attacks = sorted({_attack_of(row) for row in matching}, key=str) or [(None, None, None, None)]
        for attack in attacks:
            measured = [row for row in matching if _attack_of(row) == attack]
            comparison.append(_record(published, measured, attack))
    return comparison


def protocol(measured: list[dict]) -> str | None:
    """How the measured models came about: the authors' fixed settings trained on the full official training
    split, or a configuration chosen on validation (and then re-trained on train + validation, with --refit)."""
    if not measured:
        return None
    if any(row.get("refit") for row in measured):
        return "chosen on val, refit on train + val"
    if all(_number(row.get("val_fraction")) == 0 for row in measured):
        return "fixed published settings, no selection"
    return "chosen on val"


def _record(published, measured: list[dict], attack: tuple) -> dict:
    preset, units, budget, budget_pixels = attack
    record = {"table": published.table, "label": published.label, "dataset": published.dataset,
              "arch": published.arch, "fraction": published.fraction, "n": len(measured),
              "protocol": protocol(measured),
              "status": "measured" if measured else "not run", "attack_preset": preset, "attack_units": units,
              "attack_budget": budget, "attack_budget_pixels": budget_pixels}
    for metric, (column, _) in COMPARED_METRICS.items():
        value = getattr(published, metric)
        if value is None:
            continue
        values = [_number(row.get(column)) for row in measured if not math.isnan(_number(row.get(column)))]
        mean = statistics.fmean(values) if values else None
        record |= {f"{metric}_measured": mean, f"{metric}_published": value,
                   f"{metric}_difference": None if mean is None else mean - value}
    return record


def _cell(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.2f}"


def _attack_cells(record: dict) -> list[str]:
    if record["attack_preset"] is None:
        return ["—"] * 3
    return [str(record["attack_preset"]), f"{record['attack_budget']:g} {record['attack_units']}",
            "n/a" if record["attack_budget_pixels"] is None else f"{record['attack_budget_pixels']:.4f}"]


def paper_comparison_markdown(recipe: str, comparison: list[dict]) -> str:
    metrics = [m for m in COMPARED_METRICS if any(f"{m}_published" in record for record in comparison)]
    header = ["table", "label", "dataset", "arch", "fraction", "attack preset", "B (units)", "B in [0, 1] pixels",
              "n", "protocol"]
    header += [f"{COMPARED_METRICS[m][1]} {kind}" for m in metrics for kind in ("measured", "paper", "Δ")]
    body = []
    for record in comparison:
        cells = [record["table"], record["label"], record["dataset"], record["arch"], f"{record['fraction']:g}",
                 *_attack_cells(record), str(record["n"]), record["protocol"] or "—"]
        for metric in metrics:
            if f"{metric}_published" not in record:
                cells += ["—"] * 3
            elif record["n"] == 0:
                cells += ["not run", _cell(record[f"{metric}_published"]), "—"]
            else:
                difference = record[f"{metric}_difference"]
                cells += [_cell(record[f"{metric}_measured"]), _cell(record[f"{metric}_published"]),
                          "n/a" if difference is None else f"{difference:+.2f}"]
        body.append(cells)
    lines = [f"# Paper comparison: recipe {recipe}", "",
             "Measured: test-split means over the seeds of the checkpoints with the same label (method, plus `+DO` / "
             "`+SWA` for spatial dropout / SWA switched on against the method's default), dataset, backbone and "
             "training fraction, per attack preset. Δ = measured − published. The published numbers came from the "
             "authors' evaluation script, i.e. the `code` preset (B = 0.1 in normalised units ≈ 0.0229 in [0, 1] "
             "pixels); rows under another preset do not compare like for like. B in pixels: the L∞ bound on "
             "[0, 1] images (normalised budgets times the largest channel std). Table 7's \"Renofeation\" is "
             "DELTA-R + DO + SWA (`delta_r+DO+SWA`). Feature loss (Table 7, ResNet-18, `feature_distance`): the "
             "MSE between the model's and the pretrained model's features, sum over 4 stages (the paper's text: "
             "averaged), as the authors' code measures it: both in eval mode, on the training images with the "
             "training augmentation (a fixed draw). "
             "Protocol: \"fixed published settings, no selection\" = the "
             "authors' own values, trained on the full official training split; \"chosen on val, refit on train + "
             "val\" = the grid's configuration with the best validation accuracy, re-trained on the full training "
             "split with the same seeds (`--refit`), at the refit model's test numbers.", ""]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + table + ["| " + " | ".join(row) + " |" for row in body]) + "\n"
