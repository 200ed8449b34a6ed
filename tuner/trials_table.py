"""RUN_DIR/trials.parquet: one row per trial of a sweep, from Ray Tune's experiment state."""
from dataclasses import asdict

from ray.tune import ExperimentAnalysis
from ray.tune.experiment import Trial

from trainables.config import resolve_config, selection_metrics
from tuner.attack_stage import stopped_early


def trial_rows(analysis: ExperimentAnalysis) -> list[dict]:
    """The trials' own numbers are on their selection split (validation, or test where val_fraction = 0):
    the columns are named after it."""
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        config = resolve_config(trial.config)
        accuracy, asr = selection_metrics(config.selection_split)
        # A trial stopped before its first checkpoint has none; asked, Ray would log an error for it.
        best_checkpoint = analysis.get_best_checkpoint(trial, metric=accuracy, mode="max") if trial.checkpoint else None
        rows.append({
            "trial_id": trial.trial_id,
            "status": trial.status,
            **asdict(config),
            "selection_split": config.selection_split,
            accuracy: last.get(accuracy),
            f"best_{accuracy}": trial.metric_analysis.get(accuracy, {}).get("max"),
            asr: last.get(asr),
            "iteration": last.get("iteration"),
            "total_iters": last.get("total_iters"),
            "stopped_early": stopped_early(last),
            "best_checkpoint": best_checkpoint.path if best_checkpoint else None,
            "node_id": last.get("node_id"),
            "node_ip": last.get("node_ip"),
            "device": last.get("device"),
            "gpu_ids": last.get("gpu_ids"),
            "started_at": last.get("trial_started_at"),
            "ended_at": last.get("reported_at"),
            "wall_s": last.get("time_total_s"),
            "error": str(trial.error_file) if trial.error_file else None,
        })
    return rows


def unfinished(analysis: ExperimentAnalysis) -> list[str]:
    """Trials neither terminated nor errored: the sweep was interrupted and can be resumed."""
    return [trial.trial_id for trial in analysis.trials if trial.status not in (Trial.TERMINATED, Trial.ERROR)]
