"""What a sweep prints and leaves behind: a live status (in place on a terminal, plain lines in a log), Ray's own
output in RUN_DIR/ray.log, one small checkpoint per finished trial, validation ASR at every evaluation, MLflow
runs when asked, and a refusal to reuse a run name."""
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial

from tests.test_sweep import TINY
from trainables.checkpoint import CHECKPOINT_FILE, MODEL_FILE
from tuner import progress
from tuner.progress import CLEAR_LINE, LiveStatus
from tuner.run_dir import RAY_LOG

RAY_CHATTER = ("Configuration for experiment", "snapshotting", "TensorBoard", "Token authentication")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def trial(trial_id: str, **result) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"method": "delta", "lambda_feat": 0.1}, last_result=result,
                           status=Trial.PENDING)


def replay(status: LiveStatus, earlier: tuple = ()) -> None:
    """Two trials (beside `earlier` ones, ended before a resume): both start, one reports twice in quick
    succession, then both end. Like Tune, a trial's status changes only after its callback."""
    first, second = trial("t1"), trial("t2")
    trials = [*earlier, first, second]
    status.on_trial_start(0, trials, first)
    first.status = Trial.RUNNING
    status.on_trial_start(0, trials, second)
    second.status = Trial.RUNNING
    for iteration, accuracy in ((5, 40.0), (10, 50.0)):
        first.last_result = {"iteration": iteration, "total_iters": 10, "val_acc": accuracy, "val_asr": 20.0}
        status.on_trial_result(0, trials, first, first.last_result)
    second.last_result = {"iteration": 10, "total_iters": 10, "val_acc": 30.0}
    status.on_trial_result(0, trials, second, second.last_result)
    status.on_trial_complete(0, trials, first)
    first.status = Trial.TERMINATED
    status.on_trial_error(0, trials, second)
    second.status = Trial.ERROR
    status.on_experiment_end(trials)


def test_live_status_in_a_log_is_one_plain_line_per_change(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress, "console", lambda: log)
    replay(LiveStatus({"lambda_feat"}, 2, "val"))
    lines = log.getvalue().splitlines()
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()
    assert [line for line in lines if "started" in line] == [
        "[0/2 done, 1 running] t1 method=delta lambda_feat=0.1 started",
        "[0/2 done, 2 running] t2 method=delta lambda_feat=0.1 started"]
    progress_lines = [line for line in lines if "/10 " in line and "done]" not in line]
    # the second report of t1 came within LOG_INTERVAL_S of the first: not written
    assert progress_lines == ["[0/2 done, 2 running] t1 5/10 val clean 40.00% val ASR 20.00%",
                              "[0/2 done, 2 running] t2 10/10 val clean 30.00%"]
    assert lines[-2].startswith("[1/2 done] t1 method=delta lambda_feat=0.1 finished: val clean 50.00% val ASR "
                                "20.00% | best finished 50.00% (t1")
    assert lines[-1].startswith("[2/2 done] t2 method=delta lambda_feat=0.1 FAILED: val clean 30.00%")


def test_best_so_far_counts_finished_trials_only_so_it_never_falls(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress, "console", lambda: log)
    status = LiveStatus({"lambda_feat"}, 3, "val")
    leader, stopped, finisher = trial("t1"), trial("t2"), trial("t3")
    trials = [leader, stopped, finisher]
    for each in trials:
        status.on_trial_start(0, trials, each)
        each.status = Trial.RUNNING
    leader.last_result = {"iteration": 5, "total_iters": 10, "val_acc": 90.0}  # an interim number
    status.on_trial_result(0, trials, leader, leader.last_result)
    stopped.last_result = {"iteration": 5, "total_iters": 10, "val_acc": 80.0}
    status.on_trial_result(0, trials, stopped, stopped.last_result)
    status.on_trial_complete(0, trials, stopped)  # stopped early by the scheduler: not a result
    stopped.status = Trial.TERMINATED
    finisher.last_result = {"iteration": 10, "total_iters": 10, "val_acc": 60.0}
    status.on_trial_result(0, trials, finisher, finisher.last_result)
    status.on_trial_complete(0, trials, finisher)
    finisher.status = Trial.TERMINATED
    leader.last_result = {"iteration": 10, "total_iters": 10, "val_acc": 70.0}
    status.on_trial_result(0, trials, leader, leader.last_result)
    status.on_trial_complete(0, trials, leader)
    bests = [line.split("| best finished ")[1] for line in log.getvalue().splitlines() if "done]" in line
             and "| best finished" in line]
    assert [best.split(" (")[0] for best in bests] == ["none yet", "60.00%", "70.00%"]


def test_a_resumed_sweep_counts_the_trials_ended_before(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress, "console", lambda: log)
    finished_before = SimpleNamespace(trial_id="t0", config={}, last_result={}, status=Trial.TERMINATED)
    replay(LiveStatus({"lambda_feat"}, 3, "val"), earlier=(finished_before,))
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("[1/3 done, 1 running] t1") and lines[-1].startswith("[3/3 done] t2")


def terminal_replay(monkeypatch, columns: int) -> str:
    terminal = Terminal()
    monkeypatch.setattr(progress, "console", lambda: terminal)
    monkeypatch.setattr(progress.shutil, "get_terminal_size", lambda: SimpleNamespace(columns=columns))
    replay(LiveStatus({"lambda_feat"}, 2, "val"))
    return terminal.getvalue()


def status_lines(text: str) -> list[str]:
    return [chunk for chunk in text.replace("\n", CLEAR_LINE).split(CLEAR_LINE) if "running]" in chunk]


def test_live_status_on_a_terminal_redraws_one_line(monkeypatch):
    text = terminal_replay(monkeypatch, columns=200)
    permanent = text.split("\n")[:-1]  # lines that stay: one per ended trial
    assert len(permanent) == 2 and "t1 method=delta lambda_feat=0.1 finished" in permanent[0]
    # every report redraws the status line, the running trials' progress on it
    assert any("t1 10/10 val clean 50.00% val ASR 20.00% · t2 starting" in line for line in status_lines(text))
    assert text.endswith(CLEAR_LINE)  # the status line is cleared when the experiment ends
    narrow = terminal_replay(monkeypatch, columns=60)
    assert all(len(line) <= 59 for line in status_lines(narrow))  # never wraps, so \r can redraw it


def test_ray_output_goes_to_the_log_and_the_console_keeps_its_own_lines(tmp_path):
    log = tmp_path / "ray.log"
    script = ("import os, subprocess, sys\n"
              "from pathlib import Path\n"
              "from tuner.ray_output import console, ray_output_to\n"
              f"with ray_output_to(Path({str(log)!r})):\n"
              "    print('python print')\n"
              "    os.write(2, b'c-level stderr\\n')\n"
              "    subprocess.run(['echo', 'child process'])\n"
              "    console().write('status line\\n')\n"
              "print('after the block')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "status line\nafter the block\n" and result.stderr == ""
    assert log.read_text().splitlines() == ["python print", "c-level stderr", "child process"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    storage = tmp_path_factory.mktemp("console")
    command = [sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", "tiny", *TINY,
               "--space", "lambda_feat_quick", "--method", "delta", "--iters", "6",
               "--mlflow-uri", f"file://{storage / 'mlruns'}"]
    # MLflow 3 wants a database for new stores; its documented opt-out keeps this test to a local folder
    environment = os.environ | {"MLFLOW_ALLOW_FILE_STORE": "true"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return storage, result


@pytest.mark.slow
def test_console_shows_progress_and_ray_output_is_in_the_log(tiny_sweep):
    storage, result = tiny_sweep
    assert not any(chatter in result.stdout + result.stderr for chatter in RAY_CHATTER)
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert sum(" started" in line for line in lines) == 3 and sum(" finished:" in line for line in lines) == 3
    assert lines[-1].startswith(f"run directory {storage / 'tiny'}: ") and lines[-1].endswith(" MB")
    assert "Configuration for experiment" in (storage / "tiny" / RAY_LOG).read_text()


@pytest.mark.slow
def test_a_single_trial_command_keeps_rays_output_in_its_run_directory(tmp_path):
    command = [sys.executable, "-m", "tuner.train", "--storage", str(tmp_path), "--name", "one", *TINY,
               "--method", "finetune", "--iters", "6"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(chatter in result.stdout + result.stderr for chatter in RAY_CHATTER + ("View detailed results",))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("finetune on digits: val_acc ") and lines[1].startswith(f"checkpoint: {tmp_path}")
    assert len(lines) == 2 and "View detailed results" in (tmp_path / "one" / RAY_LOG).read_text()


@pytest.mark.slow
def test_finished_trials_keep_one_checkpoint_with_the_evaluation_model_only(tiny_sweep):
    storage, _ = tiny_sweep
    trial_dirs = sorted(path for path in (storage / "tiny").iterdir() if path.name.startswith("transfer_trainable"))
    assert len(trial_dirs) == 3
    for trial_dir in trial_dirs:
        checkpoints = list(trial_dir.glob("checkpoint_*"))
        assert len(checkpoints) == 1
        assert (checkpoints[0] / MODEL_FILE).is_file() and not (checkpoints[0] / CHECKPOINT_FILE).exists()


@pytest.mark.slow
def test_every_evaluation_reports_validation_asr(tiny_sweep):
    storage, _ = tiny_sweep
    for result_file in (storage / "tiny").glob("*/result.json"):
        reports = [json.loads(line) for line in result_file.read_text().splitlines()]
        assert len(reports) >= 2 and all(0 <= report["val_asr"] <= 100 for report in reports)


@pytest.mark.slow
def test_mlflow_gets_one_run_per_trial_with_its_metrics(tiny_sweep, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    storage, _ = tiny_sweep
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file://{storage / 'mlruns'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3
    assert sorted(float(run.data.params["lambda_feat"]) for run in runs) == [0.1, 1.0, 10.0]
    assert all("val_acc" in run.data.metrics and "val_asr" in run.data.metrics for run in runs)


@pytest.mark.slow
def test_a_run_name_in_use_is_refused_unless_overwritten(tiny_sweep):
    storage, _ = tiny_sweep
    again = [sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", "tiny", *TINY,
             "--space", "lambda_feat_quick", "--method", "delta", "--iters", "6", "--no-attack"]
    refused = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "--resume" in refused.stderr and "--overwrite" in refused.stderr
    assert len(list((storage / "tiny").glob("experiment_state-*.json"))) == 1
    replaced = subprocess.run(again + ["--overwrite"], capture_output=True, text=True, timeout=600)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert len(list((storage / "tiny").glob("experiment_state-*.json"))) == 1
    assert not (storage / "tiny" / "robustness.parquet").exists()  # the replaced sweep's tables are gone
    resumed = subprocess.run([sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", "tiny",
                              "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # the recorded --overwrite is not replayed
    assert len(list((storage / "tiny").glob("transfer_trainable_*/checkpoint_*"))) == 3
    assert "trials done" in resumed.stdout and " finished:" not in resumed.stdout  # nothing ran again


@pytest.mark.slow
def test_an_unusable_mlflow_uri_is_one_line_before_any_trial(tmp_path):
    command = [sys.executable, "-m", "tuner.sweep", "--storage", str(tmp_path), "--name", "nomlflow", *TINY,
               "--space", "lambda_feat_quick", "--method", "delta", "--iters", "6",
               "--mlflow-uri", f"file://{tmp_path / 'mlruns'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_FILE_STORE"})
    assert result.returncode == 2 and result.stderr.startswith("error: --mlflow-uri file://")
    assert result.stderr.strip().count("\n") == 0
