"""MO-ASHA (tuner/mo_asha.py): its ranking and cutoff on planted rung results, a real optuna-mo sweep whose
stopped trials reach Optuna as PRUNED, and the offline replay benchmark (benchmarks/early_stopping.py) on a run
directory written here."""
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from benchmarks.early_stopping import hypervolume, read_grid, replay
from benchmarks.early_stopping import main as replay_main
from trainables.errors import UserError
from tuner.mo_asha import MultiObjectiveASHA, crowding_distances, front_numbers
from tuner.run_dir import ROBUSTNESS_TABLE, write_rows
from tuner.sweep_run import PruningOptunaSearch, scheduler

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
# (val_acc, val_asr) of 8 trials already at the first rung: front 0 is r1, r2, r3, r4 (r3 and r4 crowd each
# other); the rest are dominated.
PLANTED = {"r1": (90, 90), "r2": (30, 10), "r3": (50, 40), "r4": (52, 42), "r5": (85, 95), "r6": (45, 60),
           "r7": (25, 20), "r8": (40, 80)}


def trial(trial_id: str) -> Trial:
    return Trial("stub_trainable", trial_id=trial_id, stub=True)


def report(chosen, trial_id: str, acc: float, asr: float, iteration: int = 3) -> str:
    stub = trial(trial_id)
    chosen.on_trial_add(None, stub)
    return chosen.on_trial_result(None, stub, {"iteration": iteration, "val_acc": acc, "val_asr": asr})


def planted(name: str = "mo-asha"):
    """The sweep's own scheduler (27-iteration trials evaluated every 3: rungs at 3, 9, 27) with PLANTED at the
    first rung."""
    chosen = scheduler(name, longest=27, eval_every=3, split="val")
    for trial_id, (acc, asr) in PLANTED.items():
        report(chosen, trial_id, acc, asr)
    return chosen


def test_fronts_and_crowding_distance():
    points = [(3, 1), (2, 2), (1, 3), (1, 1), (0, 0)]  # both objectives maximised
    assert front_numbers(points) == [0, 0, 0, 1, 2]
    assert crowding_distances(points[:3]) == [math.inf, 2.0, math.inf]  # (3-1)/2 on each objective


def test_a_dominated_trial_is_stopped():
    assert report(planted(), "dominated", 44, 85) == STOP  # behind r3, r6 and r8 on both objectives


def test_a_robust_trial_continues_where_asha_on_accuracy_stops_it():
    # The least accurate but by far the least attackable: an end of the first front.
    assert report(planted(), "robust", 35, 5) == CONTINUE
    assert report(planted("asha"), "robust", 35, 5) == STOP


def test_crowding_distance_breaks_ties_on_the_first_front():
    # Both non-dominated; one squeezed between r3 and r4, the other alone in the gap between r4 and r1.
    assert report(planted(), "crowded", 51, 41.5) == STOP
    assert report(planted(), "spread", 75, 70) == CONTINUE


def test_cutoff_follows_ray_asha():
    chosen = scheduler("mo-asha", longest=27, eval_every=3, split="val")
    assert report(chosen, "first", 50, 50) == CONTINUE  # nothing recorded at the rung yet
    assert report(chosen, "worse", 40, 60) == STOP  # with one result recorded, a dominated one stops (as ASHA)
    assert report(chosen, "other", 30, 20) == CONTINUE  # non-dominated: both ends of the front
    assert report(chosen, "first", 10, 99, iteration=6) == CONTINUE  # judged once per rung, at the rung
    assert report(chosen, "first", 10, 99, iteration=27) == STOP  # max_t reached
    assert report(chosen, "silent", 90, math.nan, iteration=3) == CONTINUE  # best accuracy still counts
    assert report(chosen, "broken", 5, math.nan, iteration=3) == STOP  # NaN ASR ranks as the worst ASR
    stub = trial("no_asr")
    chosen.on_trial_add(None, stub)
    assert chosen.on_trial_result(None, stub, {"iteration": 3, "val_acc": 0.0}) == CONTINUE  # no decision


def test_scheduler_has_ashas_rungs_and_the_selection_splits_objectives():
    mo_asha, asha = (scheduler(name, longest=80, eval_every=4, split="val") for name in ("mo-asha", "asha"))
    assert [rung for rung, _ in mo_asha._rungs] == [rung for rung, _ in asha._brackets[0]._rungs] == [72, 24, 8]
    assert mo_asha._metrics == ["val_acc", "val_asr"] and "val_acc, val_asr" in mo_asha.debug_string()
    assert mo_asha.set_search_properties(None, None) and not mo_asha.set_search_properties("val_acc", "max")
    with pytest.raises(ValueError):
        MultiObjectiveASHA(metrics=["val_acc"], modes=["up"])


def test_hypervolume_in_two_dimensions():
    assert hypervolume([(50, 20)]) == 50 * 80
    front = [(50, 20), (80, 60)]  # strips: ASR 20..60 at accuracy 50, ASR 60..100 at 80
    assert hypervolume(front) == 40 * 50 + 40 * 80
    assert hypervolume(front + [(40, 70), (60, math.nan)]) == hypervolume(front)  # dominated and NaN add nothing
    assert hypervolume([]) == 0


TOTAL, EVAL_EVERY = 27, 3
# (final accuracy, ASR) per synthetic trial; accuracy climbs linearly to it, ASR stays put. Three robust but less
# accurate trials, six accurate and vulnerable ones.
SYNTHETIC = [(40, 10), (45, 15), (50, 25), (55, 80), (60, 85), (62, 90), (65, 92), (68, 95), (70, 97)]


def write_run_dir(run_dir: Path, with_asr: bool = True, with_test_rows: bool = True) -> None:
    rows = []
    for index, (acc, asr) in enumerate(SYNTHETIC):
        trial_id = f"t{index}"
        trial_dir = run_dir / f"transfer_trainable_{trial_id}"
        trial_dir.mkdir(parents=True)
        lines = []
        for iteration in range(EVAL_EVERY, TOTAL + 1, EVAL_EVERY):
            result = {"trial_id": trial_id, "iteration": iteration, "total_iters": TOTAL, "selection_split": "val",
                      "val_acc": acc * iteration / TOTAL, "config": {"method": "delta", "iters": TOTAL,
                                                                     "eval_every": EVAL_EVERY}}
            lines.append(json.dumps(result | ({"val_asr": asr} if with_asr else {})))
        (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
        rows.append({"trial_id": trial_id, "test_clean_acc": acc - 1.0, "test_asr": asr + 1.0})
    if with_test_rows:
        write_rows(rows, str(run_dir / ROBUSTNESS_TABLE))


def test_replay_benchmark_on_a_synthetic_grid(tmp_path, capsys):
    write_run_dir(tmp_path / "grid")
    grid = read_grid(tmp_path / "grid")
    assert (grid.longest, grid.eval_every, grid.split) == (TOTAL, EVAL_EVERY, "val")
    fifo = replay(grid, "fifo", random.Random(0), 3)
    assert fifo.iterations == TOTAL * len(SYNTHETIC) and len(fifo.finished) == len(SYNTHETIC)
    replay_main(["--run-dir", str(tmp_path / "grid"), "--replays", "4", "--concurrency", "2..3"])
    printed = capsys.readouterr().out
    table = {line.split()[0]: line for line in printed.splitlines()}
    assert "100.0 ± 0.0" in table["fifo"] and "9.0 ± 0.0" in table["fifo"]
    assert {"asha", "mo-asha"} <= set(table) and "target: MO-ASHA HV > ASHA-on-clean HV: met" in printed


@pytest.mark.parametrize("flaw, message", [({"with_asr": False}, "reported no val_asr"),
                                           ({"with_test_rows": False}, "--select all")])
def test_replay_benchmark_refuses_a_run_dir_it_cannot_replay(tmp_path, flaw, message):
    write_run_dir(tmp_path / "grid", **flaw)
    with pytest.raises(UserError, match=message):
        replay_main(["--run-dir", str(tmp_path / "grid")])


TINY = ["--dataset", "digits", "--set", "arch=resnet18_w8", "--set", "source_images=400", "--set", "source_iters=20",
        "--set", "fraction=0.1", "--set", "batch_size=16"]


@pytest.mark.slow
def test_trials_mo_asha_stops_reach_optuna_as_pruned_the_others_as_complete(tmp_path):
    # One trial at a time (a deterministic order). --iters 18 scales digits' intervals by 18/600: an evaluation
    # every 2 iterations, so rungs at 2, 6 and 18.
    command = [sys.executable, "-m", "tuner.sweep", "--storage", str(tmp_path), "--name", "mo", *TINY,
               "--space", "lambda_feat_quick", "--method", "delta", "--search", "optuna-mo", "--scheduler", "mo-asha",
               "--num-samples", "6", "--iters", "18", "--set", "eval_every=67", "--max-concurrent", "1", "--no-attack"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.read_table(tmp_path / "mo" / "trials.parquet").to_pylist()
    assert len(rows) == 6 and all(row["val_asr"] is not None for row in rows)  # ASR reported despite --no-attack
    stopped = {row["trial_id"] for row in rows if row["stopped_early"]}
    assert stopped and len(stopped) < len(rows)
    # trials stopped before their first checkpoint are in the table without one, and Ray does not say so twice
    assert any(row["best_checkpoint"] is None for row in rows if row["trial_id"] in stopped)
    assert "No checkpoints have been found" not in result.stdout + result.stderr
    search = PruningOptunaSearch()
    search.restore_from_dir(str(tmp_path / "mo"))  # the searcher state Tune saved for --resume
    states = {trial_id: search._ot_study.trials[ot_trial.number].state
              for trial_id, ot_trial in search._ot_trials.items()}
    assert states == {row["trial_id"]: optuna.trial.TrialState.PRUNED if row["trial_id"] in stopped
                      else optuna.trial.TrialState.COMPLETE for row in rows}
