"""The final stage: attack the selected checkpoints of a (finished or running) sweep.

    python -m tuner.attack --run RUN_DIR [--top-k K] [--select clean|pareto|all] [--attack paper|code|embedded]

One adversarial set per (pretrained weights, data, attack), crafted once and cached; every selected
checkpoint is scored on it. Rows land in RUN_DIR/robustness.parquet; rows already there are kept, not
recomputed.
"""
import argparse
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
from trainables.config import TrialConfig, resolve_config
from trainables.data.registry import EMBEDDED_DATASETS
from trainables.errors import UserError
from trainables.robustness import evaluate_model, load_evaluation_model
from tuner.cli import run_cli
from tuner.pareto import pareto_front
from tuner.tables import read_rows, write_rows

ROBUSTNESS_TABLE = "robustness.parquet"
SELECTIONS = ("clean", "pareto", "all")


@dataclass(frozen=True)
class Candidate:
    trial_id: str
    config: TrialConfig
    checkpoint: Checkpoint
    clean_acc: float  # as reported by the trial
    asr: float  # as reported by the trial (optuna-mo sweeps), else NaN


def default_attack_preset(dataset: str) -> str:
    return "embedded" if dataset in EMBEDDED_DATASETS else "paper"


def run_location(run_dir: str | Path) -> str:
    """An absolute local path or a URI, as Ray and pyarrow take them."""
    return str(run_dir) if "://" in str(run_dir) else str(Path(run_dir).expanduser().resolve())


def candidates(run_dir: str | Path) -> list[Candidate]:
    """Each trial of the experiment with a checkpoint, at its latest one: the model the method produced
    (for SWA runs the average, not a mid-training snapshot that happened to score higher)."""
    run_dir = run_location(run_dir)
    if not tune.Tuner.can_restore(run_dir):
        raise UserError(f"{run_dir} is not a Ray Tune run directory (no experiment state in it)")
    analysis = ExperimentAnalysis(run_dir)
    found = []
    for trial in analysis.trials:
        checkpoint = analysis.get_last_checkpoint(trial)
        if checkpoint is None:
            continue
        last = trial.last_result or {}
        found.append(Candidate(trial.trial_id, resolve_config(trial.config), checkpoint,
                               float(last.get("clean_acc", float("nan"))), float(last.get("asr", float("nan")))))
    return found


def select(found: list[Candidate], how: str, top_k: int | None) -> list[Candidate]:
    if how not in SELECTIONS:
        raise UserError(f"unknown --select {how!r}; choose one of {', '.join(SELECTIONS)}")
    if how == "pareto":
        if all(c.asr != c.asr for c in found):
            raise UserError("--select pareto needs trials that report an ASR (an optuna-mo sweep); use clean or all")
        chosen = [found[i] for i in pareto_front([c.clean_acc for c in found], [c.asr for c in found])]
    elif how == "clean":
        chosen = sorted(found, key=lambda c: -c.clean_acc)
    else:
        chosen = list(found)
    return chosen[:top_k] if top_k else chosen


def run_attack_stage(run_dir: str | Path, select_how: str = "clean", top_k: int | None = None,
                     preset: str | None = None, device: str | None = None, **attack_overrides) -> list[dict]:
    """Evaluate the selected checkpoints; returns every row of RUN_DIR/robustness.parquet."""
    run_dir = run_location(run_dir)
    if preset is not None:
        attack_config(preset, **attack_overrides)  # a bad preset or value fails before any work
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chosen = select(candidates(run_dir), select_how, top_k)
    table = f"{run_dir}/{ROBUSTNESS_TABLE}"
    rows = read_rows(table)
    done = {(row["checkpoint_path"], row["attack_key"]) for row in rows}
    sets = {}
    for candidate in tqdm(chosen, desc="attacking checkpoints", unit="ckpt", file=sys.stderr):
        attack = attack_config(preset or default_attack_preset(candidate.config.dataset), **attack_overrides)
        spec = AdversarialSetSpec.from_trial(candidate.config, attack)
        if spec not in sets:
            sets[spec] = adversarial_set(spec, device)
        crafted = sets[spec]
        if (candidate.checkpoint.path, crafted.key) in done:
            continue
        with candidate.checkpoint.as_directory() as directory:
            model, config = load_evaluation_model(directory, device)
        rows.append({
            "trial_id": candidate.trial_id, **asdict(config), **evaluate_model(model, crafted, device),
            **attack.record(), "attack_key": crafted.key, "weights_digest": crafted.weights_digest,
            "checkpoint_path": candidate.checkpoint.path, "evaluated_at": time.time(),
        })
        write_rows(rows, table)  # after every checkpoint: an interrupted stage keeps what it measured
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tuner.attack", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the sweep's run directory (storage path / name)")
    parser.add_argument("--select", default="clean", help=f"which trials: {', '.join(SELECTIONS)}")
    parser.add_argument("--top-k", type=int, help="at most this many checkpoints")
    parser.add_argument("--attack", help="preset: paper, code or embedded (default: embedded for the embedded "
                                         "datasets, paper otherwise)")
    parser.add_argument("--budget", type=float, help="L-inf budget B, in the preset's units")
    parser.add_argument("--step", type=float, help="PGD step size, in the preset's units")
    parser.add_argument("--attack-iters", type=int, help="PGD iterations")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k {args.top_k} must be > 0")
    rows = run_attack_stage(args.run, args.select, args.top_k, args.attack, args.device,
                            budget=args.budget, step=args.step, iters=args.attack_iters)
    for row in sorted(rows, key=lambda r: r["asr"]):
        print(f"{row['method']:>12} {row['trial_id']}: clean {row['clean_acc']:6.2f}%  ASR {row['asr']:6.2f}%  "
              f"(noise {row['noise_asr']:.2f}%, attack {row['attack_preset']} B={row['attack_budget']} "
              f"{row['attack_units']})")
    print(f"robustness table: {run_location(args.run)}/{ROBUSTNESS_TABLE}")


if __name__ == "__main__":
    run_cli(main)
