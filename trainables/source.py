"""The embedded "public pretrained model": a narrow ResNet pretrained on the synthetic shapes task.

It stands in for an ImageNet model offline. Built once per recipe with the same training loop as every
transfer method (`retrain` on `synthetic`), cached under the cache directory keyed by its recipe, and
shared safely between concurrent trials by a file lock.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from filelock import FileLock
from tqdm import tqdm

from trainables.cache import cache_root
from trainables.config import resolve_config
from trainables.data.registry import build_transfer_data
from trainables.errors import UserError
from trainables.models.weights import Pretrained, load_state_file, state_digest
from trainables.train import TransferRun

# Bump when the generator or the recipe's meaning changes, so old cache entries are not reused.
SOURCE_RECIPE_VERSION = 1
SOURCE_TRAINING = {"lr": 0.05, "weight_decay": 5e-4, "batch_size": 128, "momentum": 0.9, "seed": 0}


def source_recipe(arch: str, images: int, iters: int) -> dict:
    return {"version": SOURCE_RECIPE_VERSION, "arch": arch, "images": images, "iters": iters, **SOURCE_TRAINING}


def source_cache_file(recipe: dict, cache_dir: str | None = None) -> Path:
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "sources" / f"{recipe['arch']}-{key}.pt"


def synthetic_source(arch: str, images: int, iters: int, cache_dir: str | None = None) -> Pretrained:
    """The cached source model for this recipe, pretrained first if the cache has none (or a broken one)."""
    recipe = source_recipe(arch, images, iters)
    path = source_cache_file(recipe, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        state = _load_cached(path)
        if state is None:
            state = _pretrain(recipe)
            partial = path.with_suffix(".partial")
            torch.save(state, partial)
            os.replace(partial, path)
    return Pretrained(state, f"synthetic:{path.stem}", state_digest(state))


def _load_cached(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return load_state_file(path)
    except UserError:
        print(f"cached source model {path} is unreadable; pretraining it again", file=sys.stderr)
        return None


def _pretrain(recipe: dict) -> dict[str, torch.Tensor]:
    config = resolve_config({
        "method": "retrain", "dataset": "synthetic", "arch": recipe["arch"], "iters": recipe["iters"],
        "eval_every": max(1, recipe["iters"] // 10), "source_images": recipe["images"], "val_fraction": 0.0,
        **{key: recipe[key] for key in SOURCE_TRAINING},
    })
    data = build_transfer_data("synthetic", synthetic_images=recipe["images"], val_fraction=0.0)
    run = TransferRun(config, data, pretrained=None)
    with tqdm(total=run.total_iters, desc=f"pretraining source model {recipe['arch']} (once)",
              unit="it", file=sys.stderr) as progress:
        for metrics in run.reports():
            progress.update(metrics["iteration"] - progress.n)
            progress.set_postfix(source_test_acc=f"{metrics['test_acc']:.1f}%")
    return run.student.body.state_dict()
