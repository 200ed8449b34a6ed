"""--refit (GridSearchCV(refit=True)): the configurations chosen on validation re-trained on training + validation
images with the same seeds, scored on test, and the report's best configurations and fronts at the refit numbers,
saying so; for grid, random and Optuna searches."""
import json
import math
import random
from pathlib import Path

import pytest
import ray

from tests.test_report import robustness_row, trial_config
from tests.test_sweep import TINY
from trainables.data.registry import build_transfer_data
from trainables.errors import UserError
from tuner.api import run_sweep
from tuner.cli import parse_assignments
from tuner.refit import chosen_configurations
from tuner.report_analysis import analyse, summary_record
from tuner.report_render import front_digest

TINY_SETTINGS = {"dataset": "digits", "set": parse_assignments(TINY[3::2])}


def searched_rows() -> list[dict]:
    """Two fine-tuning configurations, two seeds each: lr 0.01 is best on validation (and dominates lr 0.005
    there), lr 0.005 on test."""
    rng = random.Random(0)
    rows = []
    for lr, val, test in ((0.01, (80.0, 40.0), (70.0, 45.0)), (0.005, (75.0, 50.0), (78.0, 35.0))):
        for seed in (0, 1):
            config = trial_config("finetune", "digits", seed, lr=lr)
            rows.append(robustness_row(f"ft_{lr:g}_{seed}", config, val, test, rng) | {"run": "r", "refit": False})
    return rows


def refit_rows(lr: float, test: tuple[float, float]) -> list[dict]:
    rng = random.Random(1)
    return [robustness_row(f"refit_{seed}", trial_config("finetune", "digits", seed, lr=lr, val_fraction=0.0),
                           (0.0, 0.0), test, rng) | {"run": "r", "refit": True} for seed in (0, 1)]


def test_the_choice_is_made_on_validation_and_refit_with_the_same_seeds_on_train_and_validation():
    chosen = chosen_configurations(searched_rows())
    assert len(chosen) == 1  # lr 0.01: the best validation accuracy and the whole validation front
    choice = chosen[0]
    assert choice["method"] == "finetune" and choice["val_clean_acc"] == pytest.approx(80.0)
    assert {config["lr"] for config in choice["configs"]} == {0.01}
    assert sorted(config["seed"] for config in choice["configs"]) == [0, 1]
    assert all(config["val_fraction"] == 0.0 for config in choice["configs"])
    assert sorted(choice["trials"]) == ["ft_0.01_0", "ft_0.01_1"]
    assert any("best val accuracy" in reason for reason in choice["chosen_because"])


def test_the_pareto_set_chosen_on_validation_is_refit_too():
    rows = searched_rows()
    for row in rows:  # lr 0.005: less accurate but more robust on validation, so on the front
        if row["lr"] == 0.005:
            row["val_asr"] = 10.0
    chosen = {config["lr"] for choice in chosen_configurations(rows) for config in choice["configs"]}
    assert chosen == {0.01, 0.005}


def test_the_report_shows_the_refit_test_numbers_of_the_chosen_configuration_and_says_so():
    analysis = analyse(searched_rows() + refit_rows(0.01, (91.0, 12.0)))
    best = analysis.table["finetune"]["digits"]
    assert best.config["lr"] == 0.01 and best.refit  # chosen on validation, not test (lr 0.005 is best there)
    assert best.stats["test_clean_acc"].mean == pytest.approx(91.0) and best.stats["test_asr"].mean == 12.0
    assert best.stats["val_clean_acc"].mean == pytest.approx(80.0)  # what chose it: the searched trials
    assert {row["trial_id"] for row in best.rows} == {"refit_0", "refit_1"}  # figures plot the refit models
    assert [r.config["lr"] for r in analysis.fronts["digits"]] == [0.01]
    other = next(r for r in analysis.results if r.config["lr"] == 0.005)
    assert not other.refit and other.stats["test_clean_acc"].mean == pytest.approx(78.0)
    summary = summary_record(analysis, [], {}, [])
    assert any("Refit (--refit)" in note for note in summary["selection"])
    assert summary["results_table"]["rows"]["finetune"]["digits"]["test_from_refit"] is True
    assert summary["evaluated_checkpoints"] == 6 and summary["refit_checkpoints"] == 2
    assert "(refit)" in front_digest(summary)[1]


def test_fixed_published_settings_say_no_selection_not_selection_used_test():
    rows = [row | {"val_fraction": 0.0, "selection_split": "test"} for row in refit_rows(0.01, (80.0, 20.0))]
    rows = [row | {"refit": False} for row in rows]
    notes = summary_record(analyse(rows, fixed_runs=frozenset({"r"})), [], {}, [])["selection"]
    assert any("Fixed published settings, no selection" in note for note in notes)
    assert not any("Selection used the test split" in note for note in notes)
    assert any("Selection used the test split" in note
               for note in summary_record(analyse(rows), [], {}, [])["selection"])


def test_refit_needs_a_validation_split_and_the_final_stage(tmp_path):
    with pytest.raises(UserError, match="--refit chooses on the final stage"):
        run_sweep(space="paper_grid", method="finetune", refit=True, no_attack=True, storage=str(tmp_path))
    with pytest.raises(UserError, match="val_fraction = 0"):
        run_sweep(space="paper_grid", method="finetune", refit=True, storage=str(tmp_path), dataset="digits",
                  set={"val_fraction": 0})


@pytest.fixture
def fresh_ray():
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("search", ["grid", "random", "optuna"])
def test_a_refit_sweep_retrains_the_choice_on_train_and_validation(tmp_path, fresh_ray, search):
    samples = {"grid": 1, "random": 2, "optuna": 2}[search]
    result = run_sweep(space="paper_grid", method="finetune", search=search, num_samples=samples, iters=4,
                       refit=True, storage=str(tmp_path), name=search, **TINY_SETTINGS
                       | {"set": TINY_SETTINGS["set"] | ({"lr": 0.01, "momentum": 0.9} if search == "grid" else {})})
    rows = result.robustness.to_dict("records")
    searched = [row for row in rows if not row["refit"]]
    refit = [row for row in rows if row["refit"]]
    record = json.loads((Path(tmp_path) / search / "refit.json").read_text())
    configs = [config for choice in record["configurations"] for config in choice["configs"]]
    assert record["chosen_on"] == "val" and len(refit) == len(configs) >= 1
    for row in refit:  # each refit model: a chosen searched trial's config on training + validation images
        assert row["val_fraction"] == 0.0 and row["selection_split"] == "test"
        assert math.isnan(row.get("val_clean_acc", math.nan))  # it trained on the validation images
        twin = next(s for s in searched if all(s[k] == row[k] for k in ("lr", "momentum", "weight_decay", "seed")))
        assert twin["val_fraction"] == 0.1
    searched_data = build_transfer_data("digits", fraction=0.1, val_fraction=0.1)
    refit_data = build_transfer_data("digits", fraction=0.1, val_fraction=0.0)
    assert len(refit_data.train) > len(searched_data.train) and refit_data.val is None
    summary = result.summary
    best = summary["results_table"]["rows"]["finetune"]["digits"]
    assert best["test_from_refit"] is True
    refit_test = [row["test_clean_acc"] for row in refit if f"{search}/{row['trial_id']}" in best["trials"]]
    assert len(refit_test) == len(best["seeds"])
    assert best["test"]["clean_acc"]["mean"] == pytest.approx(sum(refit_test) / len(refit_test))
    assert any("Refit (--refit)" in note for note in summary["selection"])
    assert "refit model" in (Path(result.report) / "summary.md").read_text()
