"""The final stage over a real (tiny) Ray Tune experiment: selection, the parquet table, idempotence."""
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import ray
from ray import tune

import tuner.attack as stage
from tests.conftest import tiny_config
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
    calls = []
    real = stage.evaluate_model

    def counted(model, crafted, device):
        calls.append(crafted.key)
        return real(model, crafted, device)

    monkeypatch.setattr(stage, "evaluate_model", counted)
    return calls


def test_stage_writes_one_row_per_checkpoint_and_is_idempotent(finished_sweep, monkeypatch):
    calls = count_evaluations(monkeypatch)
    top = stage.run_attack_stage(finished_sweep, "clean", top_k=1, preset="embedded", iters=5)
    assert len(top) == 1 and len(calls) == 1
    reported = {c.trial_id: c.clean_acc for c in stage.candidates(finished_sweep)}
    assert reported[top[0]["trial_id"]] == max(reported.values())

    rows = stage.run_attack_stage(finished_sweep, "all", preset="embedded", iters=5)
    assert len(rows) == 3 and len(calls) == 3  # the top-1 row was kept, not recomputed
    assert len(set(calls)) == 1  # one adversarial set for all
    table = pq.read_table(finished_sweep / stage.ROBUSTNESS_TABLE).to_pylist()
    assert sorted(row["method"] for row in table) == ["finetune", "linear", "retrain"]
    for row in table:
        assert row["attack_preset"] == "embedded" and row["attack_units"] == "pixels" and row["attack_iters"] == 5
        assert row["asr"] == pytest.approx(100 * row["fooled"] / row["clean_correct"])
        assert row["lr"] > 0 and row["iters"] == 6 and row["checkpoint_path"].endswith(tuple("0123456789"))

    again = stage.run_attack_stage(finished_sweep, "all", preset="embedded", iters=5)
    assert len(again) == 3 and len(calls) == 3


def test_cli_errors_are_one_line(finished_sweep, tmp_path):
    for args, named in ((["--run", str(tmp_path)], str(tmp_path)),
                        (["--run", str(finished_sweep), "--select", "best"], "'best'"),
                        (["--run", str(finished_sweep), "--select", "pareto"], "optuna-mo"),
                        (["--run", str(finished_sweep), "--attack", "strong"], "'strong'")):
        result = subprocess.run([sys.executable, "-m", "tuner.attack", *args], capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0 and named in result.stderr
