"""Crafting the adversarial set once vs evaluating N checkpoints on it (target: N=20 costs <= 1.5x crafting).

    .venv/bin/python benchmarks/attack_stage.py [--checkpoints 20] [--device cpu|cuda] [--threads 2]

Uses the embedded default (digits test set, 540 images; the default source model, pretrained first if not
cached) with the `embedded` attack preset. Checkpoints come from one short fine-tuning run that saves one
at every report, so each is a different model of the real size.
"""
import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack_presets import attack_config
from trainables.checkpoint import save_checkpoint
from trainables.config import resolve_config
from trainables.robustness import distance_metrics, load_evaluation_model, split_metrics
from trainables.source import source_cache_file, source_recipe
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


def fresh_cache_with_source(config, scratch: Path) -> Path:
    """A fresh cache holding only a copy of the source model, so the set is really crafted."""
    source_file = source_cache_file(source_recipe(config.arch, config.source_images, config.source_iters),
                                    config.cache_dir)
    fresh = scratch / "cache"
    (fresh / "sources").mkdir(parents=True)
    shutil.copy(source_file, fresh / "sources" / source_file.name)
    return fresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as scratch:
        config = resolve_config({"method": "finetune", "iters": 10 * args.checkpoints, "eval_every": 10})
        directories = checkpoint_folders(config, device, Path(scratch))
        fresh = fresh_cache_with_source(config, Path(scratch))
        spec = AdversarialSetSpec.from_trial(replace(config, cache_dir=str(fresh)), attack_config("embedded"), "test")
        started = time.perf_counter()
        crafted = adversarial_set(spec, device)
        craft_seconds = time.perf_counter() - started

        started = time.perf_counter()
        for directory in directories:
            model, _ = load_evaluation_model(directory, device)
            split_metrics(model, crafted, device)
            distance_metrics(model, crafted, device)
        evaluate_seconds = time.perf_counter() - started

    print(f"device {device}, {torch.get_num_threads()} threads, {crafted.manifest['count']} test images, "
          f"attack {crafted.attack.preset} ({crafted.attack.iters} PGD iterations)")
    print(f"craft the set once:        {craft_seconds:7.2f} s")
    print(f"evaluate {len(directories)} checkpoints:   {evaluate_seconds:7.2f} s "
          f"({evaluate_seconds / len(directories):.3f} s each)")
    print(f"ratio (target <= 1.5):     {evaluate_seconds / craft_seconds:7.2f}")


if __name__ == "__main__":
    main()
