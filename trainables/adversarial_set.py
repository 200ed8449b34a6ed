"""Craft an adversarial set (a validation or test split attacked on the pretrained model) once, store it on
disk, reuse it for every checkpoint, trial and run.

The set depends only on (pretrained weights, dataset + split, the split's images and transform, attack config,
seed), never on a transferred model, so its cache key hashes exactly those (weights by content digest).
Entries are sharded (a shard can be crafted by a Ray task) and sealed by a manifest with each shard's
SHA-256, written last: a partial or corrupt entry fails verification and is rebuilt, never used.
"""
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from trainables.attack import PenultimateAttack, uniform_noise
from trainables.attack_presets import AttackConfig
from trainables.cache import cache_root, file_sha256, verified_manifest
from trainables.config import TrialConfig
from trainables.data.registry import SPLITS, build_transfer_data
from trainables.models.backbones import TransferNet
from trainables.models.network import build_network
from trainables.threads import use_threads
from trainables.trial import pretrained_for

MANIFEST = "manifest.json"
SCORING_BATCH_SIZE = 256
MEMO_BYTES = 1 << 30
CRAFT_BATCH_SIZE = 128
# The feature distance's augmentation draw: fixed, so one checkpoint always gets one number.
FEATURE_DISTANCE_SEED = 21


@dataclass(frozen=True)
class AdversarialSetSpec:
    """Everything the set depends on, taken from a trial config (method, training values, `fraction` and the
    trial seed are irrelevant: the validation and test images do not depend on them)."""

    dataset: str
    data_root: str | None
    arch: str
    taps: str | None  # the distilled layers the feature distance reads; not part of the cache key
    weights: str | None
    source_images: int
    source_iters: int
    cache_dir: str | None
    val_fraction: float
    attack: AttackConfig
    split: str = "test"  # which split's images are attacked: "val" or "test"
    seed: int = 0
    shard_size: int = 1024  # images per shard: the unit one Ray task crafts
    skip_unreadable_images: bool = False  # the split without the image files that do not decode

    @classmethod
    def from_trial(cls, config: TrialConfig, attack: AttackConfig, split: str, seed: int = 0,
                   shard_size: int = 1024) -> "AdversarialSetSpec":
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        return cls(config.dataset, config.data_root, config.arch, config.taps, config.weights,
                   config.source_images, config.source_iters, config.cache_dir, config.val_fraction, attack, split,
                   seed, shard_size, config.skip_unreadable_images)

    def serves(self, config: TrialConfig) -> bool:
        """Whether a trial of `config` is scored on this set (same pretrained model, same images)."""
        return self == AdversarialSetSpec.from_trial(config, self.attack, self.split, self.seed, self.shard_size)

    def trial_config(self) -> TrialConfig:
        """A config that resolves the same data and pretrained weights (the method is irrelevant)."""
        return TrialConfig(method="finetune", dataset=self.dataset, data_root=self.data_root, arch=self.arch,
                           taps=self.taps, weights=self.weights, source_images=self.source_images,
                           source_iters=self.source_iters, cache_dir=self.cache_dir, val_fraction=self.val_fraction,
                           skip_unreadable_images=self.skip_unreadable_images)


@dataclass(frozen=True)
class AdversarialSet:
    """A verified cache entry: shards of adversarial images aligned with the split's order."""

    key: str
    directory: Path
    manifest: dict
    split: str
    clean: Dataset  # the split's clean images, in the order the shards follow
    train: Dataset  # the augmented training split: the feature distance's images (the authors' train_loader)
    pretrained: TransferNet
    weights_digest: str
    attack: AttackConfig
    # The pretrained model's features on the training batches, filled by the first feature-distance computation.
    reference_features: list = field(default_factory=list, compare=False, repr=False)
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    def scoring_batches(self, device: torch.device) -> Iterable[tuple[torch.Tensor, ...]]:
        """(clean, adversarial, uniform-noise images, labels) batches in split order, on `device`."""
        return self._memoized("scoring", device, 3 * len(self.clean), self._scoring_batches)

    def training_batches(self, device: torch.device) -> Iterable[torch.Tensor]:
        """The training images with the training augmentation, drawn from a fixed seed, on `device` (for the
        feature distance: the authors measure it on their train_loader)."""
        draws = SeededAugmentation(self.train, FEATURE_DISTANCE_SEED)
        return self._memoized("training", device, len(self.train), lambda target: (
            images.to(target) for images, _ in DataLoader(draws, batch_size=SCORING_BATCH_SIZE,
                                                          generator=torch.Generator())))  # global RNG untouched

    def _memoized(self, name: str, device: torch.device, images: int, make) -> Iterable:
        """Scoring many checkpoints reads, builds and moves small sets once: kept on `device` when they fit."""
        if (name, device) in self._memo:
            return self._memo[(name, device)]
        if images * self.clean[0][0].numel() * 4 > MEMO_BYTES:
            return make(device)
        self._memo[(name, device)] = list(make(device))
        return self._memo[(name, device)]

    def _scoring_batches(self, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
        generator = torch.Generator().manual_seed(self.manifest["key_fields"]["seed"])
        for clean, adversarial, labels in self.batches(SCORING_BATCH_SIZE):
            noise = uniform_noise(clean, self.attack, self.pretrained.mean.cpu(), self.pretrained.std.cpu(), generator)
            yield clean.to(device), adversarial.to(device), noise.to(device), labels

    def adversarial_images(self) -> torch.Tensor:
        """Every adversarial image in split order, in one tensor (to hand to trials by reference)."""
        return torch.cat([torch.load(self.directory / shard["file"], weights_only=True)["adversarial"]
                          for shard in self.manifest["shards"]])

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(clean images, adversarial images, labels) in split order."""
        start = 0
        for shard in self.manifest["shards"]:
            stored = torch.load(self.directory / shard["file"], weights_only=True)
            clean = DataLoader(Subset(self.clean, range(start, start + shard["count"])), batch_size=batch_size)
            offset = 0
            for images, labels in clean:
                end = offset + len(labels)
                yield images, stored["adversarial"][offset:end], labels
                offset = end
            start += shard["count"]


class SeededAugmentation(Dataset):
    """`dataset` with each item's random augmentation drawn from a seed of its own (seed, index): the same images
    on every pass, whatever the batching or the loader's workers, and the global RNG left as it was."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + index)
            return self.dataset[index]


class _Context:
    """Data, pretrained model and attack for one spec, built once per process."""

    def __init__(self, spec: AdversarialSetSpec, device: torch.device):
        config = spec.trial_config()
        data = build_transfer_data(config.dataset, config.data_root, val_fraction=config.val_fraction,
                                   skip_unreadable_images=config.skip_unreadable_images, cache_dir=config.cache_dir)
        pretrained = pretrained_for(config)
        self.split = spec.split
        self.clean = data.split(spec.split)
        self.train = data.train
        self.network = build_network(config.arch, data.num_classes, pretrained, config.taps).to(device).eval()
        self.weights_digest = pretrained.digest
        self.device = device
        self.attack = spec.attack
        self.seed = spec.seed
        self.key_fields = {
            "weights_digest": pretrained.digest, "dataset": spec.dataset, "split": spec.split,
            "images": self.clean.fingerprint(), **spec.attack.record(),
            "seed": spec.seed, "shard_size": spec.shard_size,  # each shard draws its own random starts
        }
        self.key = hashlib.sha256(json.dumps(self.key_fields, sort_keys=True).encode()).hexdigest()[:20]
        self.shard_size = spec.shard_size
        self.shard_count = -(-len(self.clean) // spec.shard_size)


def adversarial_set(spec: AdversarialSetSpec, device: str | torch.device = "cpu",
                    use_ray: bool | None = None) -> AdversarialSet:
    """The verified set for `spec`, crafted first if the cache lacks a valid entry — shard by shard as Ray
    tasks when `use_ray` (default: when Ray is running and there is more than one shard)."""
    context = _Context(spec, torch.device(device))
    directory = cache_root(spec.cache_dir) / "adversarial" / context.key
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        manifest = verified_manifest(directory, MANIFEST, lambda found: (
            (shard["file"], shard["sha256"]) for shard in found["shards"]), "adversarial set")
        if manifest is None:
            if use_ray is None:
                use_ray = context.shard_count > 1 and _ray_running()
            manifest = _craft(spec, context, directory, use_ray)
    return AdversarialSet(context.key, directory, manifest, context.split, context.clean, context.train,
                          context.network, context.weights_digest, spec.attack)


def _craft(spec: AdversarialSetSpec, context: _Context, directory: Path, use_ray: bool) -> dict:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if use_ray:
        import ray

        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=gpus)(_craft_shard_task)
        shards = ray.get([task.remote(spec, index, str(directory)) for index in range(context.shard_count)])
    else:
        shards = [craft_shard(context, index, directory) for index in range(context.shard_count)]
    manifest = {"key": context.key, "key_fields": context.key_fields, "count": len(context.clean),
                "shards": shards}
    partial = directory / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, directory / MANIFEST)  # the manifest seals the entry: written last, atomically
    return manifest


def _craft_shard_task(spec: AdversarialSetSpec, index: int, directory: str) -> dict:
    import ray

    use_threads(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return craft_shard(_Context(spec, torch.device(device)), index, Path(directory))


def craft_shard(context: _Context, index: int, directory: Path) -> dict:
    """Attack the split's images [index * shard_size, ...) and write them as one shard file."""
    start = index * context.shard_size
    subset = Subset(context.clean, range(start, min(start + context.shard_size, len(context.clean))))
    torch.manual_seed(context.seed * 1_000_003 + index)  # random starts independent of shard order
    attack = PenultimateAttack(context.network, context.attack)
    adversarial = []
    for images, _ in tqdm(DataLoader(subset, batch_size=CRAFT_BATCH_SIZE), desc=f"crafting shard {index}",
                          unit="batch", file=sys.stderr, leave=False):
        adversarial.append(attack.perturb(images.to(context.device)).cpu())
    path = directory / f"shard-{index:05d}.pt"
    torch.save({"adversarial": torch.cat(adversarial)}, path)
    return {"file": path.name, "count": len(subset), "sha256": file_sha256(path)}


def _ray_running() -> bool:
    try:
        import ray
    except ImportError:  # the attack also runs where only torch is installed
        return False
    return ray.is_initialized()
