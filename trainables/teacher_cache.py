"""The frozen teacher's features of every image training can show it, computed once and shared by every step,
trial and run: a DELTA / DELTA-R / Renofeation step then costs about a fine-tuning step.

`FeatureDistillation` compares the student's stage outputs with the pretrained model's on the same batch. The
teacher is frozen and in evaluation mode (no spatial dropout: only the student has it; BatchNorm on its running
statistics), so its features are a pure function of (its weights, the input image). Where the training transform
can only make a small known set of images of each training image, the features of all of them are computed once
into the cache directory and every step reads its batch's rows instead of running the teacher (about a third of a
fine-tuning step on the CPU).

Choices:

- Which images a batch holds: by content, not by dataset index. Each input image's exact bytes are hashed
  (SHA-256 cut to 128 bits) and looked up in the entry's table. The loop is untouched: the DataLoader and its workers,
  `IterationBatches` and the exact resume work as before, and a hit is by construction the very image the
  features were computed of. An image the table lacks (the PGD half of delta_adv's batch; a transform that
  changed) goes to the live teacher, the rest of the batch is served from the table.
- Which transforms qualify: `TransferData.finite_training_transform` / `TensorImageDataset.variants`: none, or
  crops with constant padding and flips, whose outputs can be enumerated. The embedded datasets are augmented
  (novel_shapes and synthetic: RandomCrop(32, padding=2) x horizontal flip = 25 x 2 = 50 images per training
  image; digits: 25), so the entry holds every variant of every training image. The paper datasets and
  imagefolder use RandomResizedCrop (a continuum): their trials always distil from the live teacher, whatever
  `teacher_cache` says.
- Memory: every variant x every training image x every distilled stage, in the dtype the live teacher produces
  (fp32). The embedded default (novel_shapes, resnet18_w32 at 32 px): 1,800 images x 50 variants x
  (32*8*8 + 64*4*4 + 128*2*2 + 256 = 3,840 values) x 4 bytes = 1.29 GiB on disk, built by 90,000 teacher forward
  passes (47 s on one thread here, once per pretrained model and training set: about what 2 DELTA trials, or
  0.7 of a Renofeation trial, spend on the live teacher; every later trial and run reads it). The stage files are
  memory-mapped .npy files: trials running at once on a node share one copy in the page cache, and a step reads
  only its batch's rows (64 x 15 KiB; with the hashing, 1.3 ms a step). Opening it verifies its checksums (1.5 s
  for 1.29 GiB). Above MAX_ENTRY_BYTES a trial distils from the live teacher.
- Where: the CPU only (CACHED_DEVICES). On a GPU the lookup (hashing needs the batch on the host) costs what the
  teacher's forward pass does, so GPU trials keep the live teacher. The code keeps the device, the features' dtype
  (an autocast run's, as the live teacher gives them) and the memory format in the key all the same.
- Exactness: on the CPU a convolution's output for one image does not depend on the other images of its batch
  (measured bit-identical for batches of 2 to 256, at 1 and 2 threads; a batch of one image takes another kernel
  path, ~1e-6 apart, so the build never makes one), so a run served from the entry trains bit for bit like one
  with the live teacher: tests/test_teacher_cache.py compares whole DELTA and Renofeation runs (reports and
  weights) with `torch.equal`. (On an H200, bf16 autocast + channels_last also gave bit-identical features; in
  fp32 cuDNN's TF32 algorithms, picked by batch shape, differ by ~5e-3.)
- Sharing and integrity, as the adversarial sets do: one directory per key under `cache_dir`/teacher_features,
  the key hashing the teacher's weights digest, arch and distilled stages, the training images' content (order
  and labels aside) with the transform, the device and dtype, torch's version and this format's; the files are
  written first and sealed by a manifest holding each file's SHA-256, written last by an atomic rename. A read
  verifies every checksum under the entry's file lock (a missing, half-written or damaged entry is built again,
  never read). One process builds; a trial that finds the lock taken distils from the live teacher and looks
  again every RETRY_STEPS steps (both give the same features), so concurrent trials never wait for each other.
- Checkpoints hold nothing of it (it is recomputable): `TransferRun.reports` calls
  `Regularizer.before_training`, which opens the entry (reads it, or builds it), also after a resume.
- `teacher_cache` (config key, default True) turns it off.
"""
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from trainables.cache import cache_root, file_sha256, verified_manifest
from trainables.models.backbones import TransferNet

if TYPE_CHECKING:  # trainables.regularizers imports this module
    from trainables.regularizers import RunParts

FORMAT_VERSION = 1  # bump when what an entry holds, or how it is keyed, changes
# 2 GiB: the embedded default's entry (1.29 GiB, above) fits; it is memory-mapped and shared, not copied per trial.
# A larger entry (e.g. the 10,000-image synthetic source task: 7.2 GiB) costs more disk and build time than most
# sweeps win back, so those trials keep the live teacher.
MAX_ENTRY_BYTES = 2 * 2**30
# CPU only. On a GPU the teacher's forward pass costs about what the lookup does (hashing needs the batch on the
# host): measured on an H200 on the embedded default, 9.7 ms per DELTA step served from the entry vs 9.5 ms with the
# live teacher under bf16 autocast (fine-tuning 7.2 ms), so a GPU trial keeps the live teacher and no disk.
CACHED_DEVICES = ("cpu",)
BUILD_BATCH = 256  # images per teacher forward pass while building
RETRY_STEPS = 25  # while another process builds the entry: steps between looks
MANIFEST = "manifest.json"
KEYS_FILE = "keys.npy"
DIGEST_BYTES = 16
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # stored as raw bits: bf16 has no numpy dtype


def image_digests(images: torch.Tensor) -> list[bytes]:
    """Each image's content hash (its exact values, NCHW, whatever its device and memory format)."""
    pixels = images.detach().to("cpu").contiguous().numpy()
    # SHA-256 cut to 128 bits: twice BLAKE2b's speed where the CPU has SHA instructions (0.7 ms per batch of 64
    # 32-px images here); collisions are out of reach either way.
    return [hashlib.sha256(pixels[i]).digest()[:DIGEST_BYTES] for i in range(len(pixels))]


@dataclass(frozen=True)
class _Entry:
    rows: dict[bytes, int]  # image digest -> row of the stage files
    stages: list[np.ndarray]  # memory-mapped, one per distilled stage, raw bits of `dtype`
    dtype: torch.dtype


@dataclass(frozen=True)
class _Plan:
    key: str
    key_fields: dict
    variants: int  # per training image
    shapes: list[tuple[int, ...]]  # one image's features per stage
    dtype: torch.dtype

    @property
    def rows(self) -> int:
        return self.key_fields["images"] * self.variants

    @property
    def bytes(self) -> int:
        return self.rows * sum(int(np.prod(shape)) for shape in self.shapes) * self.dtype.itemsize


class TeacherFeatureCache:
    """The teacher's stage features of every image the training transform can make, served by content."""

    def __init__(self, teacher: TransferNet, parts: "RunParts"):
        self.teacher, self.dataset, self.device = teacher, parts.data.train, parts.device
        self.base_fields = {"version": FORMAT_VERSION, "image_digest": f"sha256/{DIGEST_BYTES}",
                            "weights_digest": parts.pretrained.digest,
                            "arch": parts.config.arch, "stages": list(teacher.layout.stages)}
        self.root = cache_root(parts.config.cache_dir) / "teacher_features"
        self.entry: _Entry | None = None
        self.plan: _Plan | None = None
        self.off = False  # too large: the live teacher for the whole run
        self.steps_until_look: int | None = None  # set while another process builds the entry
        self.served = self.computed = 0  # images answered from the entry / by the live teacher

    @classmethod
    def for_run(cls, teacher: TransferNet, parts: "RunParts") -> "TeacherFeatureCache | None":
        """A cache for this run, or None: turned off, not on the CPU, or a training transform that makes too many
        images."""
        if not parts.config.teacher_cache or parts.device.type not in CACHED_DEVICES:
            return None
        return cls(teacher, parts) if parts.data.finite_training_transform else None

    def open(self) -> None:
        """Read the entry, or build it; called before training, under the trial's autocast (the features are then
        in the dtype the live teacher gives). A no-op once open."""
        if self.entry is not None or self.off or self.steps_until_look is not None:
            return
        self.plan = self._plan()
        if self.plan.bytes > MAX_ENTRY_BYTES:
            print(f"teacher features of {self.plan.rows:,} training images would take {self.plan.bytes / 2**30:.2f} "
                  f"GiB (limit {MAX_ENTRY_BYTES / 2**30:.0f} GiB): distilling from the live teacher", file=sys.stderr)
            self.off = True
            return
        self._look()

    def stages(self, images: torch.Tensor, live) -> list[torch.Tensor]:
        """The teacher's stage outputs on `images`: from the entry where it holds them, else `live(images)`."""
        if self.steps_until_look is not None:
            self.steps_until_look -= 1
            if self.steps_until_look <= 0:
                self._look()
        if self.entry is None:
            self.computed += len(images)
            return live(images)
        rows = [self.entry.rows.get(digest) for digest in image_digests(images)]
        hits = [i for i, row in enumerate(rows) if row is not None]
        missing = [i for i, row in enumerate(rows) if row is None]
        self.served, self.computed = self.served + len(hits), self.computed + len(missing)
        if not hits:
            return live(images)
        selected = np.array([rows[i] for i in hits])
        cached = [torch.from_numpy(stage[selected]).view(self.entry.dtype).to(images.device)
                  for stage in self.entry.stages]
        if not missing:
            return cached
        computed = live(images[missing])
        merged = []
        for from_entry, from_teacher in zip(cached, computed, strict=True):
            full = from_entry.new_empty((len(rows), *from_entry.shape[1:]))
            full[hits], full[missing] = from_entry, from_teacher.to(from_entry.dtype)
            merged.append(full)
        return merged

    def _plan(self) -> _Plan:
        """The entry's key and size, from one probe forward pass on two variants of the first image."""
        probe = self.dataset.variants(0)
        with torch.no_grad():
            features = self.teacher.forward_features(probe[:2].to(self.device))[1]
        fields = self.base_fields | {
            "images": len(self.dataset), "training_images": _content(self.dataset), "device": self._device_name(),
            "dtype": str(features[0].dtype), "channels_last": _is_channels_last(self.teacher),
            "torch": torch.__version__,
        }
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
        return _Plan(key, fields, len(probe), [tuple(f.shape[1:]) for f in features], features[0].dtype)

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return self.device.type

    def _look(self) -> None:
        """Open the entry, building it first if it is missing or damaged, unless another process holds its lock."""
        directory = self.root / self.plan.key
        self.steps_until_look = None
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(directory) + ".lock", timeout=0):
                try:
                    found = verified_manifest(directory, MANIFEST, lambda manifest: manifest["files"].items(),
                                              "teacher features")
                    self.entry = _open(directory, found or self._build(directory))
                except OSError:
                    shutil.rmtree(directory, ignore_errors=True)  # under the lock: no other process is writing it
                    raise
        except Timeout:  # before OSError: filelock's Timeout is one
            self.steps_until_look = RETRY_STEPS
        except OSError as error:  # e.g. a full disk: the trial goes on with the live teacher rather than failing
            print(f"teacher features could not be cached in {directory} ({error}); distilling from the live teacher",
                  file=sys.stderr)
            self.off = True

    def _build(self, directory: Path) -> dict:
        with torch.random.fork_rng(devices=[]):  # draws nothing; the training stream stays untouched regardless
            return self._compute(directory)

    def _compute(self, directory: Path) -> dict:
        plan = self.plan
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        print(f"teacher features: {len(self.dataset):,} training images x {plan.variants} variants = "
              f"{plan.rows:,} images, {plan.bytes / 2**30:.2f} GiB, computed once into {directory}", file=sys.stderr)
        bits = _BITS[plan.dtype.itemsize]
        stages = [np.lib.format.open_memmap(directory / f"stage-{j}.npy", mode="w+", shape=(plan.rows, *shape),
                                            dtype=torch.empty(0, dtype=bits).numpy().dtype)
                  for j, shape in enumerate(plan.shapes)]
        keys = np.empty((plan.rows, DIGEST_BYTES), dtype=np.uint8)
        with tqdm(total=plan.rows, desc="teacher features (once)", unit="img", file=sys.stderr, leave=False) as bar:
            for start, stop in _chunks(len(self.dataset), plan.variants):
                images = torch.cat([self.dataset.variants(index) for index in range(start, stop)])
                on_device = images.to(self.device)
                if plan.key_fields["channels_last"]:  # as the trial hands the live teacher its batches
                    on_device = on_device.contiguous(memory_format=torch.channels_last)
                with torch.no_grad():
                    features = self.teacher.forward_features(on_device)[1]
                rows = slice(start * plan.variants, stop * plan.variants)
                keys[rows] = np.frombuffer(b"".join(image_digests(images)), dtype=np.uint8).reshape(-1, DIGEST_BYTES)
                for stage, values in zip(stages, features, strict=True):
                    stage[rows] = values.detach().contiguous().view(bits).cpu().numpy()
                bar.update(len(images))
        for stage in stages:
            stage.flush()
        np.save(directory / KEYS_FILE, keys)
        return _seal(directory, plan, len(stages))


def _content(dataset) -> str:
    """The training images' identity for the key: their content and the transform, not their order or labels
    (every seed's trial shares the entry)."""
    digests = image_digests(dataset.images) if hasattr(dataset, "images") else \
        [digest for index in range(len(dataset)) for digest in image_digests(dataset.variants(index))]
    content = hashlib.sha256(b"".join(sorted(digests)))
    content.update(repr(getattr(dataset, "transform", None)).encode())
    return content.hexdigest()


def _chunks(images: int, variants: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of training images, about BUILD_BATCH variants each; never a lone image in a batch
    (a batch of one takes another kernel path: its features would differ from the live teacher's in the last bits)."""
    per = max(1, BUILD_BATCH // variants)
    chunks = [(start, min(start + per, images)) for start in range(0, images, per)]
    if len(chunks) > 1 and (chunks[-1][1] - chunks[-1][0]) * variants == 1:
        chunks[-2:] = [(chunks[-2][0], images)]
    return chunks


def _is_channels_last(model: torch.nn.Module) -> bool:
    return any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in model.parameters())


def _seal(directory: Path, plan: _Plan, stage_count: int) -> dict:
    """Write the manifest last, atomically: it makes the entry readable."""
    files = [KEYS_FILE] + [f"stage-{j}.npy" for j in range(stage_count)]
    manifest = {"key": plan.key, "key_fields": plan.key_fields, "rows": plan.rows, "variants": plan.variants,
                "dtype": str(plan.dtype), "files": {name: file_sha256(directory / name) for name in files}}
    partial = directory / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, directory / MANIFEST)
    return manifest


def _open(directory: Path, manifest: dict) -> _Entry:
    keys = np.load(directory / KEYS_FILE)
    stage_files = sorted((name for name in manifest["files"] if name.startswith("stage-")),
                         key=lambda name: int(name.removeprefix("stage-").removesuffix(".npy")))
    stages = [np.load(directory / name, mmap_mode="r") for name in stage_files]
    dtype = getattr(torch, manifest["dtype"].removeprefix("torch."))
    return _Entry({bytes(key): row for row, key in enumerate(keys)}, stages, dtype)
