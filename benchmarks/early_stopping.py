"""Early stopping replayed offline on a finished grid (the tabular-benchmark method of HPO papers): how many
training iterations FIFO (the full grid), Ray's ASHA on validation accuracy and MO-ASHA on validation accuracy
and ASR spend, and how much of the grid's test-split hypervolume the trials they run to the end keep.
Targets: MO-ASHA keeps >= 95 % of the grid's hypervolume with <= 40 % of its iterations, and more than ASHA.

    .venv/bin/python benchmarks/early_stopping.py --run-dir RUN_DIR [--replays 20] [--concurrency 2..4] [--seed 0]

RUN_DIR: a grid sweep run with the fifo scheduler (every trial to its end, reporting `val_asr`: not
--no-attack) whose final stage attacked every trial (--select all), e.g.
    .venv/bin/python -m tuner.sweep --space lambda_feat --iters 60 --select all --storage /tmp/hvgrid --name grid

Each replay starts the trials in a random order, C at a time (C drawn from --concurrency), and lets a randomly
drawn running trial report next; each trial's recorded results (its result.json lines) go through the real
scheduler objects, built by `tuner.sweep_run.scheduler` with the sweep's longest trial and evaluation interval
(so the same grace period, reduction factor and max_t as the sweep), until the scheduler says STOP or the results
run out. A trial's iterations are its last reported iteration then; a trial that reached its last iteration ran
to the end. Hypervolume: of the Pareto front of those trials' final checkpoints on the TEST split (clean
accuracy up, ASR down, both in %; robustness.parquet), against the fixed reference point clean accuracy 0 %,
ASR 100 %. Mean and sample standard deviation over the replays.
"""
import argparse
import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from trainables.config import resolve_config, selection_metrics
from trainables.errors import UserError
from tuner.attack_stage import stopped_early
from tuner.cli import OneLineErrorParser, run_cli
from tuner.pareto import pareto_front
from tuner.run_dir import ROBUSTNESS_TABLE, read_rows
from tuner.sweep_run import scheduler

SCHEDULERS = ("fifo", "asha", "mo-asha")
REFERENCE = (0.0, 100.0)  # (test clean accuracy %, test ASR %): the worst of each


@dataclass(frozen=True)
class RecordedTrial:
    trial_id: str
    results: list[dict]  # its result.json lines, in order
    test_point: tuple[float, float]  # its final checkpoint's (test clean accuracy, test ASR)


@dataclass(frozen=True)
class Grid:
    trials: list[RecordedTrial]
    longest: int  # the sweep's longest trial and smallest evaluation interval: what its schedulers were built on
    eval_every: int
    split: str  # the selection split the trials reported on


@dataclass(frozen=True)
class Replay:
    iterations: int
    finished: list[str]  # trial ids run to their end


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float] = REFERENCE) -> float:
    """Area dominated by (clean accuracy up, ASR down) points and bounded by the reference point: the 2-D sweep
    along the Pareto front by ascending ASR, each point owning the strip up to the next point's ASR."""
    accuracies, asrs = [p[0] for p in points], [p[1] for p in points]
    front = pareto_front(accuracies, asrs)
    strip_ends = [asrs[i] for i in front[1:]] + [reference[1]]
    return sum(max(0.0, end - asrs[i]) * max(0.0, accuracies[i] - reference[0]) for i, end in zip(front, strip_ends))


def read_results(trial_dir: Path) -> list[dict]:
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_points(run_dir: Path) -> dict[str, tuple[float, float]]:
    rows = read_rows(str(run_dir / ROBUSTNESS_TABLE))
    points = {}
    for row in rows:
        if row["trial_id"] in points:
            raise UserError(f"{run_dir / ROBUSTNESS_TABLE} has several rows for trial {row['trial_id']} "
                            "(several attacks?); replay needs one final-stage attack")
        points[row["trial_id"]] = (row["test_clean_acc"], row["test_asr"])
    return points


def read_grid(run_dir: Path) -> Grid:
    """The finished grid's recorded results and test numbers; one-line errors for what the replay lacks."""
    trial_dirs = sorted(path.parent for path in run_dir.glob("*/result.json"))
    if not trial_dirs:
        raise UserError(f"{run_dir} holds no trial results (*/result.json): not a sweep's run directory")
    points, trials = test_points(run_dir), []
    for trial_dir in trial_dirs:
        results = read_results(trial_dir)
        if not results or stopped_early(results[-1]):
            raise UserError(f"{trial_dir.name} did not run to its end: replay needs a fifo grid")
        trial_id, split = results[0]["trial_id"], results[0]["selection_split"]
        if any(selection_metrics(split)[1] not in result for result in results):
            raise UserError(f"{trial_dir.name} reported no {selection_metrics(split)[1]}: rerun the grid "
                            "without --no-attack")
        if trial_id not in points:
            raise UserError(f"{run_dir / ROBUSTNESS_TABLE} has no test row for trial {trial_id}: run the final "
                            "stage with --select all")
        trials.append(RecordedTrial(trial_id, results, points[trial_id]))
    configs = [resolve_config(trial.results[0]["config"]) for trial in trials]
    return Grid(trials, max(trial.results[-1]["total_iters"] for trial in trials),
                min(config.eval_every for config in configs), trials[0].results[0]["selection_split"])


def replay(grid: Grid, scheduler_name: str, rng: random.Random, concurrency: int) -> Replay:
    """One random interleaving of the grid's recorded results through a fresh scheduler, as Tune drives it:
    on_trial_add when a trial starts, on_trial_result per result, on_trial_complete with its last one."""
    chosen = scheduler(scheduler_name, grid.longest, grid.eval_every, grid.split)
    waiting, running = rng.sample(grid.trials, len(grid.trials)), []
    iterations, finished = 0, []
    while waiting or running:
        while waiting and len(running) < concurrency:
            recorded = waiting.pop()
            stub = Trial("replay", trial_id=recorded.trial_id, stub=True)
            chosen.on_trial_add(None, stub)
            running.append([recorded, stub, 0])
        entry = rng.choice(running)
        recorded, stub, position = entry
        result = recorded.results[position]
        entry[2] += 1
        if chosen.on_trial_result(None, stub, result) == TrialScheduler.STOP or entry[2] == len(recorded.results):
            chosen.on_trial_complete(None, stub, result)
            running.remove(entry)
            iterations += result["iteration"]
            if not stopped_early(result):
                finished.append(recorded.trial_id)
    return Replay(iterations, finished)


def concurrency_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("..")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise UserError(f"--concurrency {text!r} must be N or LOW..HIGH") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise UserError(f"--concurrency {text!r} must satisfy 1 <= LOW <= HIGH")
    return bounds


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def summary(grid: Grid, replays: dict[str, list[Replay]]) -> list[str]:
    """One line per scheduler: iterations and test hypervolume, each also as a share of the full grid's."""
    points = {trial.trial_id: trial.test_point for trial in grid.trials}
    grid_iterations = sum(trial.results[-1]["iteration"] for trial in grid.trials)
    grid_volume = hypervolume(list(points.values()))
    lines = [f"grid: {len(grid.trials)} trials, {grid_iterations} iterations, test hypervolume {grid_volume:.1f} "
             f"(%·%; reference clean accuracy {REFERENCE[0]:g} %, ASR {REFERENCE[1]:g} %)",
             f"{'scheduler':<9}  {'iterations':>14}  {'% of grid':>12}  {'test HV % of grid':>17}  "
             f"{'HV % per iteration %':>20}  {'run to the end':>14}"]
    shares = {}
    for name, runs in replays.items():
        spent = [100.0 * run.iterations / grid_iterations for run in runs]
        volumes = [100.0 * hypervolume([points[i] for i in run.finished]) / grid_volume for run in runs]
        shares[name] = (statistics.mean(spent), statistics.mean(volumes))
        lines.append(f"{name:<9}  {mean_std([run.iterations for run in runs]):>14}  {mean_std(spent):>12}  "
                     f"{mean_std(volumes):>17}  {statistics.mean(volumes) / statistics.mean(spent):>20.2f}  "
                     f"{mean_std([len(run.finished) for run in runs]):>14}")
    return lines + targets(shares)


def targets(shares: dict[str, tuple[float, float]]) -> list[str]:
    (spent, volume), (_, asha_volume) = shares["mo-asha"], shares["asha"]
    met = {True: "met", False: "NOT met"}
    return [f"target: MO-ASHA >= 95 % of the grid's HV with <= 40 % of its iterations: "
            f"{met[volume >= 95 and spent <= 40]} ({volume:.1f} % HV, {spent:.1f} % iterations)",
            f"target: MO-ASHA HV > ASHA-on-clean HV: {met[volume > asha_volume]} "
            f"({volume:.1f} % vs {asha_volume:.1f} %)"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="benchmarks/early_stopping.py", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished fifo grid sweep's run directory, final stage "
                                                         "run with --select all")
    parser.add_argument("--replays", type=int, default=20, help="random interleavings per scheduler")
    parser.add_argument("--concurrency", default="2..4", help="trials running at once: N, or LOW..HIGH drawn per "
                                                              "replay")
    parser.add_argument("--seed", type=int, default=0, help="replay r uses seed + r")
    args = parser.parse_args(argv)
    if args.replays <= 0:
        raise UserError(f"--replays {args.replays} must be > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    low, high = concurrency_range(args.concurrency)
    run_dir = Path(args.run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise UserError(f"--run-dir {run_dir} is not a directory")
    grid = read_grid(run_dir)
    if hypervolume([trial.test_point for trial in grid.trials]) == 0:
        raise UserError(f"{run_dir}: the grid's test hypervolume is 0 (no trial beats 0 % accuracy, 100 % ASR)")
    replays = {name: [] for name in SCHEDULERS}
    for index in range(args.replays):
        concurrency = random.Random(args.seed + index).randint(low, high)
        for name in SCHEDULERS:  # every scheduler sees the same interleaving seed
            replays[name].append(replay(grid, name, random.Random(args.seed + index), concurrency))
    print(f"run {run_dir}: {args.replays} replays, concurrency {low}..{high}, seeds {args.seed}.."
          f"{args.seed + args.replays - 1}; schedulers built as the sweep builds them (longest trial "
          f"{grid.longest}, evaluation every {grid.eval_every})")
    print("\n".join(summary(grid, replays)))


if __name__ == "__main__":
    run_cli(main)
