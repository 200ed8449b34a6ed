"""Faults injected for real into sweeps and final stages: killed trial workers, killed final stages, a driver
killed before its trials, full and read-only storage, two sweeps on one run directory. Nothing finished may be
lost, nothing half-written read, and a user's mistake costs one line."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.fs
import pyarrow.parquet as pq
import pytest

from tests.test_sweep import TINY
from trainables.errors import UserError
from tuner import run_dir as run_dir_module
from tuner.run_dir import StorageError, read_rows, write_rows
from tuner.run_lock import FINAL_STAGE_LOCK, SWEEP_LOCK, final_stage_lock, sweep_locks
from tuner.sweep import parse_settings
from tuner.sweep_run import run_sweep_settings

DELTA_GRID = ["--space", "lambda_feat", "--method", "delta", "--no-attack", "--num-cpus", "1"]


def sweep_command(storage: Path, name: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", name, *TINY, *flags]


def run(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def start(command: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"exited ({process.returncode}) before {what}: {(out + err)[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def cache_env(tmp_path: Path) -> dict:
    return os.environ | {"RENOTUNE_CACHE": str(tmp_path / "cache")}


# --- 5. two commands on one run directory ------------------------------------------------------------------------

def test_a_run_directory_lock_refuses_a_second_holder_and_dies_with_its_holder(tmp_path):
    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom tuner.run_lock import sweep_locks\n"
                               "with sweep_locks([sys.argv[1]]):\n    print('held', flush=True)\n    time.sleep(600)",
                               run_dir], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match="in use by another sweep right now"):
            with sweep_locks([run_dir]):
                pass
    finally:
        kill(holder)
    with sweep_locks([run_dir]):  # the operating system released the killed holder's lock
        assert (tmp_path / "run" / SWEEP_LOCK).exists()
        with final_stage_lock(run_dir):  # a final stage's lock is another one: tuner.attack on a running sweep
            with pytest.raises(UserError, match="another final stage"):
                with final_stage_lock(run_dir):
                    pass
        assert (tmp_path / "run" / FINAL_STAGE_LOCK).exists()


def test_a_lock_on_a_new_run_directory_leaves_nothing_when_nothing_was_written(tmp_path):
    with sweep_locks([str(tmp_path / "never-used")]):
        pass
    assert not (tmp_path / "never-used").exists()


@pytest.mark.slow  # three sweeps, two of them running at once
def test_a_second_sweep_on_a_running_sweeps_name_refuses_and_another_name_runs_beside_it(tmp_path):
    first = start(sweep_command(tmp_path, "same", *DELTA_GRID, "--iters", "30", "--max-concurrent", "1"))
    try:
        wait_for(lambda: (tmp_path / "same" / "sweep.json").exists(), first, "the first sweep's sweep.json")
        other = start(sweep_command(tmp_path, "other", *DELTA_GRID, "--iters", "6"))
        for flags in ([], ["--resume"], ["--overwrite"]):
            refusal = one_error_line(run(sweep_command(tmp_path, "same", *DELTA_GRID, "--iters", "30", *flags)))
            assert f"run directory {tmp_path / 'same'} is in use by another sweep right now" in refusal
        for process in (first, other):
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, (out + err)[-3000:]
    finally:
        for process in (first, other):
            if process.poll() is None:
                kill(process)
    same, beside = rows(tmp_path / "same" / "trials.parquet"), rows(tmp_path / "other" / "trials.parquet")
    assert len(same) == len({row["trial_id"] for row in same}) == 7
    assert all(row["status"] == "TERMINATED" and row["iteration"] == 30 for row in same)
    assert len(beside) == 7 and all(row["iteration"] == 6 for row in beside)


# --- 4. storage that refuses writes --------------------------------------------------------------------------------

class FullDisk:
    """A local file system whose writes fail as a full disk does."""

    def __init__(self):
        self.local = pyarrow.fs.LocalFileSystem()

    def __getattr__(self, name):
        return getattr(self.local, name)

    def open_output_stream(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_refused_write_is_one_error_and_the_table_before_it_stays_readable(tmp_path, monkeypatch):
    table = str(tmp_path / "trials.parquet")
    write_rows([{"trial_id": "a", "iteration": 6}], table)
    monkeypatch.setattr(run_dir_module, "_filesystem", lambda where: (FullDisk(), str(where)))
    with pytest.raises(StorageError) as refused:
        write_rows([{"trial_id": "a", "iteration": 6}, {"trial_id": "b", "iteration": 6}], table)
    assert str(refused.value) == f"cannot write {table}: No space left on device"
    monkeypatch.undo()
    assert read_rows(table) == [{"trial_id": "a", "iteration": 6}]
    assert [path.name for path in tmp_path.iterdir()] == ["trials.parquet"]


def mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow  # four sweeps and a final stage
def test_a_full_then_read_only_storage_is_one_line_and_resume_finishes_once_there_is_room(tmp_path):
    storage = tmp_path / "small"
    if not mount_tmpfs(storage, "200k"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the simulated full disk is tested above")
    try:
        full = one_error_line(run(sweep_command(storage, "full", *DELTA_GRID, "--iters", "6")))
        assert full == (f"error: storage {storage / 'full'}: No space left on device; free space or make it "
                        f"writable, then continue with: python -m tuner.sweep --resume --name full --storage {storage}")
        subprocess.run(["mount", "-o", "remount,size=100m", str(storage)], check=True)
        resumed = run([sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", "full", "--resume"])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        finished = rows(storage / "full" / "trials.parquet")
        assert len(finished) == 7 and all(row["status"] == "TERMINATED" for row in finished)

        subprocess.run(["mount", "-o", "remount,ro", str(storage)], check=True)
        read_only = one_error_line(run(sweep_command(storage, "another", *DELTA_GRID, "--iters", "6")))
        assert read_only == f"error: cannot create {storage / 'another'}: Read-only file system"
        attack = one_error_line(run([sys.executable, "-m", "tuner.attack", "--run", str(storage / "full")]))
        assert attack == f"error: cannot lock {storage / 'full' / FINAL_STAGE_LOCK}: Read-only file system"
        assert rows(storage / "full" / "trials.parquet") == finished  # what was written stays readable
        assert not list(storage.rglob("*.partial"))
    finally:
        subprocess.run(["umount", str(storage)], check=True)


# --- 3. the driver killed before any trial started -----------------------------------------------------------------

def test_resume_where_no_sweep_recorded_its_settings_says_what_to_run(tmp_path):
    settings = parse_settings(["--resume", "--name", "gone", "--storage", str(tmp_path)])
    with pytest.raises(UserError, match="run the same command again without --resume"):
        run_sweep_settings(settings)


@pytest.mark.slow  # two sweeps, one killed while its source model pretrains
def test_a_sweep_killed_while_it_warms_up_resumes(tmp_path):
    env = cache_env(tmp_path)  # an empty cache: the source model is pretrained before any trial
    killed = start(sweep_command(tmp_path, "early", *DELTA_GRID, "--iters", "6", "--set", "source_iters=100"), env)
    wait_for(lambda: (tmp_path / "early" / "sweep.json").exists(), killed, "sweep.json")
    kill(killed)
    assert not list((tmp_path / "early").glob("experiment_state*"))  # Tune had not started
    resumed = run([sys.executable, "-m", "tuner.sweep", "--storage", str(tmp_path), "--name", "early", "--resume"],
                  env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = rows(tmp_path / "early" / "trials.parquet")
    assert len(finished) == 7 and all(row["iteration"] == 6 and row["source_iters"] == 100 for row in finished)


# --- 2. the final stage killed -------------------------------------------------------------------------------------

@pytest.mark.slow  # a sweep and four final stages, two of them killed
def test_a_final_stage_killed_while_crafting_and_while_scoring_finishes_without_rescoring(tmp_path):
    env = cache_env(tmp_path)
    assert run(sweep_command(tmp_path, "done", *DELTA_GRID, "--iters", "6"), env).returncode == 0
    attack = [sys.executable, "-m", "tuner.attack", "--run", str(tmp_path / "done"), "--select", "all",
              "--attack-iters", "60"]
    adversarial = tmp_path / "cache" / "adversarial"

    crafting = start(attack, env)
    wait_for(lambda: adversarial.is_dir() and any(path.is_dir() for path in adversarial.iterdir()), crafting,
             "an adversarial set being crafted")
    time.sleep(0.5)
    kill(crafting)
    entries = [path for path in adversarial.iterdir() if path.is_dir()]
    assert entries and not any((entry / "manifest.json").exists() for entry in entries)  # partial, unsealed
    table = tmp_path / "done" / "robustness.parquet"
    assert not table.exists()

    scoring = start(attack, env)
    wait_for(table.exists, scoring, "the first robustness rows")
    kill(scoring)
    scored_before = rows(table)
    assert 1 <= len(scored_before) < 7

    finished = run(attack, env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "damaged" not in finished.stderr
    scored = rows(table)
    assert len(scored) == len({row["checkpoint_path"] for row in scored}) == 7
    by_checkpoint = {row["checkpoint_path"]: row for row in scored}
    for row in scored_before:  # scored once: the rows written before the kill are the ones kept
        assert by_checkpoint[row["checkpoint_path"]]["evaluated_at"] == row["evaluated_at"]
    for entry in adversarial.iterdir():
        if entry.is_dir():
            manifest = json.loads((entry / "manifest.json").read_text())
            assert sum(shard["count"] for shard in manifest["shards"]) == manifest["count"]


# --- 1. a trial's worker killed ------------------------------------------------------------------------------------

def trial_worker(driver: subprocess.Popen) -> psutil.Process | None:
    """The Ray worker process running the sweep's trial (a function trainable runs in an ImplicitFunc actor)."""
    for child in psutil.Process(driver.pid).children(recursive=True):
        try:
            if "ImplicitFunc" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def reported_iterations(run_dir: Path) -> list[int]:
    """The trial's reports so far ([] before the driver has logged its first: the checkpoint can come first)."""
    results = list(run_dir.glob("*/result.json"))
    assert len(results) <= 1, results
    lines = results[0].read_text().splitlines() if results else []
    return [json.loads(line)["iteration"] for line in lines if line.strip()]


@pytest.mark.slow  # a sweep whose trial's worker is killed mid-training
def test_a_killed_trial_worker_restarts_from_its_checkpoint_and_the_trial_is_listed_once(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text("methods: [delta]\nparameters:\n  lambda_feat: {grid: [1.0]}\n")
    # asha writes every checkpoint_every checkpoint at once (a fifo sweep paces them at least 60 s apart)
    sweep = start(sweep_command(tmp_path, "killed", "--space", str(space), "--scheduler", "asha", "--no-attack",
                                "--num-cpus", "1", "--iters", "400", "--set", "eval_every=20",
                                "--set", "checkpoint_every=40"))
    run_dir = tmp_path / "killed"
    try:
        wait_for(lambda: list(run_dir.glob("*/checkpoint_*")) and max(reported_iterations(run_dir), default=0) >= 80,
                 sweep, "a checkpoint and 80 iterations")
        worker = trial_worker(sweep)
        assert worker is not None
        before = reported_iterations(run_dir)
        worker.kill()
        out, err = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, (out + err)[-3000:]
    finally:
        if sweep.poll() is None:
            kill(sweep)
    failure = next(run_dir.glob("*/error.txt")).read_text()
    assert "actor died unexpectedly" in failure and f"pid: {worker.pid}" in failure, failure  # Tune retried it
    iterations = reported_iterations(run_dir)
    assert before[-1] < 400, before  # killed mid-training
    # one trial's reports in one sequence: continued from the checkpoint, never again from the start
    assert iterations[:len(before)] == before and iterations == sorted(set(iterations)), (before, iterations)
    assert iterations[-1] == 400
    (row,) = rows(run_dir / "trials.parquet")
    assert row["status"] == "TERMINATED" and row["iteration"] == 400
