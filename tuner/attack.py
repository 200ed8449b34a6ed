"""The final stage: attack the selected checkpoints of a (finished or running) sweep.

    python -m tuner.attack --run RUN_DIR [--top-k K] [--select clean|pareto|all] [--attack paper|code|embedded|digits]

Checkpoints are selected by the trials' validation numbers (test only where val_fraction = 0, which the rows
record) and scored on both splits. One adversarial set per (pretrained weights, data split, attack), crafted
once and cached; every selected checkpoint is scored on it. Rows land in RUN_DIR/robustness.parquet; rows
already there are kept, not recomputed.
"""
import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from ray import tune
from ray.tune import Checkpoint, ExperimentAnalysis
from tqdm import tqdm

from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack import attack_config
from trainables.config import TrialConfig, resolve_config, selection_metrics
from trainables.data.registry import EMBEDDED_DATASETS
from trainables.errors import UserError
from trainables.threads import use_threads
from trainables.robustness import distance_metrics, load_evaluation_model, split_metrics
from tuner.cli import OneLineErrorParser, run_cli
from tuner.pareto import pareto_front
from tuner.run_dir import ROBUSTNESS_TABLE, join, location, read_rows, write_rows

SELECTIONS = ("clean", "pareto", "all")


@dataclass(frozen=True)
class Candidate:
    trial_id: str
    config: TrialConfig
    checkpoint: Checkpoint
    selection_acc: float  # the trial's last reported accuracy on its selection split (validation, if any)
    selection_asr: float  # likewise its ASR (optuna-mo sweeps), else NaN
    stopped_early: bool  # a scheduler stopped it before its schedule ended: not the method's result


def default_attack_preset(dataset: str) -> str:
    if dataset == "digits":
        return "digits"
    return "embedded" if dataset in EMBEDDED_DATASETS else "paper"


def candidates(run_dir: str | Path) -> list[Candidate]:
    """Each trial of the experiment with a checkpoint, at its latest one: the model the method produced
    (for SWA runs the average, not a mid-training snapshot that happened to score higher)."""
    run_dir = location(run_dir)
    if not tune.Tuner.can_restore(run_dir):
        raise UserError(f"{run_dir} is not a Ray Tune run directory (no experiment state in it)")
    analysis = ExperimentAnalysis(run_dir)
    found = []
    for trial in analysis.trials:
        checkpoint = analysis.get_last_checkpoint(trial)
        if checkpoint is None:
            continue
        last = trial.last_result or {}
        config = resolve_config(trial.config)
        accuracy, asr = selection_metrics(config.selection_split)
        found.append(Candidate(trial.trial_id, config, checkpoint, float(last.get(accuracy, math.nan)),
                               float(last.get(asr, math.nan)), stopped_early(last)))
    return found


def stopped_early(last_result: dict) -> bool:
    return last_result.get("iteration", 0) < last_result.get("total_iters", 0)


def select(found: list[Candidate], how: str, top_k: int | None, include_stopped: bool = False) -> list[Candidate]:
    """The checkpoints the final stage attacks, chosen by the trials' selection-split numbers alone (never
    test). `clean` and `pareto` leave out trials a scheduler stopped early unless `include_stopped`."""
    if how not in SELECTIONS:
        raise UserError(f"unknown --select {how!r}; choose one of {', '.join(SELECTIONS)}")
    pool = found if include_stopped or how == "all" else [c for c in found if not c.stopped_early]
    if how == "pareto":
        if all(math.isnan(c.selection_asr) for c in pool):
            raise UserError("--select pareto needs trials that report an ASR (an optuna-mo sweep); use clean or all")
        chosen = [pool[i] for i in pareto_front([c.selection_acc for c in pool], [c.selection_asr for c in pool])]
    elif how == "clean":
        chosen = sorted(pool, key=lambda c: -c.selection_acc)
    else:
        chosen = list(pool)
    return chosen[:top_k] if top_k else chosen


def evaluation_splits(config: TrialConfig) -> tuple[str, ...]:
    return ("val", "test") if config.selection_split == "val" else ("test",)


def run_attack_stage(run_dir: str | Path, select_how: str = "clean", top_k: int | None = None,
                     preset: str | None = None, device: str | None = None, include_stopped: bool = False,
                     **attack_overrides) -> list[dict]:
    """Score the selected checkpoints on the validation and the test split; returns every row of
    RUN_DIR/robustness.parquet."""
    run_dir = location(run_dir)
    if preset is not None:
        attack_config(preset, **attack_overrides)  # a bad preset or value fails before any work
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chosen = select(candidates(run_dir), select_how, top_k, include_stopped)
    table = join(run_dir, ROBUSTNESS_TABLE)
    rows = read_rows(table)
    done = {(row["checkpoint_path"], row["test_attack_key"]) for row in rows}
    sets = {}
    for candidate in tqdm(chosen, desc="attacking checkpoints", unit="ckpt", file=sys.stderr):
        attack = attack_config(preset or default_attack_preset(candidate.config.dataset), **attack_overrides)
        crafted = {}
        for split in evaluation_splits(candidate.config):
            spec = AdversarialSetSpec.from_trial(candidate.config, attack, split)
            if spec not in sets:
                sets[spec] = adversarial_set(spec, device)
            crafted[split] = sets[spec]
        if (candidate.checkpoint.path, crafted["test"].key) in done:
            continue
        with candidate.checkpoint.as_directory() as directory:
            model, config = load_evaluation_model(directory, device)
        row = {"trial_id": candidate.trial_id, **asdict(config), "selection_split": config.selection_split,
               "stopped_early": candidate.stopped_early}
        for split_set in crafted.values():
            row |= split_metrics(model, split_set, device)
        rows.append(row | distance_metrics(model, crafted["test"], device) | attack.record() | {
            "attack_budget_pixels": attack.budget_in_pixels(crafted["test"].pretrained.std.flatten().tolist()),
            "weights_digest": crafted["test"].weights_digest, "checkpoint_path": candidate.checkpoint.path,
            "evaluated_at": time.time(),
        })
        write_rows(rows, table)  # after every checkpoint: an interrupted stage keeps what it measured
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="python -m tuner.attack", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the sweep's run directory (storage path / name)")
    parser.add_argument("--select", default="clean", help=f"which trials: {', '.join(SELECTIONS)}")
    parser.add_argument("--top-k", type=int, help="at most this many checkpoints")
    parser.add_argument("--attack", help="preset: paper, code, embedded or digits (default: digits on digits, "
                                         "embedded on the other embedded datasets, paper otherwise)")
    parser.add_argument("--budget", type=float, help="L-inf budget B, in the preset's units")
    parser.add_argument("--step", type=float, help="PGD step size, in the preset's units")
    parser.add_argument("--attack-iters", type=int, help="PGD iterations")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--cpus", type=int, help="torch threads (default: every CPU this process may use)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="let --select clean/pareto pick trials a scheduler stopped early")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    use_threads(args.cpus)
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k {args.top_k} must be > 0")
    rows = run_attack_stage(args.run, args.select, args.top_k, args.attack, args.device, args.include_stopped,
                            budget=args.budget, step=args.step, iters=args.attack_iters)
    for row in sorted(rows, key=lambda r: r["test_asr"]):
        selection = (f"val clean {row['val_clean_acc']:6.2f}% ASR {row['val_asr']:6.2f}% | "
                     if row.get("val_clean_acc") is not None else "selected on test (val_fraction=0) | ")
        print(f"{row['method']:>12} {row['trial_id']}: {selection}test clean {row['test_clean_acc']:6.2f}% "
              f"ASR {row['test_asr']:6.2f}% (noise {row['test_noise_asr']:.2f}%, attack {row['attack_preset']} "
              f"B={row['attack_budget']:g} {row['attack_units']} = {row['attack_budget_pixels']:.4f} in pixels)")
    print(f"robustness table: {join(location(args.run), ROBUSTNESS_TABLE)}")


if __name__ == "__main__":
    run_cli(main)
