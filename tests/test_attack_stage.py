"""The final stage over a real (tiny) Ray Tune experiment: selection, the parquet table, idempotence."""
import math
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import ray
from ray import tune
from ray.tune import Checkpoint

import tuner.attack_stage as stage
from tests.conftest import tiny_config
from trainables.config import resolve_config
from trainables.trainable import transfer_trainable


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        tune.Tuner(
            tune.with_resources(transfer_trainable, {"cpu": 1}),
            param_space={**tiny_config("finetune"), "method": tune.grid_search(["linear", "finetune", "retrain"])},
            run_config=tune.RunConfig(storage_path=str(storage), name="sweep", verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    return storage / "sweep"


def count_evaluations(monkeypatch) -> list[str]:
    """The key of each adversarial set a checkpoint was scored on, one entry per checkpoint and split."""
    calls = []
    real = stage.group_split_metrics

    def counted(group, states, crafted):
        calls.extend([crafted.key] * len(states))
        return real(group, states, crafted)

    monkeypatch.setattr(stage, "group_split_metrics", counted)
    return calls


@pytest.mark.slow
def test_stage_writes_one_row_per_checkpoint_and_is_idempotent(finished_sweep, monkeypatch):
    calls = count_evaluations(monkeypatch)
    top = stage.run_attack_stage(finished_sweep, "clean", top_k=1, preset="embedded", iters=5)
    assert len(top) == 1 and len(calls) == 2  # scored on the validation and the test split
    reported = {c.trial_id: c.selection_acc for c in stage.candidates(finished_sweep)}
    assert reported[top[0]["trial_id"]] == max(reported.values())
    assert top[0]["val_clean_acc"] == pytest.approx(reported[top[0]["trial_id"]])  # what the trial reported

    rows = stage.run_attack_stage(finished_sweep, "all", preset="embedded", iters=5)
    assert len(rows) == 3 and len(calls) == 6  # the top-1 row was kept, not recomputed
    assert len(set(calls)) == 2  # one adversarial set per split for all
    table = pq.read_table(finished_sweep / stage.ROBUSTNESS_TABLE).to_pylist()
    assert sorted(row["method"] for row in table) == ["finetune", "linear", "retrain"]
    for row in table:
        assert row["attack_preset"] == "embedded" and row["attack_units"] == "pixels" and row["attack_iters"] == 5
        assert row["attack_budget_pixels"] == row["attack_budget"]
        for split, images in (("val", 126), ("test", 540)):
            assert row[f"{split}_images"] == images
            assert row[f"{split}_asr"] == pytest.approx(100 * row[f"{split}_fooled"] / row[f"{split}_clean_correct"])
        assert row["selection_split"] == "val" and row["stopped_early"] is False
        assert row["lr"] > 0 and row["iters"] == 6 and row["checkpoint_path"].endswith(tuple("0123456789"))

    again = stage.run_attack_stage(finished_sweep, "all", preset="embedded", iters=5)
    assert len(again) == 3 and len(calls) == 6


def candidate(trial_id: str, val: float, asr: float = math.nan, stopped: bool = False) -> stage.Candidate:
    return stage.Candidate(trial_id, resolve_config({"method": "finetune"}), Checkpoint("/nowhere"), val, asr,
                           stopped)


def test_selectors_read_validation_numbers_and_skip_stopped_trials():
    found = [candidate("a", 97.0, 30.0), candidate("b", 99.0, 40.0), candidate("c", 98.0, 10.0),
             candidate("d", 99.5, 5.0, stopped=True)]
    assert [c.trial_id for c in stage.select(found, "clean", top_k=2)] == ["b", "c"]
    assert {c.trial_id for c in stage.select(found, "pareto", None)} == {"b", "c"}
    assert stage.select(found, "pareto", None, include_stopped=True)[0].trial_id == "d"
    assert len(stage.select(found, "all", None)) == 4


@pytest.mark.slow
def test_cli_errors_are_one_line(finished_sweep, tmp_path):
    for args, named in ((["--run", str(tmp_path)], str(tmp_path)),
                        (["--run", str(finished_sweep), "--select", "best"], "'best'"),
                        (["--run", str(finished_sweep), "--select", "pareto"], "optuna-mo"),
                        (["--run", str(finished_sweep), "--attack", "strong"], "'strong'")):
        result = subprocess.run([sys.executable, "-m", "tuner.attack", *args], capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0 and named in result.stderr
