"""The Python API: run_sweep returns the tables as DataFrames, the ResultGrids and the report, runs repeatedly in
one process, checks its settings like the command line; the example script that shows it runs."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

from tests.test_sweep import TINY
from trainables.errors import UserError
from tuner.api import run_sweep, sweep_settings
from tuner.cli import parse_assignments

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "api_sweep.py"
TINY_SETTINGS = {"dataset": "digits", "set": parse_assignments(TINY[3::2])}


@pytest.fixture
def fresh_ray():
    yield
    ray.shutdown()  # other tests start their own


@pytest.mark.slow
def test_run_sweep_twice_in_one_process(tmp_path, fresh_ray):
    first = run_sweep(space="lambda_feat_quick", method="delta", iters=4, storage=str(tmp_path), name="first",
                      **TINY_SETTINGS)
    assert isinstance(first.trials, pd.DataFrame) and len(first.trials) == 3
    assert sorted(first.trials["lambda_feat"]) == [0.1, 1.0, 10.0]
    assert len(first.robustness) == 3 and {"val_asr", "test_asr"} <= set(first.robustness.columns)
    assert len(first.result_grids) == 1 and len(first.result_grids[0]) == 3
    assert (Path(first.report) / "summary.md").is_file() and first.summary is not None
    second = run_sweep(space="lambda_feat_quick", method="renofeation", iters=4, storage=str(tmp_path),
                       name="second", no_attack=True, **TINY_SETTINGS)
    assert len(second.trials) == 3 and second.robustness.empty and second.report is None
    assert set(second.trials["method"]) == {"renofeation"} and set(first.trials["method"]) == {"delta"}


@pytest.mark.parametrize("settings, named", [
    ({"search": "gird"}, "'gird'"),
    ({"num_samples": 0}, "--num-samples 0"),
    ({"lambda": 1}, "'lambda'"),
])
def test_settings_are_checked_like_flags(settings, named):
    with pytest.raises(UserError, match=named):
        sweep_settings(**settings)


@pytest.mark.slow
def test_the_api_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLE), "--storage", str(tmp_path), "--iters", "4"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best by validation accuracy (Ray's ExperimentAnalysis):" in result.stdout
    assert "trials in the restored Tuner's ResultGrid: 3" in result.stdout
    assert (tmp_path / "delta" / "report" / "summary.md").is_file()
