"""A paper recipe end to end on tiny copies of the five official dataset layouts: every dataset loads at
224 px through the real transforms, trials run, the final stage attacks them with the paper preset, and the
report sets the published numbers beside the measured ones."""
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
import torchvision

from tests.layouts import MAKERS
from trainables.data.specs import PAPER_DATASETS


@pytest.mark.slow
def test_table2_recipe_runs_on_every_paper_dataset(tmp_path):
    data_root = tmp_path / "data"
    for name in PAPER_DATASETS:
        MAKERS[name](data_root / name)  # one folder holding every archive: the layouts are found below it
    weights = tmp_path / "resnet18.pt"  # the paper's backbone (its ImageNet weights are not here): like for like
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    # lr and momentum pinned (--set pins a swept value): the paper's grid narrowed to its two weight decays
    command = [sys.executable, "-m", "tuner.sweep", "--recipe", "table2", "--name", "t2", "--storage",
               str(tmp_path / "runs"), "--data-root", str(data_root), "--weights", str(weights), "--iters", "2",
               "--set", "batch_size=4", "--set", "num_workers=0", "--set", "lr=0.01", "--set", "momentum=0.9"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    fixed = pq.read_table(tmp_path / "runs" / "t2-table2" / "robustness.parquet").to_pylist()
    assert {(row["method"], row["dataset"]) for row in fixed} == {
        (method, dataset) for method in ("delta", "retrain") for dataset in PAPER_DATASETS}
    assert len(fixed) == 10 and all(row["val_fraction"] == 0.0 and not row["refit"] for row in fixed)
    tuned = pq.read_table(tmp_path / "runs" / "t2-table2_tuned" / "robustness.parquet").to_pylist()
    searched = [row for row in tuned if not row["refit"]]
    refit = [row for row in tuned if row["refit"]]
    assert len(searched) == 30 and {row["weight_decay"] for row in searched} == {0.0, 1e-4}
    assert all(row["val_fraction"] == 0.1 for row in searched)
    # each method's configuration chosen on validation, per dataset, re-trained on train + validation
    assert {(row["method"], row["dataset"]) for row in refit} == {
        (method, dataset) for method in ("linear", "finetune", "l2sp") for dataset in PAPER_DATASETS}
    assert all(row["val_fraction"] == 0.0 for row in refit)
    rows = fixed + tuned
    # the published numbers came from the authors' evaluation script: its preset, like for like
    assert all(row["attack_preset"] == "code" and row["attack_budget"] == 0.1 for row in rows)
    assert all(row["attack_budget_pixels"] == pytest.approx(0.1 * 0.229) for row in rows)
    assert all(row["arch"] == "resnet18" and row["iters"] == 2 for row in rows)
    comparison = (tmp_path / "runs" / "t2-table2_tuned" / "report" / "paper_comparison.md").read_text()
    linear_dog = next(line for line in comparison.splitlines() if "| table2 | linear | dog |" in line)
    assert "84.22" in linear_dog and "96.06" in linear_dog  # Table 2, linear on dogs: published clean / ASR
    assert "| code | 0.1 normalized | 0.0229 | 1 | chosen on val, refit on train + val |" in linear_dog
    delta_bird = next(line for line in comparison.splitlines() if "| table2 | delta | bird |" in line)
    assert "| 1 | fixed published settings, no selection |" in delta_bird
    assert comparison.count("| code | 0.1 normalized | 0.0229 | 1 |") == 25 and "not run" not in comparison
