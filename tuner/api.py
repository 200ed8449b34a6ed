"""The sweep from Python (scripts, notebooks): the same settings and behaviour as `python -m tuner.sweep`.

    from tuner.api import run_sweep
    result = run_sweep(space="lambda_feat_quick", iters=20, storage="/tmp/runs", name="demo")
    result.trials          # pandas DataFrame: one row per trial (trials.parquet)
    result.robustness      # one row per attacked checkpoint, validation and test (robustness.parquet)
    result.result_grids    # Ray Tune's ResultGrid per run directory
    result.report          # the report folder (index.html, summary.md, figures)

Keyword arguments are the command's flags with `_` for `-` (`cpus_per_trial=0.5`, `set={"batch_size": 32}`);
a mistake raises `trainables.errors.UserError` with the command's one-line message. Call it as often as you
like in one process: Ray is started once and reused. An interrupted sweep raises `SweepInterrupted`.
"""
from dataclasses import dataclass

import pandas as pd
from ray.tune import ResultGrid

from tuner.run_dir import ROBUSTNESS_TABLE, TRIALS_TABLE, join, read_rows
from tuner.settings import SweepSettings
from tuner.sweep_run import SweepInterrupted, run_sweep_settings

__all__ = ["SweepResult", "SweepInterrupted", "run_sweep", "sweep_settings", "load_tables"]


@dataclass
class SweepResult:
    run_dirs: list[str]
    trials: pd.DataFrame
    robustness: pd.DataFrame
    result_grids: list[ResultGrid]
    report: str | None
    summary: dict | None


def sweep_settings(**settings) -> SweepSettings:
    """The command's defaults with `settings` applied, checked where the command's flags are checked."""
    return SweepSettings.from_keywords(**settings)


def load_tables(run_dirs: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials and robustness tables of these run directories, each run's rows tagged with `run_dir`."""
    trials, robustness = [], []
    for run_dir in run_dirs:
        trials += [row | {"run_dir": run_dir} for row in read_rows(join(run_dir, TRIALS_TABLE))]
        robustness += [row | {"run_dir": run_dir} for row in read_rows(join(run_dir, ROBUSTNESS_TABLE))]
    return pd.DataFrame(trials), pd.DataFrame(robustness)


def run_sweep(**settings) -> SweepResult:
    outcome = run_sweep_settings(sweep_settings(**settings))
    trials, robustness = load_tables(outcome.run_dirs)
    return SweepResult(outcome.run_dirs, trials, robustness, outcome.result_grids, outcome.report, outcome.summary)
