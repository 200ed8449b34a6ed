"""Milliseconds per training step of DELTA and Renofeation, with the teacher's features cached
(trainables.teacher_cache) and without (`teacher_cache` False), beside fine-tuning, on the embedded default.

    .venv/bin/python benchmarks/distillation_step.py [--threads 1] [--repeats 7] [--steps 5] [--cache-dir DIR]

The embedded default (novel_shapes, resnet18_w32 at 32 px, batch 64) on the CPU, real augmented batches drawn by
the training loop's own loader. Every run is built first (the first cached one reads the cache entry, or builds it:
printed apart), warmed up, then the runs are timed side by side: each repeat times `--steps` steps of every run in
turn, so a change in the machine's load hits them all alike; the table gives the median over repeats (and the
range). Targets: live teacher <= 1.35x fine-tuning, cached ~1.0x.
"""
import argparse
import statistics
import time

import torch

from trainables.config import resolve_config
from trainables.train import IterationBatches, TransferRun
from trainables.trial import prepare_run

WARM_UP = 3
BATCHES = 4  # distinct augmented batches the timed steps cycle through
RUNS = (("finetune", None), ("delta", True), ("delta", False), ("renofeation", True), ("renofeation", False))
LIVE_TARGET, CACHED_TARGET = 1.35, 1.05


def build_run(method: str, cached: bool | None, cache_dir: str | None) -> tuple[TransferRun, float]:
    """The run, ready to step, and the seconds its teacher cache took to open (read or build)."""
    user = {"method": method, "iters": 100_000, "cache_dir": cache_dir}
    if cached is not None:
        user["teacher_cache"] = cached
    run = prepare_run(resolve_config(user))
    started = time.perf_counter()
    if run.regularizer is not None:
        run.regularizer.before_training()  # what TransferRun.reports does before its first step
    return run, time.perf_counter() - started


def training_batches(run: TransferRun) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sampler = IterationBatches(len(run.data.train), run.config.batch_size, run.config.seed, 0, BATCHES)
    return list(run._loader(run.data.train, sampler))


def time_steps(run: TransferRun, batches: list, steps: int) -> float:
    """Milliseconds per step over `steps` steps."""
    started = time.perf_counter()
    for step in range(steps):
        run.step(*batches[step % len(batches)])
    return 1000 * (time.perf_counter() - started) / steps


def label(method: str, cached: bool | None) -> str:
    return method if cached is None else f"{method} ({'cached' if cached else 'live'} teacher)"


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    runs = {}
    for method, cached in RUNS:
        run, opened = build_run(method, cached, args.cache_dir)
        if cached:
            print(f"{label(method, cached)}: teacher cache opened in {opened:.1f} s "
                  f"({run.regularizer.teacher_cache.plan.bytes / 2**30:.2f} GiB)")
        runs[label(method, cached)] = run
    batches = training_batches(next(iter(runs.values())))
    for run in runs.values():
        time_steps(run, batches, WARM_UP)
    timings = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            timings[name].append(time_steps(run, batches, args.steps))
    for name, run in runs.items():
        cache = getattr(run.regularizer, "teacher_cache", None)
        if cache is not None:
            assert cache.computed == 0 and cache.served > 0, f"{name}: the cache did not serve every image"
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per run per repeat")
    parser.add_argument("--cache-dir", default=None, help="default: $RENOTUNE_CACHE or ~/.cache/renotune")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"embedded default (novel_shapes, resnet18_w32, 32 px, batch 64), cpu, {args.threads} thread(s), "
          f"torch {torch.__version__}; median of {args.repeats} interleaved repeats x {args.steps} steps")
    timings = measure(args)
    finetune = statistics.median(timings["finetune"])
    print(f"{'run':<30} {'ms/step':>8} {'range':>15} {'x finetune':>11}  target")
    for name, values in timings.items():
        median = statistics.median(values)
        target = "" if name == "finetune" else f"<= {CACHED_TARGET if 'cached' in name else LIVE_TARGET:.2f}x"
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{name:<30} {median:8.1f} {spread:>15} {median / finetune:10.2f}x  {target}")


if __name__ == "__main__":
    main()
