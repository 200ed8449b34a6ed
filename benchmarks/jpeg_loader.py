"""Is the input pipeline the bottleneck on a JPEG dataset? Images per second of the trial's own training DataLoader
vs images per second of the training step it feeds.

    .venv/bin/python benchmarks/jpeg_loader.py [--device cpu|cuda] [--images 240] [--num-workers N]
        [--sweep-workers 0,1,2,4] [--method finetune] [--arch resnet18] [--batch-size 64] [--steps 3]

Writes `--images` real JPEG files (PIL, random content, sizes 300-500 px on each side, quality 90) into a temporary
folder in MIT Indoor 67's official layout (Images/<class>/*.jpg, TrainImages.txt, TestImages.txt), then builds
the training split exactly as a trial on a paper dataset does (`build_transfer_data`: the paper train transform,
RandomResizedCrop 224 + horizontal flip + to [0, 1] floats) and the DataLoader exactly as the trial does
(`TransferRun._loader` with `IterationBatches`: the config's batch size and num_workers, pinned memory on CUDA).

Loader: images/s drawn from a fresh loader in steady state (each worker's first batch, its start-up, is drawn
before the clock starts: a trial starts one loader per stage and draws thousands of batches from it); files are
read from the OS page cache, as every epoch after the first of a real run does. Step: `TransferRun.step` of
`--method` on `--arch` at 224 px with batch `--batch-size` on one in-memory batch, timed after warm-up steps
(benchmarks/trial_speed.py's approach); random "pretrained" weights: speed does not depend on them. The verdict:
loader images/s over step images/s; below 1 the GPU (or CPU) waits for data.

On CPU the step takes the process's threads (`--threads`, default every CPU this process may use): the loader's
workers then compete with it for the same cores, as they do in a CPU trial.
"""
import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.config import TrialConfig, resolve_config  # noqa: E402
from trainables.data.registry import build_transfer_data  # noqa: E402
from trainables.models.backbones import build_body  # noqa: E402
from trainables.models.weights import Pretrained  # noqa: E402
from trainables.threads import cpu_allotment, use_threads  # noqa: E402
from trainables.train import IterationBatches, TransferRun  # noqa: E402

CLASSES = 8
WARM_UP = 2


def write_indoor_layout(root: Path, images: int, seed: int = 0) -> None:
    """MIT Indoor 67's layout with `images` random JPEGs (90% listed for training, the rest for test)."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{index:02d}" for index in range(CLASSES)]
    train, test = [], []
    for number in range(images):
        name = classes[number % CLASSES]
        width, height = (int(side) for side in rng.integers(300, 501, size=2))
        # Smooth random content (a coarse random grid upsampled) plus noise: compresses like a photo, not like
        # white noise (too large) or a flat colour (too small).
        coarse = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
        pixels = np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
        relpath = f"{name}/image_{number:05d}.jpg"
        path = root / "Images" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, "JPEG", quality=90)
        (test if number % 10 == 9 else train).append(relpath)
    (root / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (root / "TestImages.txt").write_text("\n".join(test) + "\n")


def trial_run(root: Path, method: str, arch: str, batch_size: int, num_workers: int | None,
              device: torch.device) -> TransferRun:
    """The TransferRun a trial on this folder builds (random weights in place of the ImageNet ones)."""
    user = {"method": method, "dataset": "indoor", "data_root": str(root), "arch": arch, "batch_size": batch_size,
            "iters": 10_000, "swa": False}
    if num_workers is not None:
        user["num_workers"] = num_workers
    config = resolve_config(user)
    data = build_transfer_data(config.dataset, config.data_root, config.fraction, config.seed,
                               val_fraction=config.val_fraction)
    body, _ = build_body(arch, num_classes=1000)
    return TransferRun(config, data, Pretrained(body.state_dict(), "random", "random"), device)


def loader_images_per_s(run: TransferRun, batches: int) -> float:
    """Steady-state images/s of the trial's training loader: the first batch of each worker (start-up: a trial
    starts one loader per stage and draws thousands of batches from it) is drawn before the clock starts."""
    config = run.config
    loader = iter(run._loader(run.data.train, IterationBatches(len(run.data.train), config.batch_size, config.seed,
                                                               0, batches + max(1, config.num_workers))))
    for _ in range(max(1, config.num_workers)):
        next(loader)
    started, count = time.perf_counter(), 0
    for images, _ in loader:
        count += images.shape[0]
    return count / (time.perf_counter() - started)


def pipeline_images_per_s(run: TransferRun, batches: int) -> float:
    """Steady-state images/s of the trial's own training batches (`TransferRun._training_batches`): on CUDA with
    `gpu_decode` the workers only read the files and each batch is decoded and augmented on the GPU."""
    pipeline = run._training_batches()
    for _ in range(max(1, run.config.num_workers)):
        next(pipeline)
    started, count = time.perf_counter(), 0
    for _ in range(batches):
        images, _ = next(pipeline)
        count += images.shape[0]
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - started)


def step_images_per_s(run: TransferRun, steps: int) -> float:
    images, labels = next(iter(run._loader(run.data.train, IterationBatches(
        len(run.data.train), run.config.batch_size, run.config.seed, 0, 1))))
    images, labels = images.to(run.device), labels.to(run.device)
    for _ in range(WARM_UP):
        run.step(images, labels)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        run.step(images, labels)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * images.shape[0] / (time.perf_counter() - started)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=240, help="JPEG files written (90%% of them train)")
    parser.add_argument("--num-workers", type=int, default=TrialConfig.num_workers,
                        help="the loader's workers (default: a paper-dataset trial's default num_workers)")
    parser.add_argument("--sweep-workers", default="",
                        help="comma-separated worker counts to measure as well, e.g. 0,1,2,4")
    parser.add_argument("--batches", type=int, default=0,
                        help="timed batches per loader measurement (default: two passes over the train split, "
                             "at least 4 per worker)")
    parser.add_argument("--repeats", type=int, default=2, help="loader measurements per worker count (median)")
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=TrialConfig.batch_size)
    parser.add_argument("--steps", type=int, default=0, help="timed training steps (default: 3 on CPU, 30 on CUDA)")
    parser.add_argument("--threads", type=int, default=cpu_allotment(), help="torch threads of this process")
    parser.add_argument("--keep", type=Path, help="write the JPEG folder here (kept) instead of a temporary one")
    return parser.parse_args()


def measure_loaders(run: TransferRun, counts: list[int], batches: int, repeats: int, default: int) -> dict:
    """Median loader images/s per worker count."""
    rates = {}
    for workers in counts:
        run.config = dataclasses.replace(run.config, num_workers=workers)
        runs = [loader_images_per_s(run, batches) for _ in range(repeats)]
        rates[workers] = statistics.median(runs)
        notes = " (the trial default)" if workers == default else ""
        notes += " (more workers than CPUs)" if workers > cpu_allotment() else ""
        print(f"loader, num_workers={workers}{notes}: "
              f"{rates[workers]:8.1f} images/s  (runs: {', '.join(f'{rate:.1f}' for rate in runs)})", flush=True)
    return rates


def main() -> None:
    args = arguments()
    # torch warns, twice, when workers outnumber the CPUs: the figures below say what that costs
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    use_threads(args.threads)
    device = torch.device(args.device)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    counts = [args.num_workers] + [int(c) for c in args.sweep_workers.split(",")
                                   if c.strip() and int(c) != args.num_workers]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "indoor"
        started = time.perf_counter()
        write_indoor_layout(root, args.images)
        size = sum(path.stat().st_size for path in root.rglob("*.jpg"))
        print(f"{args.images} JPEGs (300-500 px, {size / args.images / 1024:.0f} KiB each) written in "
              f"{time.perf_counter() - started:.1f} s to {root}")
        run = trial_run(root, args.method, args.arch, args.batch_size, args.num_workers, device)
        per_pass = len(run.data.train) // min(args.batch_size, len(run.data.train))
        batches = args.batches or max(2 * per_pass, 4 * max(1, *counts))
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({args.threads} threads)"
        print(f"{os.cpu_count()} CPUs, torch {torch.__version__}; train split {len(run.data.train)} images, "
              f"batch {run.config.batch_size}, {batches} batches per loader measurement", flush=True)
        loader_rates = measure_loaders(run, counts, batches, args.repeats, args.num_workers)
        if device.type == "cuda":
            run.config = dataclasses.replace(run.config, num_workers=args.num_workers, gpu_decode=True)
            loader_rates["gpu_decode"] = pipeline_images_per_s(run, batches)
            print(f"pipeline with gpu_decode, num_workers={args.num_workers} (the CUDA default): "
                  f"{loader_rates['gpu_decode']:8.1f} images/s", flush=True)
        step = step_images_per_s(run, steps)
        print(f"step, {args.method} {args.arch} 224 px batch {run.config.batch_size} on {name}: {step:8.1f} images/s "
              f"({steps} steps after {WARM_UP} warm-up)")
    decoders = (("CPU decoding", loader_rates[args.num_workers]), ("gpu_decode", loader_rates.get("gpu_decode")))
    for name, rate in decoders:
        if rate is not None:
            verdict = "keeps up" if rate >= step else "BOTTLENECK: the step waits for the data"
            print(f"verdict, {name} at num_workers={args.num_workers}: data / step = {rate / step:.2f} ({verdict})")


if __name__ == "__main__":
    main()
