"""`tuner.recipes` and `tuner.paper_results`: each recipe expands to the paper's trials (without running them),
the published numbers are transcribed and labelled consistently, and the report sets them beside measured ones."""
import json
from collections import Counter

import pytest

from search_spaces import get_space
from tests.layouts import MAKERS
from tests.test_report import report_at
from trainables.config import method_defaults, resolve_config
from trainables.data.registry import dataset_summary
from trainables.data.specs import DEFAULT_VAL_FRACTION
from trainables.errors import UserError
from trainables.methods import METHODS
from tuner.paper_comparison import paper_comparison
from tuner.paper_results import DATASETS, PAPER_RESULTS, row_label
from tuner.recipes import ARCHS, RECIPES, get_recipe
from tuner.run_dir import write_rows
from tuner.spaces import param_space
from tuner.sweep_plan import trial_configs

EXPECTED_TRIALS = {"table2": 130, "table4": 60, "table5": 30, "table6": 20, "fig3": 60, "fig4": 105}


def recipe_trials(recipe) -> list[dict]:
    """Every trial config the sweep plans for the recipe, part after part."""
    return [trial for part in recipe.parts for trial in trial_configs(param_space(part.space, "grid", {}, None))]


def published(table: str, label: str, dataset: str, arch: str = "resnet18", fraction: float = 1.0):
    return next(r for r in PAPER_RESULTS if (r.table, r.label, r.dataset, r.arch, r.fraction)
                == (table, label, dataset, arch, fraction))


def test_every_recipe_has_its_trial_count_and_no_duplicates():
    assert set(RECIPES) == set(EXPECTED_TRIALS)
    for name, count in EXPECTED_TRIALS.items():
        trials = recipe_trials(RECIPES[name])
        assert len(trials) == count, name
        assert len({json.dumps(t, sort_keys=True) for t in trials}) == count, name
        for part in RECIPES[name].parts:
            assert set(part.space.parameters["method"]["grid"]) == set(part.space.methods)


def test_every_trial_is_a_valid_config():
    for recipe in RECIPES.values():
        for trial in recipe_trials(recipe):
            config = resolve_config({**trial, "data_root": "/data"})
            assert config.method == trial["method"] and config.dataset in DATASETS
            assert config.seed == 0


def test_table2_tunes_the_three_baselines_on_the_paper_grid_with_refit_and_keeps_delta_and_retraining_fixed():
    tuned, fixed = RECIPES["table2"].parts
    assert tuned.refit and tuned.protocol == "refit" and not fixed.refit and fixed.protocol == "fixed"
    trials = recipe_trials(RECIPES["table2"])
    assert Counter(t["method"] for t in trials) == {"linear": 40, "finetune": 40, "l2sp": 40, "delta": 5, "retrain": 5}
    assert {(t["arch"], t["fraction"]) for t in trials} == {("resnet18", 1.0)}
    for method in ("linear", "finetune", "l2sp"):  # Sec. 5.1: lr x momentum x weight decay, per dataset
        for dataset in DATASETS:
            grid = {(t["lr"], t["momentum"], t["weight_decay"]) for t in trials
                    if t["method"] == method and t["dataset"] == dataset}
            assert grid == {(lr, m, wd) for lr in (0.01, 0.005) for m in (0.0, 0.9) for wd in (0.0, 1e-4)}
    tuned_trials = [t for t in trials if t["method"] in ("linear", "finetune", "l2sp")]
    assert all("val_fraction" not in t for t in tuned_trials)  # the default validation split chooses
    assert all(t["val_fraction"] == 0.0 for t in trials if t["method"] in ("delta", "retrain"))


def test_every_fixed_recipe_part_trains_on_the_full_official_training_split():
    for recipe in RECIPES.values():
        for part in recipe.parts:
            trials = trial_configs(param_space(part.space, "grid", {}, None))
            splits = {resolve_config({**t, "data_root": "/data"}).val_fraction for t in trials}
            assert splits == ({DEFAULT_VAL_FRACTION} if part.refit else {0.0}), (recipe.name, part.name)


def test_table4_crosses_three_methods_with_four_backbones():
    trials = recipe_trials(RECIPES["table4"])
    assert {(t["method"], t["arch"], t["dataset"]) for t in trials} == {
        (m, a, d) for m in ("delta", "renofeation", "retrain") for a in ARCHS for d in DATASETS}
    assert ARCHS == ("resnet18", "resnet50", "resnet101", "mobilenet_v2")


def test_table5_runs_a_third_and_two_thirds_of_the_data():
    trials = recipe_trials(RECIPES["table5"])
    assert Counter(t["fraction"] for t in trials) == {0.33: 15, 0.66: 15}
    assert {t["method"] for t in trials} == {"delta", "renofeation", "retrain"}


def test_table6_adds_adversarial_delta_with_swa_and_dropout():
    trials = recipe_trials(RECIPES["table6"])
    switched = [t for t in trials if t["method"] == "delta_adv" and t.get("dropout") and t.get("swa")]
    assert len(switched) == 5 and {t["dataset"] for t in switched} == set(DATASETS)
    assert Counter(row_label(t) for t in trials) == {"delta": 5, "delta_adv": 5, "renofeation": 5,
                                                     "delta_adv+DO+SWA": 5}


def test_fig3_is_the_ablation_and_fig4_the_lambda_grid():
    fig3 = recipe_trials(RECIPES["fig3"])
    assert Counter(row_label(t) for t in fig3 if t["method"] == "delta_r") == {
        "delta_r": 5, "delta_r+DO": 5, "delta_r+SWA": 5, "delta_r+DO+SWA": 5}
    assert RECIPES["fig3"].tables == ("table7",) and RECIPES["fig4"].tables == ()
    fig4 = recipe_trials(RECIPES["fig4"])
    assert sorted({t["lambda_feat"] for t in fig4}) == [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    assert {t["method"] for t in fig4} == {"delta", "delta_r", "renofeation"}


def test_every_published_label_parses_to_a_known_method_and_its_own_label():
    for result in PAPER_RESULTS:
        method, *switches = result.label.split("+")
        assert method in METHODS and set(switches) <= {"DO", "SWA"}, result.label
        row = {"method": method, "dropout": "DO" in switches or METHODS[method].dropout,
               "swa": "SWA" in switches or METHODS[method].swa}
        assert row_label(row) == result.label
    assert Counter(r.table for r in PAPER_RESULTS) == {"table2": 25, "table4": 60, "table5": 30, "table6": 20,
                                                       "table7": 20}


def test_row_label_marks_switches_that_differ_from_the_method_default():
    assert row_label({"method": "delta_r", "dropout": True, "swa": True}) == "delta_r+DO+SWA"
    assert row_label({"method": "renofeation", "dropout": True, "swa": True}) == "renofeation"
    assert row_label({"method": "renofeation", "dropout": False, "swa": True}) == "renofeation-DO"
    assert row_label({"method": "delta"}) == "delta"


def test_a_result_in_several_tables_has_the_same_numbers_in_each():
    by_key: dict[tuple, set] = {}
    for r in PAPER_RESULTS:
        by_key.setdefault((r.label, r.dataset, r.arch, r.fraction), set()).add((r.table, r.clean, r.asr))
    overlapping = {key: entries for key, entries in by_key.items() if len(entries) > 1}
    assert {key[0] for key in overlapping} == {"delta", "renofeation", "retrain"}
    for entries in overlapping.values():
        assert len({(clean, asr) for _, clean, asr in entries}) == 1
    for dataset in DATASETS:  # Table 7's "Renofeation" is DELTA-R + DO + SWA
        renofeation = published("table4", "renofeation", dataset)
        table7 = published("table7", "delta_r+DO+SWA", dataset)
        assert (renofeation.clean, renofeation.asr) == (table7.clean, table7.asr)


@pytest.mark.parametrize("table, label, dataset, arch, fraction, clean, asr", [
    ("table2", "linear", "dog", "resnet18", 1.0, 84.22, 96.06),
    ("table2", "l2sp", "action", "resnet18", 1.0, 77.22, 92.16),
    ("table4", "renofeation", "indoor", "mobilenet_v2", 1.0, 76.49, 7.12),
    ("table4", "delta", "flower", "resnet101", 1.0, 96.37, 44.04),
    ("table4", "retrain", "bird", "resnet50", 1.0, 70.47, 7.45),
    ("table5", "retrain", "bird", "resnet18", 0.33, 26.10, 14.68),
    ("table5", "delta", "flower", "resnet18", 0.66, 94.23, 56.39),
    ("table6", "delta_adv+DO+SWA", "indoor", "resnet18", 1.0, 78.28, 36.60),
    ("table7", "delta_r+SWA", "action", "resnet18", 1.0, 78.07, 23.62),
])
def test_transcribed_numbers_match_the_paper(table, label, dataset, arch, fraction, clean, asr):
    result = published(table, label, dataset, arch, fraction)
    assert (result.clean, result.asr) == (clean, asr)


def test_table7_alone_has_feature_loss():
    assert published("table7", "delta_r+SWA", "action").feature_loss == 0.87
    assert published("table7", "delta_r+DO+SWA", "bird").feature_loss == 1.68
    assert all((r.feature_loss is not None) == (r.table == "table7") for r in PAPER_RESULTS)


def measured_row(method: str, dataset: str, clean: float, asr: float, seed: int = 0, **config) -> dict:
    return {"method": method, "dataset": dataset, "arch": "resnet18", "fraction": 1.0, "seed": seed,
            "dropout": METHODS[method].dropout, "swa": METHODS[method].swa, **config,
            "test_clean_acc": clean, "test_asr": asr, "feature_distance": 0.9, "attack_preset": "code",
            "attack_units": "normalized", "attack_budget": 0.1, "attack_budget_pixels": 0.0229}


def test_paper_comparison_averages_matching_rows_and_marks_the_rest_not_run():
    rows = [measured_row("linear", "dog", 84.0, 95.0), measured_row("linear", "dog", 85.0, 97.0, seed=1),
            measured_row("delta_r", "bird", 77.0, 4.0, dropout=True, swa=True),
            measured_row("delta_r", "bird", 10.0, 90.0, dropout=True),  # delta_r+DO: another row of Table 7
            measured_row("linear", "dog", 10.0, 10.0, arch="resnet50")]  # no published ResNet-50 linear probe
    table2 = {(r["label"], r["dataset"]): r for r in paper_comparison(rows, ("table2",))}
    assert len(table2) == 25
    linear_dog = table2[("linear", "dog")]
    assert linear_dog["n"] == 2 and linear_dog["status"] == "measured"
    assert linear_dog["clean_measured"] == pytest.approx(84.5)
    assert linear_dog["clean_difference"] == pytest.approx(84.5 - 84.22)
    assert linear_dog["asr_difference"] == pytest.approx(96.0 - 96.06)
    assert "feature_loss_published" not in linear_dog
    not_run = table2[("delta", "dog")]
    assert (not_run["n"], not_run["status"], not_run["clean_measured"], not_run["asr_difference"]) == (
        0, "not run", None, None)
    assert sum(r["n"] > 0 for r in table2.values()) == 1
    table7 = {(r["label"], r["dataset"]): r for r in paper_comparison(rows, ("table7",))}
    renofeation = table7[("delta_r+DO+SWA", "bird")]
    assert renofeation["n"] == 1 and renofeation["asr_difference"] == pytest.approx(4.0 - 3.41)
    assert renofeation["feature_loss_difference"] == pytest.approx(0.9 - 1.68)
    assert table7[("delta_r+DO", "bird")]["clean_difference"] == pytest.approx(10.0 - 77.72)


def report_row(trial_id: str, method: str, dataset: str, clean: float, asr: float) -> dict:
    config = vars(resolve_config({"method": method, "dataset": dataset, "data_root": "/data"}))
    return {"trial_id": trial_id, **config, "selection_split": "val", "stopped_early": False,
            "val_clean_acc": clean + 1, "val_asr": asr - 1, "test_clean_acc": clean,
            "test_adv_acc": clean * (1 - asr / 100), "test_asr": asr, "test_clean_correct": 100,
            "test_fooled": round(asr), "test_images": 120, "test_noise_asr": 1.0, "test_noise_fooled": 1,
            "weight_distance": 30.0 - asr / 5, "feature_distance": 5.0 - asr / 25, "attack_preset": "code",
            "attack_budget": 0.1, "attack_step": 0.01, "attack_iters": 40, "attack_units": "normalized",
            "attack_budget_pixels": 0.1 * 0.229, "weights_digest": "sha256:0123abcd",
            "checkpoint_path": f"/runs/{trial_id}/ckpt", "evaluated_at": 0.0}


# Transcribed from the authors' published run scripts (their DELTA and Renofeation scripts), not from our code.
AUTHORS_DELTA = {  # dataset: (lr, momentum, weight decay, lambda_feat)
    "flower": (5e-3, 0.9, 1e-4, 0.1), "indoor": (1e-2, 0.0, 1e-4, 0.5), "action": (5e-3, 0.0, 0.0, 1.0),
    "bird": (1e-2, 0.0, 0.0, 0.1), "dog": (1e-2, 0.0, 0.0, 10.0),
}
AUTHORS_RENOFEATION_LAMBDA = {"flower": 5.0, "indoor": 5.0, "action": 5.0, "bird": 1.0, "dog": 5.0}


@pytest.mark.parametrize("dataset", DATASETS)
def test_paper_dataset_defaults_are_the_authors_scripts(dataset):
    for method in ("delta", "delta_adv"):
        values = method_defaults(method, dataset)
        assert (values["lr"], values["momentum"], values["weight_decay"], values["lambda_feat"]) == \
            AUTHORS_DELTA[dataset]
    for method in ("renofeation", "delta_r"):  # Table 7's DELTA-R runs share Renofeation's lambda_feat
        values = method_defaults(method, dataset)
        assert values["lambda_feat"] == AUTHORS_RENOFEATION_LAMBDA[dataset]
        assert (values["lr"], values["momentum"], values["weight_decay"], values["iters"]) == (
            0.01, 0.9, 5e-3, 90_000)
    fig3_delta_r = [t for t in recipe_trials(RECIPES["fig3"]) if t["method"] == "delta_r" and t["dataset"] == dataset]
    assert {resolve_config({**t, "data_root": "/data"}).lambda_feat for t in fig3_delta_r} == {
        AUTHORS_RENOFEATION_LAMBDA[dataset]}


def test_a_recipe_run_report_writes_the_paper_comparison(tmp_path):
    run = tmp_path / "table2_run"
    run.mkdir()
    rows = [report_row("a", "linear", "dog", 83.50, 95.00), report_row("b", "retrain", "flower", 86.25, 4.00),
            report_row("c", "delta", "bird", 79.00, 60.00)]
    write_rows(rows, str(run / "robustness.parquet"))
    (run / "sweep.json").write_text(json.dumps({"recipe": "table2"}))
    out = report_at([run])
    markdown = (out / "paper_comparison.md").read_text()
    linear_dog = next(line for line in markdown.splitlines() if "| linear | dog |" in line)
    assert "83.50" in linear_dog and "84.22" in linear_dog and "-0.72" in linear_dog
    assert "| code | 0.1 normalized | 0.0229 |" in linear_dog  # preset, units and B in pixels on the row
    assert "| table2 | finetune | dog |" in markdown and "not run" in markdown
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["paper_comparison"]) == 25
    assert sum(r["status"] == "measured" for r in summary["paper_comparison"]) == 3
    overridden = report_at([run], tmp_path / "as_table4", recipe="table4")
    assert len(json.loads((overridden / "summary.json").read_text())["paper_comparison"]) == 60


def test_an_unknown_recipe_is_a_user_error():
    with pytest.raises(UserError, match="unknown recipe 'table9'"):
        get_recipe("table9")


def test_recipe_flowers_train_on_trnid_and_valid_and_table5_takes_its_fractions_of_them(tmp_path):
    layout = MAKERS["flower"](tmp_path / "flower")  # trnid 3 images, valid 6 (20 per class each in the archive)

    def counts(recipe: str, part_index: int = 0, **match) -> list[dict]:
        part = RECIPES[recipe].parts[part_index]
        trials = [t for t in trial_configs(param_space(part.space, "grid", {}, None)) if t["dataset"] == "flower"
                  and all(t.get(k) == v for k, v in match.items())]
        configs = [resolve_config({**t, "data_root": str(layout.root)}) for t in trials]
        return [dataset_summary("flower", c.data_root, c.fraction, c.seed, val_fraction=c.val_fraction)
                for c in configs]

    assert {(c["train"], c["val"]) for c in counts("table4")} == {(layout.train_count, 0)}  # trnid + valid
    assert {(c["train"], c["val"]) for c in counts("table2", 1)} == {(9, 0)}
    per_class = layout.train_per_class  # Table 5: a third and two thirds of each class of trnid + valid
    for fraction in (0.33, 0.66):
        expected = sum(max(1, round(fraction * n)) for n in per_class)
        assert {c["train"] for c in counts("table5", fraction=fraction)} == {expected}
    # the tuned part and every non-recipe sweep keep the official validation list to choose on
    assert {(c["train"], c["val"]) for c in counts("table2", 0)} == {(3, 6)}
    paper_grid = param_space(get_space("paper_grid"), "grid", {"dataset": "flower"}, "finetune")
    config = resolve_config({**trial_configs(paper_grid)[0], "data_root": str(layout.root)})
    assert dataset_summary("flower", config.data_root, val_fraction=config.val_fraction)["val"] == 6
