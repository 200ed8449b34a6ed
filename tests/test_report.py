"""`tuner.report`: figures, summary tables and the command line on a synthetic sweep."""
import json
import math
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import pytest
from PIL import Image

from trainables.data.registry import build_transfer_data
from trainables.data.specs import dataset_spec
from trainables.methods import METHODS
from tuner import plots
from tuner.cli import run_cli
from tuner.pareto import pareto_front
from tuner.pareto_figure import pareto_figure
from tuner.plots import DPI, FALLBACK_COLOURS, FIGSIZE, distance_figure, method_colour
from tuner.report import main as report_main
from tuner.report_analysis import analyse
from tuner.report_build import build_report
from tuner.report_figures import distance_panels, pareto_panels, tradeoff_series
from tuner.report_statistics import wilson_interval
from tuner.run_dir import read_rows, write_rows

REPO = Path(__file__).resolve().parents[1]


def report_at(*args, **kwargs) -> Path:
    """The local folder `build_report` wrote."""
    return Path(build_report(*args, **kwargs)[0])

LAMBDAS = (0.01, 0.1, 1.0, 10.0)
DATASETS = ("digits", "flower")
METRICS = ("val_clean_acc", "val_asr", "test_clean_acc", "test_asr")
# method -> (swept column, clean accuracy and ASR as functions of the swept value's decade)
SYNTHETIC_METHODS = {
    "l2sp": ("lambda_l2sp", lambda d: 97.0 + 0.3 * d, lambda d: 45.0 - 4.0 * d),
    "delta": ("lambda_feat", lambda d: 97.5 + 0.4 * d, lambda d: 60.0 + 8.0 * d),
    "renofeation": ("lambda_feat", lambda d: 95.5 + 0.6 * d, lambda d: 4.0 + 1.5 * d),
}


def trial_config(method: str, dataset: str, seed: int, **overrides) -> dict:
    config = {
        "method": method, "dataset": dataset, "data_root": None if dataset == "digits" else "/data/flowers102",
        "fraction": 1.0, "val_fraction": 0.1, "arch": "resnet18_w32", "weights": None, "seed": seed,
        "batch_size": 64, "iters": 600, "lr": 0.01, "momentum": 0.9,
        "weight_decay": 0.0 if method == "l2sp" else 1e-4, "head_beta": 0.01,
        "lambda_feat": 0.0, "lambda_l2sp": 0.0, "dropout": method == "renofeation", "dropout_p": 0.1,
        "swa": method == "renofeation", "swa_iters": 500, "swa_lr": 0.005, "swa_every": 25, "adv_eps": 0.1,
        "adv_step": 0.05, "adv_steps": 3, "eval_every": 100, "checkpoint_every": 500, "num_workers": 0,
        "cache_dir": None, "source_images": 10_000, "source_iters": 3_000,
    }
    return config | overrides


def split_columns(split: str, clean: float, asr: float, images: int, rng: random.Random) -> dict:
    clean_correct = round(images * clean / 100)
    noise_fooled = round(clean_correct * rng.uniform(0.0, 2.0) / 100)
    return {f"{split}_clean_acc": clean, f"{split}_adv_acc": clean * (1 - asr / 100) if asr == asr else 0.0,
            f"{split}_asr": asr, f"{split}_clean_correct": clean_correct,
            f"{split}_fooled": 0 if asr != asr else round(clean_correct * asr / 100), f"{split}_images": images,
            f"{split}_noise_asr": 100 * noise_fooled / clean_correct if clean_correct else math.nan,
            f"{split}_noise_fooled": noise_fooled, f"{split}_attack_key": split}


def robustness_row(trial_id: str, config: dict, val: tuple[float, float], test: tuple[float, float],
                   rng: random.Random, stopped: bool = False) -> dict:
    row = {"trial_id": trial_id, **config, "selection_split": "val" if config["val_fraction"] > 0 else "test",
           "stopped_early": stopped}
    if config["val_fraction"] > 0:
        row |= split_columns("val", *val, 126, rng)
    asr = test[1]
    return row | split_columns("test", *test, 540, rng) | {
        "weight_distance": (60.0 if config["method"] == "renofeation" else 30.0) - asr / 5 + rng.uniform(-1, 1),
        "feature_distance": 5.0 - asr / 25 + rng.uniform(-0.2, 0.2),
        "attack_preset": "embedded", "attack_budget": 0.1, "attack_step": 0.01, "attack_iters": 40,
        "attack_magnitude": 1000.0, "attack_target_index": 0, "attack_loss": "target_l2", "attack_units": "pixels",
        "attack_budget_pixels": 0.1, "weights_digest": "sha256:0123abcd",
        "checkpoint_path": f"/runs/demo/{trial_id}/ckpt", "evaluated_at": 1_700_000_000.0,
    }


def synthetic_rows() -> list[dict]:
    """3 methods x 4 lambdas x 2 seeds x 2 datasets (test = validation + noise), plus one renofeation checkpoint
    with an undefined ASR and one early-stopped trial that would lead every front if it counted."""
    rng = random.Random(0)
    rows = []
    for dataset in DATASETS:
        offset = -3.0 if dataset == "flower" else 0.0
        for method, (column, clean_of, asr_of) in SYNTHETIC_METHODS.items():
            for value in LAMBDAS:
                for seed in (0, 1):
                    decade = math.log10(value)
                    clean = min(99.0, clean_of(decade) + offset + rng.uniform(-0.4, 0.4))
                    asr = max(0.5, asr_of(decade) + rng.uniform(-2.0, 2.0))
                    test = (round(clean + rng.uniform(-1.5, 1.0), 2), round(asr + rng.uniform(-2.0, 2.0), 2))
                    trial_id = f"{dataset}_{method}_{value:g}_{seed}"
                    rows.append(robustness_row(trial_id, trial_config(method, dataset, seed, **{column: value}),
                                               (round(clean, 2), round(asr, 2)), test, rng))
    rows.append(robustness_row("digits_renofeation_broken", trial_config("renofeation", "digits", 2,
                                                                         lambda_feat=1.0), (0.0, math.nan),
                               (0.0, math.nan), rng))
    rows.append(robustness_row("digits_delta_stopped", trial_config("delta", "digits", 0, lambda_feat=0.5),
                               (99.9, 0.1), (99.9, 0.1), rng, stopped=True))
    return rows


def trial_rows(rows: list[dict]) -> list[dict]:
    config_keys = list(trial_config("delta", "digits", 0))
    return [{"trial_id": row["trial_id"], "status": "TERMINATED", **{k: row[k] for k in config_keys},
             "val_acc": row["val_clean_acc"], "best_val_acc": row["val_clean_acc"], "val_asr": None, "iteration": 6,
             "best_checkpoint": row["checkpoint_path"], "node_ip": "127.0.0.1", "started_at": 1_700_000_000.0,
             "ended_at": 1_700_000_090.0, "wall_s": 90.0} for row in rows]


def configuration_means(rows: list[dict], dataset: str) -> dict[str, dict[str, float]]:
    """(method, lambda) -> mean of every metric over the seeds, computed directly, stopped trials left out."""
    by_config: dict[str, list[dict]] = {}
    for row in rows:
        if row["dataset"] == dataset and not row["stopped_early"]:
            key = f"{row['method']} {row['lambda_feat']} {row['lambda_l2sp']}"
            by_config.setdefault(key, []).append(row)
    return {key: {metric: statistics.fmean(r[metric] for r in seeds if r[metric] == r[metric]) if any(
        r[metric] == r[metric] for r in seeds) else math.nan for metric in METRICS} | {"n": len(seeds)}
        for key, seeds in by_config.items()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "synthetic_sweep"
    run.mkdir()
    rows = synthetic_rows()
    write_rows(rows, run / "robustness.parquet")
    write_rows(trial_rows(rows), run / "trials.parquet")
    (run / "sweep.json").write_text(json.dumps({"space": "lambda_sweep", "search": "grid", "scheduler": "fifo"}))
    return run


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    return report_at([run_dir])


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def expected_pixels(rows: int = 1) -> tuple[int, int]:
    return round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * rows * DPI)


def test_every_file_is_written_and_every_figure_decodes_at_its_size(report, run_dir):
    assert report == run_dir / "report"
    expected = {"pareto.png": expected_pixels(rows=len(DATASETS)), "distance_vs_asr.png": expected_pixels(),
                "tradeoff_lambda_feat.png": expected_pixels(), "tradeoff_lambda_l2sp.png": expected_pixels()}
    for name, size in expected.items():
        assert png_size(report / name) == size, name
    assert sorted(p.name for p in report.glob("tradeoff_*.png")) == ["tradeoff_lambda_feat.png",
                                                                     "tradeoff_lambda_l2sp.png"]
    assert (report / "summary.md").is_file() and (report / "summary.json").is_file()


def test_fronts_are_chosen_on_validation_means_and_shown_on_test(report, run_dir):
    rows = read_rows(run_dir / "robustness.parquet")
    summary = json.loads((report / "summary.json").read_text())
    assert summary["evaluated_checkpoints"] == len(rows) and summary["nan_asr_rows"] == 1
    disagreements = 0
    for dataset in DATASETS:
        means = configuration_means(rows, dataset)
        keys = list(means)
        on_val = [keys[i] for i in pareto_front([means[k]["val_clean_acc"] for k in keys],
                                                [means[k]["val_asr"] for k in keys])]
        on_test = [keys[i] for i in pareto_front([means[k]["test_clean_acc"] for k in keys],
                                                 [means[k]["test_asr"] for k in keys])]
        disagreements += on_val != on_test
        front = summary["pareto"][dataset]
        assert len(front) == len(on_val)
        for entry, key in zip(front, on_val):
            assert entry["test"]["clean_acc"]["mean"] == pytest.approx(means[key]["test_clean_acc"])
            assert entry["val"]["asr"]["mean"] == pytest.approx(means[key]["val_asr"])
            gap = means[key]["test_clean_acc"] - means[key]["val_clean_acc"]
            assert entry["gap"]["clean_acc"] == pytest.approx(gap)
            assert entry["test"]["clean_acc"]["n"] == 2 and entry["stopped_early"] is False
    assert disagreements  # the planted noise makes the test-split front differ: selection did not peek at it
    trials = {t for front in summary["pareto"].values() for e in front for t in e["trials"]}
    assert not any(t.endswith(("digits_renofeation_broken", "digits_delta_stopped")) for t in trials)


def test_each_methods_best_configuration_is_chosen_on_validation(report, run_dir):
    rows = read_rows(run_dir / "robustness.parquet")
    summary = json.loads((report / "summary.json").read_text())
    chose_differently = 0
    for dataset in DATASETS:
        means = configuration_means(rows, dataset)
        for method in SYNTHETIC_METHODS:
            own = {k: v for k, v in means.items()
                   if k.startswith(method + " ") and v["val_clean_acc"] == v["val_clean_acc"]}
            by_val = max(own, key=lambda k: own[k]["val_clean_acc"])
            by_test = max(own, key=lambda k: own[k]["test_clean_acc"])
            chose_differently += by_val != by_test
            cell = summary["results_table"]["rows"][method][dataset]
            assert cell["test"]["clean_acc"]["mean"] == pytest.approx(own[by_val]["test_clean_acc"])
    assert chose_differently  # at least one planted case where test would have picked another configuration


def test_seeds_are_aggregated_with_their_standard_deviation(report, run_dir):
    rows = read_rows(run_dir / "robustness.parquet")
    summary = json.loads((report / "summary.json").read_text())
    entry = summary["pareto"]["digits"][0]
    seeds = [row for row in rows if f"synthetic_sweep/{row['trial_id']}" in entry["trials"]]
    assert len(seeds) == 2 and sorted(entry["seeds"]) == [0, 1]
    values = [row["test_asr"] for row in seeds]
    assert entry["test"]["asr"] == {"mean": pytest.approx(statistics.fmean(values)),
                                    "std": pytest.approx(statistics.stdev(values)), "n": 2}
    markdown = (report / "summary.md").read_text()
    assert "Seeds per configuration: 1, 2" in markdown  # the broken and the stopped trial are single runs
    assert f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}" in markdown


def test_summary_markdown_lists_the_front_and_bolds_the_best_cells(report):
    summary = json.loads((report / "summary.json").read_text())
    markdown = (report / "summary.md").read_text()
    assert "chosen by validation means" in markdown and "Selection used the test split" not in markdown
    assert "val_fraction = 0.1)" in markdown and "| val_fraction | 0.1 |" in markdown
    assert "val → test gap over" in markdown
    for front in summary["pareto"].values():
        for entry in front:
            line = next(line for line in markdown.splitlines() if entry["trials"][0] in line)
            assert f"{entry['test']['clean_acc']['mean']:.2f}" in line and f"{entry['val']['asr']['mean']:.2f}" in line
            assert entry["label"] in line
    table = summary["results_table"]["rows"]
    for best in summary["results_table"]["best"]:
        metric = "clean_acc" if best["metric"] == "clean_acc" else "asr"
        winners = [cells[best["group"]]["test"][metric] for cells in table.values()
                   if cells[best["group"]]["test"][metric]["mean"] == best["mean"]]
        assert winners, best
        assert f"**{winners[0]['mean']:.2f} ± {winners[0]['std']:.2f}**" in markdown
    assert markdown.count("**") == 2 * len(summary["results_table"]["best"]) == 2 * 2 * len(DATASETS)
    # synthetic truth: renofeation has the lowest ASR, delta the highest clean accuracy, on both datasets
    assert {(b["group"], b["metric"]): b["mean"] for b in summary["results_table"]["best"]} == {
        (d, m): table[method][d]["test"][m]["mean"]
        for d in DATASETS for m, method in (("clean_acc", "delta"), ("asr", "renofeation"))
    }
    assert "no test image classified correctly, so none to fool): 1," in markdown
    assert "drawn hollow, left out of the fronts" in markdown
    for image in ("pareto.png", "tradeoff_lambda_feat.png", "distance_vs_asr.png"):
        assert f"]({image})" in markdown
    assert '"space": "lambda_sweep"' in markdown and "sha256:0123abcd" in markdown
    assert "embedded" in markdown and "pixels" in markdown
    for package in ("torch", "torchvision", "ray", "optuna", "advertorch", "pyarrow"):
        assert f"| {package} |" in markdown
    assert "TERMINATED 50" in markdown


def test_early_stopped_trials_count_only_when_included(run_dir, tmp_path):
    summary = json.loads((report_at([run_dir], tmp_path / "with_stopped", include_stopped=True)
                          / "summary.json").read_text())
    leader = summary["pareto"]["digits"][0]
    assert leader["trials"] == ["synthetic_sweep/digits_delta_stopped"] and leader["stopped_early"]


def test_selection_on_test_and_a_single_seed_are_said(tmp_path):
    run = tmp_path / "no_validation"
    run.mkdir()
    rng = random.Random(1)
    rows = [robustness_row(f"t{value}", trial_config("delta", "digits", 0, val_fraction=0.0, lambda_feat=value),
                           (math.nan, math.nan), (90.0 + value, 50.0 - value), rng) for value in (1.0, 2.0, 3.0)]
    write_rows(rows, run / "robustness.parquet")
    out = report_at([run])
    markdown = (out / "summary.md").read_text()
    assert "**Selection used the test split** in no_validation" in markdown
    assert "Single seed" in markdown and not re.search(r"\d ± \d", markdown.split("## Configuration")[0])
    assert "No configuration has a validation split" in markdown
    cells = {row["trial_id"]: row for row in rows}
    best = cells[max(cells, key=lambda t: cells[t]["test_clean_acc"])]
    assert f"| delta | test clean (%) | **{best['test_clean_acc']:.2f}** (n=1) |" in markdown
    summary = json.loads((out / "summary.json").read_text())
    assert all(e["test"]["clean_acc"]["std"] is None and e["test"]["clean_acc"]["n"] == 1
               for e in summary["pareto"]["digits"])


def test_key_hyper_parameters_are_those_varying_within_a_method(report):
    summary = json.loads((report / "summary.json").read_text())
    assert summary["key_hyper_parameters"] == {"l2sp": ["lambda_l2sp"], "delta": ["lambda_feat"],
                                               "renofeation": ["lambda_feat"]}
    labels = {e["label"] for front in summary["pareto"].values() for e in front}
    assert labels and all(label.startswith(("λ_feat=", "λ_l2sp=")) for label in labels)


def pearson_r(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    return covariance / math.sqrt(sum((x - mean_x) ** 2 for x in xs) * sum((y - mean_y) ** 2 for y in ys))


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def test_correlations_are_pooled_and_per_method_pearson_and_spearman(report, run_dir):
    rows = [r for r in read_rows(run_dir / "robustness.parquet")
            if not math.isnan(r["test_asr"]) and not r["stopped_early"]]
    summary = json.loads((report / "summary.json").read_text())
    markdown = (report / "summary.md").read_text()
    for column in ("weight_distance", "feature_distance"):
        xs, ys = [r[column] for r in rows], [r["test_asr"] for r in rows]
        pooled = summary["correlations"][column]["pooled"]
        assert pooled == {"pearson_r": pytest.approx(pearson_r(xs, ys)),
                          "spearman_rho": pytest.approx(pearson_r(ranks(xs), ranks(ys))), "n": len(rows)}
        by_method = summary["correlations"][column]["by_method"]
        assert set(by_method) == {f"{m} · {d}" for m in SYNTHETIC_METHODS for d in DATASETS}
        for method in SYNTHETIC_METHODS:
            for dataset in DATASETS:
                own = [r for r in rows if r["method"] == method and r["dataset"] == dataset]
                xs, ys = [r[column] for r in own], [r["test_asr"] for r in own]
                expected = pearson_r(ranks(xs), ranks(ys))
                assert by_method[f"{method} · {dataset}"] == {
                    "pearson_r": pytest.approx(pearson_r(xs, ys)), "spearman_rho": pytest.approx(expected),
                    "n": len(own)}
                assert f"| {column} | {method} · {dataset} | {len(own)} | {expected:+.3f} |" in markdown
    assert summary["correlations"]["feature_distance"]["pooled"]["pearson_r"] < -0.9  # planted: distance = 5 − ASR/25


def test_the_distance_figure_shows_each_methods_correlation(run_dir):
    analysis = analyse([row | {"run": "r"} for row in read_rows(run_dir / "robustness.parquet")])
    figure = distance_figure(distance_panels(analysis))
    for ax, column in zip(figure.axes, ("weight_distance", "feature_distance")):
        lines = [t.get_text() for t in ax.texts if t.get_gid() == "method-correlation"]
        expected = analysis.correlations[column]
        assert len(lines) == len(expected) - 1  # one per method and dataset, the pooled one is the title
        assert f"{expected['all'].spearman_rho:+.2f}" in ax.get_title()
        for line, key in zip(lines, [k for k in expected if k != "all"]):
            method, _, dataset = key.partition(" · ")
            assert line.startswith(f"{METHODS[method].title} · {dataset}: Spearman ρ = "
                                   f"{expected[key].spearman_rho:+.2f}")


def test_method_colours_are_fixed_and_shared_by_every_plot(monkeypatch, run_dir, tmp_path):
    own = {method: spec.colour for method, spec in METHODS.items()}
    assert len(set(own.values())) == len(own) and not set(own.values()) & set(FALLBACK_COLOURS)
    assert method_colour("some_new_method") == method_colour("some_new_method")
    assert method_colour("some_new_method") not in own.values()
    asked: dict[str, list[str]] = {}
    original = plots.method_colour

    def recording(method: str) -> str:
        asked.setdefault(method, []).append(original(method))
        return original(method)

    monkeypatch.setattr(plots, "method_colour", recording)
    report_at([run_dir], tmp_path / "report")
    assert set(asked) == set(SYNTHETIC_METHODS)
    for method, colours in asked.items():
        assert set(colours) == {METHODS[method].colour}


def test_two_runs_are_combined_with_a_run_column(run_dir, tmp_path):
    second = tmp_path / "second_sweep"
    second.mkdir()
    write_rows(synthetic_rows()[:8], second / "robustness.parquet")
    out = report_at([run_dir, second], tmp_path / "combined")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == ["second_sweep", "synthetic_sweep"]
    assert summary["evaluated_checkpoints"] == len(synthetic_rows()) + 8
    assert summary["trials"]["count"] == len(synthetic_rows())


def test_command_line_writes_the_report(run_dir, tmp_path):
    out = tmp_path / "cli_report"
    done = subprocess.run([sys.executable, "-m", "tuner.report", "--run", str(run_dir), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(out / "summary.md") in done.stdout and str(out / "index.html") in done.stdout
    assert "Pareto set, chosen on validation means" in done.stdout and "-> test clean" in done.stdout
    assert png_size(out / "pareto.png") == expected_pixels(rows=len(DATASETS))


@pytest.mark.slow
def test_a_run_without_robustness_rows_is_one_error_line(tmp_path):
    empty_run = tmp_path / "no_attack_yet"
    empty_run.mkdir()
    done = subprocess.run([sys.executable, "-m", "tuner.report", "--run", str(empty_run)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "robustness.parquet" in lines[0]
    assert not (empty_run / "report").exists()


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95 % Wilson score interval in percent, from its textbook formula."""
    z = NormalDist().inv_cdf(0.975)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return 100 * (centre - half), 100 * (centre + half)


def flat(pairs: list[tuple[float, float]]) -> list[float]:
    return [value for pair in pairs for value in pair]


def pooled_wilson(rows: list[dict], split: str, fooled: str = "fooled") -> tuple[float, float]:
    return wilson(sum(r[f"{split}_{fooled}"] for r in rows), sum(r[f"{split}_clean_correct"] for r in rows))


@pytest.mark.parametrize("successes,trials", [(0, 20), (3, 200), (486, 486), (250, 500)])
def test_wilson_interval_matches_the_formula_and_stays_within_0_and_100(successes, trials):
    interval = wilson_interval(successes, trials)
    assert (interval.low, interval.high) == pytest.approx(wilson(successes, trials))
    assert 0 <= interval.low <= 100 * successes / trials <= interval.high <= 100
    assert wilson_interval(0, 0) is None  # no correctly classified image: the ASR is undefined


def test_every_asr_has_a_wilson_interval_from_its_counts_in_the_tables(report, run_dir):
    rows = {f"synthetic_sweep/{row['trial_id']}": row for row in read_rows(run_dir / "robustness.parquet")}
    summary = json.loads((report / "summary.json").read_text())
    markdown = (report / "summary.md").read_text()
    entries = [e for front in summary["pareto"].values() for e in front]
    entries += [cell for cells in summary["results_table"]["rows"].values() for cell in cells.values()]
    for entry in entries:
        seeds = [rows[trial] for trial in entry["trials"]]
        for split in ("val", "test"):
            for metric, fooled in (("asr", "fooled"), ("noise_asr", "noise_fooled")):
                ci = entry[split][f"{metric}_ci"]
                assert (ci["low"], ci["high"]) == pytest.approx(pooled_wilson(seeds, split, fooled))
                assert ci["trials"] == sum(r[f"{split}_clean_correct"] for r in seeds)
        low, high = pooled_wilson(seeds, "test")
        assert f"{format(entry['test']['asr']['mean'], '.2f')} ± {entry['test']['asr']['std']:.2f} " \
               f"[{low:.1f}, {high:.1f}]" in markdown


def test_the_figures_draw_the_asr_intervals_as_error_bars(run_dir):
    rows = [row | {"run": "r"} for row in read_rows(run_dir / "robustness.parquet")]
    analysis = analyse(rows)
    panels = pareto_panels(analysis)
    figure = pareto_figure(panels)
    for ax, group in zip(figure.axes[::2], analysis.fronts):
        own = [r for r in analysis.results if r.group == group]
        expected = sorted(pooled_wilson(r.rows, "test") for r in own
                          if sum(row["test_clean_correct"] for row in r.rows))
        drawn = sorted((segment[0][0], segment[1][0]) for container in ax.containers if container.has_xerr
                       for segment in container.lines[2][0].get_segments())
        assert flat(drawn) == pytest.approx(flat(expected))
    for series in tradeoff_series(analysis.eligible, "lambda_feat"):
        for x, low, high in zip(series.x, series.asr.low, series.asr.high):
            at = [row for row in rows if row["method"] == series.method and row["dataset"] == series.group
                  and row["lambda_feat"] == x and not row["stopped_early"]]
            assert (low, high) == pytest.approx(pooled_wilson(at, "test"))
    for point in distance_panels(analysis)[0].points:
        row = next(r for r in rows if r["weight_distance"] == point.x)
        assert point.y_interval == pytest.approx(wilson(row["test_fooled"], row["test_clean_correct"]))


def config_key(row: dict) -> str:
    return f"{row['method']} {row['lambda_feat']} {row['lambda_l2sp']}"


def test_min_accuracy_leaves_configurations_out_of_the_front_and_marks_them(run_dir, tmp_path):
    rows = read_rows(run_dir / "robustness.parquet")
    by_trial = {f"synthetic_sweep/{row['trial_id']}": row for row in rows}
    means = configuration_means(rows, "digits")
    threshold = 96.5
    kept = [k for k in means if means[k]["val_clean_acc"] >= threshold]
    below = {k for k in means if means[k]["val_clean_acc"] < threshold}
    unfiltered = [list(means)[i] for i in pareto_front([m["val_clean_acc"] for m in means.values()],
                                                       [m["val_asr"] for m in means.values()])]
    assert set(unfiltered) & below  # the filter has something to remove
    expected = [kept[i] for i in pareto_front([means[k]["val_clean_acc"] for k in kept],
                                              [means[k]["val_asr"] for k in kept])]
    out = report_at([run_dir], tmp_path / "filtered", min_accuracy=threshold)
    summary = json.loads((out / "summary.json").read_text())
    assert [config_key(by_trial[e["trials"][0]]) for e in summary["pareto"]["digits"]] == expected
    marked = [e for e in summary["min_accuracy"]["below"] if e["group"] == "digits"]
    assert {config_key(by_trial[e["trials"][0]]) for e in marked} == below
    assert summary["min_accuracy"]["percent"] == threshold
    markdown = (out / "summary.md").read_text()
    assert f"Minimum accuracy (--min-accuracy): {threshold:g} %" in markdown
    for entry in marked:
        assert f"{entry['clean_acc']:.2f} % on val ({', '.join(entry['trials'])})" in markdown
    panel = pareto_panels(analyse([row | {"run": "r"} for row in rows], min_accuracy=threshold))[0]
    crosses = next(c for c in pareto_figure([panel]).axes[0].collections if c.get_gid() == "below-minimum")
    drawn = sorted(map(tuple, crosses.get_offsets().tolist()))
    assert flat(drawn) == pytest.approx(flat(sorted((means[k]["test_asr"], means[k]["test_clean_acc"]) for k in below)))


@pytest.mark.parametrize("value", ["-1", "100.5", "nan", "high"])
def test_a_min_accuracy_that_is_no_percentage_is_one_error_line(value, run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(report_main, ["--run", str(run_dir), "--out", str(tmp_path / "never"), "--min-accuracy", value])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--min-accuracy" in lines[0]
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_the_command_line_takes_min_accuracy_and_rejects_150(run_dir, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "tuner.report", "--run", str(run_dir), "--min-accuracy", "150"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --min-accuracy 150 is not a percentage in [0, 100]"]
    out = tmp_path / "cli_filtered"
    done = subprocess.run([sys.executable, "-m", "tuner.report", "--run", str(run_dir), "--out", str(out),
                           "--min-accuracy", "96.5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["min_accuracy"]["percent"] == 96.5


@pytest.mark.parametrize("dataset", ["digits", "novel_shapes", "synthetic"])
def test_the_class_counts_behind_chance_accuracy_are_the_specs(dataset):
    built = build_transfer_data(dataset, fraction=0.05, val_fraction=0.1, synthetic_images=200)
    assert dataset_spec(dataset).num_classes == built.num_classes


def test_chance_accuracy_is_100_over_the_class_count(report, tmp_path):
    summary = json.loads((report / "summary.json").read_text())
    assert summary["chance_accuracy"]["digits"]["accuracy"] == pytest.approx(100 / 10)
    assert summary["chance_accuracy"]["flower"]["num_classes"] == 102  # Oxford Flowers 102
    assert "- digits: 10.00 % (10 classes" in (report / "summary.md").read_text()
    run = tmp_path / "recorded_classes"
    run.mkdir()
    rng = random.Random(2)
    rows = [robustness_row(f"t{value}", trial_config("delta", "digits", 0, lambda_feat=value), (80.0, 40.0 - value),
                           (80.0, 40.0 - value), rng) | {"num_classes": 7} for value in (1.0, 2.0)]
    rows.append(robustness_row("unknown", trial_config("delta", "my_own_data", 0), (80.0, 30.0), (80.0, 30.0), rng))
    write_rows(rows, run / "robustness.parquet")
    chance = json.loads((report_at([run]) / "summary.json").read_text())["chance_accuracy"]
    assert chance["digits"] == {"num_classes": 7, "accuracy": pytest.approx(100 / 7),
                                "source": "the rows' num_classes column"}
    assert chance["my_own_data"] is None


def test_summary_markdown_links_the_interactive_report(report):
    markdown = (report / "summary.md").read_text()
    assert "Interactive report: [index.html](index.html)" in markdown
    assert (report / "index.html").is_file()
    assert json.loads((report / "summary.json").read_text())["interactive"] == "index.html"
