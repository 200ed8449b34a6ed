"""The sweep's live console: which trials run, how far they are, their latest selection-split numbers, how
many finished and the best so far (among trials that finished their schedule: what selection can choose, so
it only ever rises; a running trial's interim number, or an early-stopped trial's, is not a result).

On a terminal one status line is redrawn in place and each finished trial leaves one permanent line; in a
log file or a pipe every change is one plain line with no escape codes: a trial started or ended, and a running
trial's progress at most every LOG_INTERVAL_S.
"""
import math
import shutil
import time
from typing import TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial

from trainables.config import selection_metrics
from tuner.attack_stage import stopped_early
from tuner.hyper_parameters import HYPER_PARAMETERS
from tuner.ray_output import console

CLEAR_LINE = "\r\x1b[K"
# In a log, a running trial's progress is written at most this often (its start and end always).
LOG_INTERVAL_S = 30.0


def describe(config: dict, swept: set[str]) -> str:
    return " ".join(f"{key}={config[key]}" for key in HYPER_PARAMETERS if key in swept and key in config)


def ended(trials: list[Trial]) -> int:
    return sum(trial.status in (Trial.TERMINATED, Trial.ERROR) for trial in trials)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LiveStatus(Callback):
    def __init__(self, swept: set[str], expected_trials: int | None, split: str):
        self.swept = swept | {"method"}
        self.expected_trials = expected_trials
        self.split = split
        self.accuracy, self.asr = selection_metrics(split)
        self.running: dict[str, Trial] = {}
        self.done = 0  # from the trials' statuses, so a resumed sweep counts the trials finished before
        self.logged_at: dict[str, float] = {}  # when each trial's progress was last written to a log
        self.finished: dict[str, tuple[float, Trial]] = {}  # each finished, not stopped trial's last accuracy

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self.done = ended(trials)
        self.running[trial.trial_id] = trial
        self._changed(f"{trial.trial_id} {describe(trial.config, self.swept)} started")

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info) -> None:
        self.done = ended(trials)
        self.running[trial.trial_id] = trial
        now = time.monotonic()
        if is_terminal(console()) or now - self.logged_at.get(trial.trial_id, -math.inf) >= LOG_INTERVAL_S:
            self.logged_at[trial.trial_id] = now
            self._changed(f"{trial.trial_id} {self._progress(trial, result)}")

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        result = trial.last_result or {}
        if result.get(self.accuracy) is not None and not stopped_early(result):
            self.finished[trial.trial_id] = (result[self.accuracy], trial)
        self._ended(trials, trial, "finished")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._ended(trials, trial, "FAILED")

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        if is_terminal(console()):
            self._write(CLEAR_LINE)

    def _ended(self, trials: list[Trial], trial: Trial, outcome: str) -> None:
        self.running.pop(trial.trial_id, None)
        # Tune calls back before it updates `trial.status`: this one counts as ended, whatever it says.
        self.done = 1 + ended([other for other in trials if other is not trial])
        result = trial.last_result or {}
        stopped = " (stopped early)" if stopped_early(result) else ""
        line = (f"[{self.done}/{self._total()} done] {trial.trial_id} {describe(trial.config, self.swept)} "
                f"{outcome}{stopped}: {self._scores(result)} | best finished {self._best_text()}")
        if is_terminal(console()):
            self._write(f"{CLEAR_LINE}{line}\n{self._status_line()}")
        else:
            self._write(line + "\n")

    def _changed(self, event: str) -> None:
        if is_terminal(console()):
            self._write(CLEAR_LINE + self._status_line())
        else:
            self._write(f"[{self.done}/{self._total()} done, {len(self.running)} running] {event}\n")

    def _status_line(self) -> str:
        running = " · ".join(f"{trial.trial_id} {self._progress(trial, trial.last_result or {})}"
                             for trial in self.running.values())
        line = (f"[{self.done}/{self._total()} done, {len(self.running)} running] {running} "
                f"| best finished {self._best_text()}")
        width = shutil.get_terminal_size().columns - 1
        return line if len(line) <= width else line[:width - 1] + "…"

    def _progress(self, trial: Trial, result: dict) -> str:
        if "iteration" not in result:
            return "starting"
        return f"{result['iteration']}/{result.get('total_iters', '?')} {self._scores(result)}"

    def _scores(self, result: dict) -> str:
        if self.accuracy not in result:
            return "no result"
        text = f"{self.split} clean {result[self.accuracy]:.2f}%"
        return text + (f" {self.split} ASR {result[self.asr]:.2f}%" if self.asr in result else "")

    def _best_text(self) -> str:
        if not self.finished:
            return "none yet"
        accuracy, trial = max(self.finished.values(), key=lambda entry: entry[0])
        return f"{accuracy:.2f}% ({trial.trial_id} {describe(trial.config, self.swept)})"

    def _total(self) -> int | str:
        return self.expected_trials or "?"

    @staticmethod
    def _write(text: str) -> None:
        stream = console()
        stream.write(text)
        stream.flush()
