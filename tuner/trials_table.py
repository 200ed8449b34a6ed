"""RUN_DIR/trials.parquet: one row per trial of a sweep, from Ray Tune's experiment state."""
from dataclasses import asdict

from ray.tune import ExperimentAnalysis
from ray.tune.experiment import Trial

from trainables.config import resolve_config

TRIALS_TABLE = "trials.parquet"


def trial_rows(analysis: ExperimentAnalysis) -> list[dict]:
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        best_checkpoint = analysis.get_best_checkpoint(trial, metric="clean_acc", mode="max")
        clean_history = trial.metric_analysis.get("clean_acc", {})
        rows.append({
            "trial_id": trial.trial_id,
            "status": trial.status,
            **asdict(resolve_config(trial.config)),
            "clean_acc": last.get("clean_acc"),
            "best_clean_acc": clean_history.get("max"),
            "asr": last.get("asr"),
            "iteration": last.get("iteration"),
            "total_iters": last.get("total_iters"),
            "stopped_early": last.get("iteration", 0) < last.get("total_iters", 0),
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
