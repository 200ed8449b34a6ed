"""The final stage: attack the selected checkpoints of a (finished or running) sweep (the command line is
`tuner.attack`).

Checkpoints are selected by the trials' validation numbers (test only where val_fraction = 0, which the rows
record) and scored on both splits. One adversarial set per (pretrained weights, data split, attack), crafted
once and cached; every selected checkpoint is scored on it. Rows land in RUN_DIR/robustness.parquet; rows
already there are kept, not recomputed.
"""
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
from trainables.attack_presets import attack_config
from trainables.checkpoint import load_model_state
from trainables.config import TrialConfig, resolve_config, selection_metrics
from trainables.data.specs import dataset_spec
from trainables.errors import UserError
from trainables.precision import precision_for
from trainables.robustness import CHECKPOINTS_LOADED_TOGETHER, CheckpointGroup, distance_metrics, group_split_metrics
from tuner.cli import SELECTIONS
from tuner.pareto import pareto_front
from tuner.run_dir import REFIT_EXPERIMENT, ROBUSTNESS_TABLE, join, location, read_rows, write_rows
from tuner.run_lock import final_stage_lock


@dataclass(frozen=True)
class Candidate:
    trial_id: str
    config: TrialConfig
    checkpoint: Checkpoint
    selection_acc: float  # the trial's last reported accuracy on its selection split (validation, if any)
    selection_asr: float  # likewise its ASR (optuna-mo sweeps), else NaN
    stopped_early: bool  # a scheduler stopped it before its schedule ended: not the method's result


def default_attack_preset(dataset: str) -> str:
    return dataset_spec(dataset).attack_preset


def candidates(run_dir: str | Path) -> list[Candidate]:
    """Each trial of the experiment with a checkpoint, at its latest one: the model the method produced
    (for SWA runs the average, not a mid-training snapshot that happened to score higher)."""
    run_dir = location(run_dir)
    if not tune.Tuner.can_restore(run_dir):
        raise UserError(f"{run_dir} is not a Ray Tune run directory (no experiment state in it)")
    analysis = ExperimentAnalysis(run_dir)
    found = []
    for trial in analysis.trials:
        if trial.checkpoint is None:  # stopped before its first checkpoint (asked, Ray would log an error)
            continue
        checkpoint = analysis.get_last_checkpoint(trial)
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
    with final_stage_lock(run_dir):
        rows = _score_chosen(run_dir, chosen, preset, device, attack_overrides)
        refit = join(run_dir, REFIT_EXPERIMENT)
        if tune.Tuner.can_restore(refit):  # --refit: every finished refit model, on test (it trained on val)
            finished = [c for c in candidates(refit) if not c.stopped_early]
            rows = _score_chosen(run_dir, finished, preset, device, attack_overrides, refit=True)
        return rows


def _score_chosen(run_dir: str, chosen: list[Candidate], preset: str | None, device: torch.device,
                  attack_overrides: dict, refit: bool = False) -> list[dict]:
    """Rows for the chosen checkpoints not yet in robustness.parquet (read under the final-stage lock); `refit`:
    they are refit models (`tuner.refit`)."""
    table = join(run_dir, ROBUSTNESS_TABLE)
    rows = read_rows(table)
    done = {(row["checkpoint_path"], row["test_attack_key"]) for row in rows}
    sets, pending = {}, []
    for candidate in chosen:
        attack = attack_config(preset or default_attack_preset(candidate.config.dataset), **attack_overrides)
        crafted = {}
        for split in evaluation_splits(candidate.config):
            spec = AdversarialSetSpec.from_trial(candidate.config, attack, split)
            if spec not in sets:
                sets[spec] = adversarial_set(spec, device)
            crafted[split] = sets[spec]
        if (candidate.checkpoint.path, crafted["test"].key) not in done:
            pending.append((candidate, attack, crafted))
    groups = {}
    with tqdm(total=len(pending), desc="attacking checkpoints", unit="ckpt", file=sys.stderr) as progress:
        for batch in scoring_batches(pending, CHECKPOINTS_LOADED_TOGETHER.get(device.type, 1)):
            rows += [row | {"refit": refit} for row in score_batch(batch, device, groups)]
            write_rows(rows, table)  # after every batch: an interrupted stage keeps what it measured
            progress.update(len(batch))
    return rows


def scoring_batches(pending: list[tuple], most: int) -> list[list[tuple]]:
    """Consecutive checkpoints scored together: the same architecture, adversarial sets and precision, at most
    `most` of them (so an interrupted stage loses little)."""
    batches = []
    for item in pending:
        if batches and len(batches[-1]) < most and _scoring_key(batches[-1][0]) == _scoring_key(item):
            batches[-1].append(item)
        else:
            batches.append([item])
    return batches


def _scoring_key(item: tuple) -> tuple:
    candidate, _, crafted = item
    config = candidate.config
    return (config.arch, config.taps, config.amp, config.channels_last,
            tuple((split, crafted_set.key) for split, crafted_set in crafted.items()))


def score_batch(batch: list[tuple], device: torch.device, groups: dict) -> list[dict]:
    """One robustness row per checkpoint of `batch` (see `scoring_batches`); `groups` keeps a CheckpointGroup
    per architecture for the next batches."""
    states = []
    for candidate, _, _ in batch:
        with candidate.checkpoint.as_directory() as directory:
            states.append(load_model_state(Path(directory), device))
    first, _, crafted = batch[0]
    shape = (first.config.arch, states[0]["num_classes"], first.config.taps)
    precision = precision_for(device, first.config.amp, first.config.channels_last)
    if (shape, precision) not in groups:
        groups[(shape, precision)] = CheckpointGroup(*shape, device, precision)
    group = groups[(shape, precision)]
    weights = [state["model"] for state in states]
    split_rows = [group_split_metrics(group, weights, split_set) for split_set in crafted.values()]
    rows = []
    for index, ((candidate, attack, _), state) in enumerate(zip(batch, states, strict=True)):
        config = resolve_config(state["config"])
        row = {"trial_id": candidate.trial_id, **asdict(config), "selection_split": config.selection_split,
               "stopped_early": candidate.stopped_early, "num_classes": state["num_classes"]}
        for per_split in split_rows:
            row |= per_split[index]
        model = group.load(state["model"])
        rows.append(row | distance_metrics(model, crafted["test"], device) | attack.record() | {
            "attack_budget_pixels": attack.budget_in_pixels(crafted["test"].pretrained.std.flatten().tolist()),
            "weights_digest": crafted["test"].weights_digest, "checkpoint_path": candidate.checkpoint.path,
            "evaluated_at": time.time(),
        })
    return rows
