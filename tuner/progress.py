"""One line per finished trial: how many are done and running, and the best selection-split accuracy so far."""
from ray.tune import Callback
from ray.tune.experiment import Trial

from trainables.config import selection_metrics
from tuner.attack import stopped_early
from tuner.hyper_parameters import HYPER_PARAMETERS


def describe(config: dict, swept: set[str]) -> str:
    return " ".join(f"{key}={config[key]}" for key in HYPER_PARAMETERS if key in swept and key in config)


class ProgressCallback(Callback):
    def __init__(self, swept: set[str], expected_trials: int | None, split: str):
        self.swept = swept | {"method"}
        self.expected_trials = expected_trials
        self.split = split
        self.accuracy, self.asr = selection_metrics(split)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._print(trials, trial, "finished")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._print(trials, trial, "FAILED")

    def _print(self, trials: list[Trial], trial: Trial, outcome: str) -> None:
        result = trial.last_result or {}
        # Tune calls back before it updates `trial.status`: count this trial as done, not running.
        others = [t for t in trials if t is not trial]
        done = 1 + sum(t.status in (Trial.TERMINATED, Trial.ERROR) for t in others)
        running = sum(t.status == Trial.RUNNING for t in others)
        total = self.expected_trials or len(trials)
        score = f"{self.split} clean {result[self.accuracy]:.2f}%" if self.accuracy in result else "no result"
        if self.asr in result:
            score += f" {self.split} ASR {result[self.asr]:.2f}%"
        stopped = " (stopped early)" if stopped_early(result) else ""
        scored = [t for t in trials if (t.last_result or {}).get(self.accuracy) is not None]
        best = max(scored, key=lambda t: t.last_result[self.accuracy], default=None)
        best_text = (f"{best.last_result[self.accuracy]:.2f}% ({best.trial_id} {describe(best.config, self.swept)})"
                     if best else "none yet")
        print(f"[{done}/{total} done, {running} running] {trial.trial_id} {describe(trial.config, self.swept)} "
              f"{outcome}{stopped}: {score} | best so far {best_text}", flush=True)
