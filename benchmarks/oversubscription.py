"""Two `tuner.train` processes at once vs one alone: does the CPU get shared fairly (target: <= 2.2x slower on
2 cores), or do the processes' threads oversubscribe it (measured before thread allotments: ~20x)?

    .venv/bin/python benchmarks/oversubscription.py [--method finetune] [--iters 300] [--cpus 1]

Each process is a real `python -m tuner.train` (its own local Ray, one trial with `--cpus-per-trial` CPUs, so torch runs
`--cpus` threads in it) into a throw-away storage folder. The figure is the trial's own training time as Ray
Tune records it (`time_total_s`), so Ray's start-up is not counted.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start(method: str, iters: int, cpus: int, storage: Path, name: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tuner.train", "--method", method, "--iters", str(iters),
               "--cpus-per-trial", str(cpus), "--storage", str(storage), "--name", name]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def training_seconds(process: subprocess.Popen, storage: Path, name: str) -> float:
    output, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"tuner.train failed:\n{output[-2000:]}")
    last = (next(storage.glob(f"{name}/*/result.json"))).read_text().splitlines()[-1]
    return json.loads(last)["time_total_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=1,
                        help="CPUs (torch threads) each process is given: 1 is tuner.train's default; every CPU "
                             "of the machine for each process is the oversubscribed worst case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        storage = Path(scratch)
        alone = training_seconds(start(args.method, args.iters, args.cpus, storage, "alone"), storage, "alone")
        started = time.time()
        pair = [start(args.method, args.iters, args.cpus, storage, f"pair{i}") for i in range(2)]
        together = [training_seconds(process, storage, f"pair{i}") for i, process in enumerate(pair)]
        wall = time.time() - started
    print(f"{args.method}, {args.iters} iterations, --cpus {args.cpus} each, {os.cpu_count()} CPUs on the machine")
    print(f"alone:              {alone:7.1f} s")
    for index, seconds in enumerate(together):
        print(f"together, process {index}: {seconds:7.1f} s  slowdown {seconds / alone:5.2f}x (target <= 2.2)")
    print(f"both finished {wall:.0f} s after they started")


if __name__ == "__main__":
    main()
