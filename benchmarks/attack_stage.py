"""Crafting the adversarial set once vs evaluating N checkpoints on it (target: N=20 costs <= 1.5x crafting).

    .venv/bin/python benchmarks/attack_stage.py [--checkpoints 20] [--device cpu|cuda] [--threads 2]

Three ways to score, each after one warm-up checkpoint (moving the set to the device is paid once by any):
"rebuild" builds a network per checkpoint (the first round's final stage), "grouped" loads each checkpoint into
one module built once (the final stage now), "grouped xK" also runs K checkpoints per pass (vmap; the GPU's
default). Splits: load (file to device), split (clean, adversarial and noise predictions) and distance (weight and
feature distance to the pretrained model).

Uses the embedded default (novel_shapes test set, 1,000 images; the shipped source model) with the `embedded`
attack preset (`--attack-iters` shortens it to check the script). Checkpoints come from one short fine-tuning
run that saves one at every report, so each is a different model of the real size.
"""
import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import trainables.robustness as robustness
from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack_presets import attack_config
from trainables.checkpoint import load_model_state, save_checkpoint
from trainables.config import resolve_config
from trainables.precision import precision_for
from trainables.robustness import (
    CHECKPOINTS_LOADED_TOGETHER,
    CheckpointGroup,
    distance_metrics,
    group_split_metrics,
    load_evaluation_model,
    split_metrics,
)
from trainables.trial import prepare_run


def checkpoint_folders(config, device: torch.device, scratch: Path) -> list[Path]:
    """A short fine-tuning run, a checkpoint folder per report."""
    run = prepare_run(config, device)  # pretrains the default source model if it is not cached
    directories = []
    for index, _ in enumerate(run.reports()):
        directories.append(scratch / f"checkpoint_{index:03d}")
        directories[-1].mkdir()
        save_checkpoint(run, directories[-1])
    return directories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--per-pass", type=int, default=8, help="checkpoints per vmapped pass, besides 1")
    parser.add_argument("--attack-iters", type=int, help="PGD iterations (default: the preset's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as scratch:
        config = resolve_config({"method": "finetune", "iters": 10 * args.checkpoints, "eval_every": 10})
        directories = checkpoint_folders(config, device, Path(scratch))
        fresh = Path(scratch) / "cache"  # empty, so the set is really crafted (the source model ships)
        attack = attack_config("embedded", **({"iters": args.attack_iters} if args.attack_iters else {}))
        spec = AdversarialSetSpec.from_trial(replace(config, cache_dir=str(fresh)), attack, "test")
        started = time.perf_counter()
        crafted = adversarial_set(spec, device)
        craft_seconds = time.perf_counter() - started

        precision = precision_for(device, config.amp, config.channels_last)
        print(f"device {device} ({precision.describe()}), {torch.get_num_threads()} threads, "
              f"{crafted.manifest['count']} test images, attack {crafted.attack.preset} "
              f"({crafted.attack.iters} PGD iterations)")
        print(f"craft the set once:             {craft_seconds:7.2f} s")
        ways = [("rebuild", lambda: score_rebuilding(directories, crafted, device, precision))]
        for per_pass in sorted({1, args.per_pass}):
            ways.append((f"grouped x{per_pass}", lambda k=per_pass: score_grouped(directories, crafted, device,
                                                                                   precision, k)))
        for name, score in ways:
            phases = score()
            total = sum(phases.values())
            split = ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in phases.items())
            print(f"{name:<12} {len(directories)} checkpoints: {total:7.2f} s ({total / len(directories):.3f} s each; "
                  f"{split}); ratio to crafting {total / craft_seconds:.2f} (target <= 1.5)", flush=True)


class Phases:
    """Seconds per phase, the device synchronised at each boundary so GPU work lands in its own phase."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self._last = device, {}, time.perf_counter()

    def done(self, phase: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


def score_rebuilding(directories: list[Path], crafted, device: torch.device, precision) -> dict:
    for index, directory in enumerate(directories[:1] + directories):  # the first: warm-up
        if index == 1:
            phases = Phases(device)
        model, _ = load_evaluation_model(directory, device)
        if index:
            phases.done("load")
        split_metrics(model, crafted, device, precision)
        if index:
            phases.done("split")
        distance_metrics(model, crafted, device)
        if index:
            phases.done("distance")
    return phases.seconds


def score_grouped(directories: list[Path], crafted, device: torch.device, precision, per_pass: int) -> dict:
    robustness.CHECKPOINTS_PER_PASS = {device.type: per_pass}
    first = load_model_state(directories[0], device)
    group = CheckpointGroup(first["config"]["arch"], first["num_classes"], first["config"]["taps"], device, precision)
    group_split_metrics(group, [first["model"]], crafted)  # warm-up
    distance_metrics(group.load(first["model"]), crafted, device)
    phases = Phases(device)
    together = CHECKPOINTS_LOADED_TOGETHER[device.type]
    for start in range(0, len(directories), together):
        states = [load_model_state(directory, device) for directory in directories[start:start + together]]
        phases.done("load")
        group_split_metrics(group, [state["model"] for state in states], crafted)
        phases.done("split")
        for state in states:
            distance_metrics(group.load(state["model"]), crafted, device)
        phases.done("distance")
    return phases.seconds


if __name__ == "__main__":
    main()
