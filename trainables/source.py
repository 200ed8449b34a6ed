"""The embedded "public pretrained model": a narrow ResNet pretrained on the synthetic shapes task.

It stands in for an ImageNet model offline. Built once per recipe with the same training loop as every
transfer method (`retrain` on `synthetic`), on one thread so the same recipe gives the same weights whatever
the machine's core count, cached under the cache directory keyed by its recipe, and shared safely between
concurrent trials by a file lock. The default recipe's weights ship with the package (SHIPPED_SOURCES, with
their digest), so nobody pretrains it: they were built by `python -m trainables.source_build`, which pins the
CPU kernels too, so a rebuild on any x86-64 CPU with AVX2 reproduces the shipped digest.
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
SOURCE_RECIPE_VERSION = 2  # 2: pretrained on one thread
SOURCE_TRAINING = {"lr": 0.05, "weight_decay": 5e-4, "batch_size": 128, "momentum": 0.9, "seed": 0}
SHIPPED_SOURCES = Path(__file__).parent / "assets" / "sources"
SHIPPED_DIGESTS = SHIPPED_SOURCES / "digests.json"  # file name -> state digest, written with the weights


def source_recipe(arch: str, images: int, iters: int) -> dict:
    return {"version": SOURCE_RECIPE_VERSION, "arch": arch, "images": images, "iters": iters, **SOURCE_TRAINING}


def source_cache_file(recipe: dict, cache_dir: str | None = None) -> Path:
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "sources" / f"{recipe['arch']}-{key}.pt"


def synthetic_source(arch: str, images: int, iters: int, cache_dir: str | None = None) -> Pretrained:
    """The source model for this recipe: shipped with the package, else cached, else pretrained first (and
    cached) when the cache has none or a broken one."""
    recipe = source_recipe(arch, images, iters)
    path = source_cache_file(recipe, cache_dir)
    shipped = shipped_source(path.name)
    if shipped is not None:
        return shipped
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        state = _load_cached(path)
        if state is None:
            state = pretrain(recipe)
            partial = path.with_suffix(".partial")
            torch.save(state, partial)
            os.replace(partial, path)
    return Pretrained(state, f"synthetic:{path.stem}", state_digest(state))


def shipped_source(file_name: str) -> Pretrained | None:
    """The shipped weights of this recipe, checked against their recorded digest; None if none ship."""
    path = SHIPPED_SOURCES / file_name
    if not path.is_file():
        return None
    state = load_state_file(path)
    digest = state_digest(state)
    expected = json.loads(SHIPPED_DIGESTS.read_text()).get(file_name)
    if digest != expected:
        raise UserError(f"shipped source model {path} has digest {digest}, not the recorded {expected}: "
                        "the package is damaged; reinstall it")
    return Pretrained(state, f"synthetic:{path.stem}", digest)


def _load_cached(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return load_state_file(path)
    except UserError:
        print(f"cached source model {path} is unreadable; pretraining it again", file=sys.stderr)
        return None


def pretrain(recipe: dict) -> dict[str, torch.Tensor]:
    config = resolve_config({
        "method": "retrain", "dataset": "synthetic", "arch": recipe["arch"], "iters": recipe["iters"],
        "eval_every": max(1, recipe["iters"] // 10), "source_images": recipe["images"], "val_fraction": 0.0,
        **{key: recipe[key] for key in SOURCE_TRAINING},
    })
    data = build_transfer_data("synthetic", synthetic_images=recipe["images"], val_fraction=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights on any machine of this kind, whatever its cores
    try:
        run = TransferRun(config, data, pretrained=None)
        with tqdm(total=run.total_iters, desc=f"pretraining source model {recipe['arch']} (once, 1 thread)",
                  unit="it", file=sys.stderr) as progress:
            for metrics in run.reports(after_step=lambda: progress.update(1)):
                progress.set_postfix(source_test_acc=f"{metrics['test_acc']:.1f}%")
        return run.student.body.state_dict()
    finally:
        torch.set_num_threads(threads)
