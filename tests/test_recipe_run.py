"""A paper recipe end to end on tiny copies of the five official dataset layouts: every dataset loads at
224 px through the real transforms, trials run, the final stage attacks them with the paper preset, and the
report sets the published numbers beside the measured ones."""
import subprocess
import sys

import pyarrow.parquet as pq

from tests.layouts import MAKERS
from trainables.data.registry import PAPER_DATASETS


def test_table2_recipe_runs_on_every_paper_dataset(tmp_path):
    data_root = tmp_path / "data"
    for name in PAPER_DATASETS:
        MAKERS[name](data_root / name)  # one folder holding every archive: the layouts are found below it
    command = [sys.executable, "-m", "tuner.sweep", "--recipe", "table2", "--name", "t2", "--storage",
               str(tmp_path / "runs"), "--data-root", str(data_root), "--arch", "resnet18_w8", "--iters", "2",
               "--set", "source_images=400", "--set", "source_iters=20", "--set", "batch_size=4",
               "--set", "num_workers=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.read_table(tmp_path / "runs" / "t2-table2" / "robustness.parquet").to_pylist()
    assert len(rows) == 25
    assert {(row["method"], row["dataset"]) for row in rows} == {
        (method, dataset) for method in ("linear", "finetune", "l2sp", "delta", "retrain") for dataset in PAPER_DATASETS}
    assert all(row["attack_preset"] == "paper" and row["attack_budget"] == 0.4 for row in rows)
    assert all(row["arch"] == "resnet18_w8" and row["iters"] == 2 for row in rows)
    comparison = (tmp_path / "runs" / "t2-table2" / "report" / "paper_comparison.md").read_text()
    assert "84.22" in comparison and "96.06" in comparison  # Table 2, linear on dogs: published clean / ASR
