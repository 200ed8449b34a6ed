"""The Ray Tune function trainable under Tuner.fit() on the embedded default."""
import pytest
import ray
from ray import tune

from tests.conftest import tiny_config
from trainables.checkpoint import is_finished_checkpoint, load_checkpoint, load_model_state
from trainables.trainable import transfer_trainable


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_trainable_reports_metrics_and_checkpoints_under_tuner(local_ray, tmp_path):
    config = tiny_config("renofeation", checkpoint_every=9)
    tuner = tune.Tuner(
        tune.with_resources(transfer_trainable, {"cpu": 1}),
        param_space={**config, "seed": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="trainable", verbose=0),
    )
    results = tuner.fit()
    assert results.num_errors == 0 and len(results) == 2
    for result in results:
        history = result.metrics_dataframe
        total = config["iters"] + config["swa_iters"]
        assert list(history["iteration"]) == [3, 6, 9, 10]  # every eval_every, and at each stage's end
        for key in ("train_loss", "feature_loss", "val_acc"):
            assert history[key].notna().all()
        assert history["val_acc"].between(0, 100).all()
        assert (history["selection_split"] == "val").all()
        assert not any(column.startswith("test_") for column in history.columns)  # test is never looked at
        assert result.metrics["device"] == "cpu" and result.metrics["iteration"] == total
        # checkpoints every checkpoint_every iterations and at the end of each stage
        assert sorted(metrics["iteration"] for _, metrics in result.best_checkpoints) == [6, 9, 10]
        with result.checkpoint.as_directory() as directory:
            # the finished run's checkpoint: the evaluation model only, nothing left to resume
            assert is_finished_checkpoint(directory)
            model = load_model_state(directory)
        assert model["iteration"] == total and model["config"]["seed"] == result.config["seed"]
        with result.best_checkpoints[0][0].as_directory() as directory:
            assert load_checkpoint(directory)["iteration"] == 6  # mid-run: the whole resume state
