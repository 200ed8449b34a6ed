"""The pieces of `benchmarks/gpu_ray_sweep.sh` (issue 22: real sweeps through Ray on a GPU) that are Python:

    python3 benchmarks/ray_sweep_figures.py imagefolder ROOT [--classes 20] [--per-class 100] [--size 224]
    python3 benchmarks/ray_sweep_figures.py weights ARCH FILE          # random-init torchvision weights
    python3 benchmarks/ray_sweep_figures.py summary RUN_DIR SWEEP_LOG SMI_CSV   # one JSON line per sweep
    python3 benchmarks/ray_sweep_figures.py table FIGURES_JSONL        # the figures side by side

`summary` reads Ray's own trial results (RUN_DIR/trials.parquet: each trial's start and last report), the
sweep's console log (`trials done in N s`, `auto: ...`) and `nvidia-smi` samples taken while it ran; `table`
also puts each family's packed runs beside its 1-GPU-per-trial run and the dry run's estimate beside the
measured trial phase (`DRYRUN <name> <log>` lines appended to FIGURES_JSONL by the shell script).
"""
import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path


def make_imagefolder(root: Path, classes: int, per_class: int, size: int) -> None:
    """train/<class>/*.jpg and test/<class>/*.jpg (a fifth as many), photo-sized JPEGs whose colour and a
    rectangle's position depend on the class (learnable), with noise (JPEG decoding costs what a photo's does)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", max(1, per_class // 5))):
        for label in range(classes):
            folder = root / split / f"class_{label:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                pixels = rng.integers(0, 256, (size + 32, size + 64, 3), dtype=np.uint8) // 2
                pixels[..., label % 3] += 100
                top = (label * 11) % size
                pixels[top:top + 40, top:top + 60] = 255
                Image.fromarray(pixels).save(folder / f"{number}.jpg", quality=90)


def save_weights(arch: str, path: Path) -> None:
    import torch
    import torchvision
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)


def smi_samples(path: Path, start: float, end: float) -> tuple[float | None, float | None]:
    """Mean GPU utilisation (%) and peak memory used (MiB) of the samples between `start` and `end` (epoch s)."""
    utilisation, memory = [], []
    for line in path.read_text().splitlines():
        try:
            stamp, busy, used = (field.strip() for field in line.split(","))
            at = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
        except ValueError:  # a header, a line cut off when the sampler was stopped
            continue
        if start <= at <= end:
            utilisation.append(float(busy))
            memory.append(float(used))
    return (sum(utilisation) / len(utilisation) if utilisation else None), (max(memory) if memory else None)


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


def summary(run_dir: Path, log: Path, smi: Path) -> dict:
    import pandas as pd

    from trainables.config import selection_metrics
    trials = pd.read_parquet(run_dir / "trials.parquet")
    accuracy, _ = selection_metrics(trials["selection_split"].iloc[0])
    start, end = trials["started_at"].min(), trials["ended_at"].max()
    settings = json.loads((run_dir / "sweep.json").read_text())["settings"]
    text = log.read_text()
    phase = re.search(r"trials done in (\d+) s", text)
    auto = re.search(r"^auto: (.*)$", text, re.MULTILINE)
    utilisation, memory = smi_samples(smi, start, end)
    return {"name": run_dir.name, "gpus_per_trial": settings["gpus_per_trial"],
            "cpus_per_trial": settings["cpus_per_trial"], "trials": len(trials),
            "errored": int((trials["status"] == "ERROR").sum()), "devices": sorted(set(trials["device"].dropna())),
            "peak_concurrent": peak_concurrency(list(zip(trials["started_at"], trials["ended_at"]))),
            "iterations": int(trials["iteration"].sum()), "trial_phase_s": int(phase[1]) if phase else None,
            "first_start_to_last_end_s": round(end - start, 1),
            "it_per_s_total": round(trials["iteration"].sum() / (end - start), 1),
            "it_per_s_per_trial": round(float((trials["iteration"] / trials["wall_s"]).median()), 1),
            "gpu_busy_pct": utilisation and round(utilisation),
            "gpu_memory_peak_gib": memory and round(memory / 1024, 1),
            "selection_accuracy": trials[accuracy].round(2).tolist(), "auto": auto and auto[1]}


def dry_run_estimate(log: Path) -> dict:
    """The dry run's GPU-hours and its `auto` line (chosen, or what auto would choose)."""
    text = log.read_text()
    hours = re.search(r"~([\d.]+) GPU-hours at --gpus-per-trial ([\d.e-]+)", text)
    auto = re.search(r"(?:auto|would choose): (\d+) trials? per GPU(.*)$", text, re.MULTILINE)
    return {"gpu_hours": float(hours[1]) if hours else None, "at": float(hours[2]) if hours else None,
            "auto_trials": int(auto[1]) if auto else None, "auto_line": auto and auto[0]}


def table(figures: Path) -> None:
    runs, estimates = {}, {}
    for line in figures.read_text().splitlines():
        if line.startswith("DRYRUN "):
            _, name, log = line.split(" ", 2)
            estimates[name] = dry_run_estimate(Path(log))
        elif line.strip():
            run = json.loads(line)
            runs[run["name"]] = run
    for name, run in runs.items():
        family = name.rsplit("_", 1)[0]
        alone = runs.get(f"{family}_1")
        ratio = f"{run['it_per_s_total'] / alone['it_per_s_total']:.2f}x" if alone else "-"
        print(f"{name}: {run['gpus_per_trial']} GPU/trial, peak {run['peak_concurrent']} concurrent of "
              f"{run['trials']} ({run['errored']} errored) on {run['devices']}; trial phase {run['trial_phase_s']} s; "
              f"{run['it_per_s_per_trial']} it/s per trial, {run['it_per_s_total']} in total ({ratio} vs 1 GPU/trial); "
              f"GPU {run['gpu_busy_pct']} % busy, {run['gpu_memory_peak_gib']} GiB peak; accuracies "
              f"{run['selection_accuracy']}" + (f"; auto: {run['auto']}" if run["auto"] else ""))
        _estimate_line(name, run, estimates.get(name))
    _auto_lines(runs, estimates)


def _estimate_line(name: str, run: dict, estimate: dict | None) -> None:
    if estimate and estimate["gpu_hours"] and run["trial_phase_s"]:
        measured = run["trial_phase_s"] / 3600  # one GPU held for the whole trial phase
        print(f"  dry run at {estimate['at']:g} GPU/trial: ~{estimate['gpu_hours']:.4f} GPU-hours of training steps vs "
              f"{measured:.4f} measured (trial phase x 1 GPU): {estimate['gpu_hours'] / measured:.2f}x")


def _auto_lines(runs: dict, estimates: dict) -> None:
    """Each family's auto choice (its dry run at 1 GPU/trial, or its auto sweep) against its measured best."""
    families = {name.rsplit("_", 1)[0]: estimate for name, estimate in reversed(estimates.items())}
    for family, estimate in families.items():  # the first dry run of each family
        measured = {1 / run["gpus_per_trial"]: run["it_per_s_total"] for run in runs.values()
                    if run["name"].rsplit("_", 1)[0] == family}
        if not estimate["auto_trials"] or not measured:
            continue
        best = max(measured.values())
        chosen = measured.get(estimate["auto_trials"])
        verdict = (f"{chosen / best:.0%} of the measured best" if chosen else "not measured at that packing")
        print(f"{family}: auto chose {estimate['auto_trials']} per GPU ({verdict}; measured total it/s by trials "
              f"per GPU {dict(sorted(measured.items()))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    folder = commands.add_parser("imagefolder")
    folder.add_argument("root", type=Path)
    folder.add_argument("--classes", type=int, default=20)
    folder.add_argument("--per-class", type=int, default=100)
    folder.add_argument("--size", type=int, default=224)
    weights = commands.add_parser("weights")
    weights.add_argument("arch")
    weights.add_argument("path", type=Path)
    one = commands.add_parser("summary")
    for name in ("run_dir", "log", "smi"):
        one.add_argument(name, type=Path)
    commands.add_parser("table").add_argument("figures", type=Path)
    args = parser.parse_args()
    if args.command == "imagefolder":
        make_imagefolder(args.root, args.classes, args.per_class, args.size)
    elif args.command == "weights":
        save_weights(args.arch, args.path)
    elif args.command == "summary":
        print(json.dumps(summary(args.run_dir, args.log, args.smi)))
    else:
        table(args.figures)


if __name__ == "__main__":
    sys.exit(main())
