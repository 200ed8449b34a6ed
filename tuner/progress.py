"""One line per finished trial: how many are done and running, and the best clean accuracy so far."""
from ray.tune import Callback
from ray.tune.experiment import Trial

KEY_PARAMETERS = ("method", "lambda_feat", "lambda_l2sp", "lr", "momentum", "weight_decay", "dropout", "swa",
                  "dropout_p", "swa_every", "seed")


def describe(config: dict, swept: set[str]) -> str:
    return " ".join(f"{key}={config[key]}" for key in KEY_PARAMETERS if key in swept and key in config)


class ProgressCallback(Callback):
    def __init__(self, swept: set[str], expected_trials: int | None):
        self.swept = swept | {"method"}
        self.expected_trials = expected_trials

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
        score = f"clean {result['clean_acc']:.2f}%" if "clean_acc" in result else "no result"
        if "asr" in result:
            score += f" ASR {result['asr']:.2f}%"
        stopped = " (stopped early)" if result.get("iteration", 0) < result.get("total_iters", 0) else ""
        scored = [t for t in trials if (t.last_result or {}).get("clean_acc") is not None]
        best = max(scored, key=lambda t: t.last_result["clean_acc"], default=None)
        best_text = (f"{best.last_result['clean_acc']:.2f}% ({best.trial_id} {describe(best.config, self.swept)})"
                     if best else "none yet")
        print(f"[{done}/{total} done, {running} running] {trial.trial_id} {describe(trial.config, self.swept)} "
              f"{outcome}{stopped}: {score} | best so far {best_text}", flush=True)
