"""--refit: the configurations a sweep chose on its validation split, re-trained on the full training split.

scikit-learn's `GridSearchCV(refit=True)` protocol: selection reads validation numbers only; the chosen
configurations (each method's best by mean validation accuracy and the Pareto set of mean validation accuracy
and ASR, per dataset: what the report shows) are then trained again on training + validation images
(val_fraction = 0) with the same seeds, and their test numbers are the ones reported. The refit trials are a Ray
Tune experiment of their own in RUN_DIR/refit (resumable like the sweep); the final stage scores them into
RUN_DIR/robustness.parquet with `refit` true, and the report shows them in place of the searched trials' test
numbers.
"""
from ray import tune
from ray.tune.search import BasicVariantGenerator

from trainables.config import CONFIG_KEYS
from trainables.trainable import transfer_trainable
from tuner.progress import LiveStatus
from tuner.report_analysis import analyse, json_safe
from tuner.run_dir import REFIT_EXPERIMENT, REFIT_RECORD, join, write_json

REFIT_MIN_CHECKPOINT_INTERVAL_S = 60.0


def chosen_configurations(rows: list[dict], include_stopped: bool = False,
                          min_accuracy: float | None = None) -> list[dict]:
    """The configurations the report would show, chosen on validation among the searched trials' robustness rows:
    each with why it was chosen, its validation means and the trials (one per seed) it stands for."""
    analysis = analyse([row | {"run": ""} for row in rows if not row.get("refit")], include_stopped, min_accuracy)
    reasons: dict[int, list[str]] = {}
    results = {}
    for group, front in analysis.fronts.items():
        for result in front:
            results[id(result)] = result
            reasons.setdefault(id(result), []).append(f"Pareto set of {group} on val")
    for label, cells in analysis.table.items():
        for group, result in cells.items():
            results[id(result)] = result
            reasons.setdefault(id(result), []).append(f"best val accuracy of {label} on {group}")
    return [{"method": r.method, "group": r.group, "label": r.label, "chosen_because": reasons[key],
             "val_clean_acc": r.stats["val_clean_acc"].mean, "val_asr": r.stats["val_asr"].mean,
             "trials": [row["trial_id"] for row in r.rows], "configs": [refit_config(row) for row in r.rows]}
            for key, r in results.items()]


def refit_config(row: dict) -> dict:
    """The searched trial's whole resolved config, on training + validation images."""
    return {key: row[key] for key in CONFIG_KEYS if key in row} | {"val_fraction": 0.0}


def refit_tuner(run_dir: str, chosen: list[dict], resources: dict, max_concurrent: int | None,
                verbose: bool) -> tune.Tuner:
    """The refit trials' Tuner: restored where an earlier run started them, else new, one trial per config."""
    trainable = tune.with_resources(tune.with_parameters(
        transfer_trainable, min_checkpoint_interval_s=REFIT_MIN_CHECKPOINT_INTERVAL_S), resources)
    experiment = join(run_dir, REFIT_EXPERIMENT)
    if tune.Tuner.can_restore(experiment):
        return tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
    configs = [config for choice in chosen for config in choice["configs"]]
    write_json(json_safe({"chosen_on": "val", "configurations": chosen}), join(run_dir, REFIT_RECORD))
    return tune.Tuner(
        trainable, param_space=dict(configs[0]),  # every key present: the points below replace its values
        run_config=tune.RunConfig(
            name=REFIT_EXPERIMENT, storage_path=run_dir, verbose=1 if verbose else 0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), failure_config=tune.FailureConfig(max_failures=2),
            callbacks=[LiveStatus({"seed"}, len(configs), "test")],
        ),
        # Each point is one whole config: the searcher hands them out in order, one trial each.
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=configs),
                                    num_samples=len(configs), max_concurrent_trials=max_concurrent, reuse_actors=True),
    )
