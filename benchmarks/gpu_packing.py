"""Trials per GPU: N training processes share one GPU (what --gpus-per-trial 1/N gives), aggregate throughput
and the GPU's utilisation as nvidia-smi samples it.

    python benchmarks/gpu_packing.py [--arch resnet18] [--image-size 224] [--method renofeation]
        [--processes 1,2,4] [--seconds 20] [--precision amp]

Each process runs `benchmarks/trial_speed.py`'s loop (random data of the right shape, no data loading: this
measures what the GPU can take, not the input pipeline) for a fixed time; Ray only does the bookkeeping of
fractional GPUs, so N plain processes on one GPU are what N trials at 1/N GPU each are. Prints per N: each
process's it/s, the sum, the speed-up over N = 1, mean GPU utilisation and peak memory used on the card.
"""
import argparse
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

WORKER = """
import sys, time, torch
sys.path.insert(0, {root!r})
from benchmarks.trial_speed import PRECISIONS, random_task
from trainables.config import resolve_config
from trainables.models.backbones import build_body
from trainables.models.weights import Pretrained
from trainables.train import TransferRun
data = random_task({size})
config = resolve_config({{"method": {method!r}, "arch": {arch!r}, "batch_size": {batch}, "iters": 10**6,
                         "swa": False, **PRECISIONS[{precision!r}]}})
body, _ = build_body({arch!r}, num_classes=1000)
torch.set_num_threads(1)
run = TransferRun(config, data, Pretrained(body.state_dict(), "random", "random"), {device!r})
images = torch.stack([data.train[i][0] for i in range({batch})]).to({device!r})
labels = torch.tensor([data.train[i][1] for i in range({batch})], device={device!r})
for _ in range(5):
    run.step(images, labels)
torch.cuda.synchronize() if {device!r} == "cuda" else None
print("ready", flush=True)
sys.stdin.readline()
steps, started = 0, time.perf_counter()
while time.perf_counter() - started < {seconds}:
    run.step(images, labels)
    steps += 1
torch.cuda.synchronize() if {device!r} == "cuda" else None
print(steps / (time.perf_counter() - started), flush=True)
"""


def sample_gpu(stop: threading.Event, samples: list) -> None:
    if shutil.which("nvidia-smi") is None:  # a CPU check of the script itself
        samples.append((math.nan, math.nan))
        return
    while not stop.is_set():
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout.split("\n")[0]
        utilisation, memory = (float(v) for v in out.split(","))
        samples.append((utilisation, memory))
        time.sleep(0.5)


def run_together(count: int, args) -> tuple[list[float], float, float]:
    code = WORKER.format(root=str(Path(__file__).resolve().parents[1]), size=args.image_size, method=args.method,
                         arch=args.arch, batch=args.batch_size, precision=args.precision, seconds=args.seconds,
                         device=args.device)
    processes = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) for _ in range(count)]
    for process in processes:  # all built and warmed up before any is timed
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed: exit {process.wait()}")
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_gpu, args=(stop, samples))
    sampler.start()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    speeds = [float(process.stdout.readline()) for process in processes]
    stop.set()
    sampler.join()
    for process in processes:
        process.wait()
    busy = samples[1:-1] or samples  # the first and last samples straddle start and end
    return speeds, sum(u for u, _ in busy) / len(busy), max(m for _, m in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--method", default="renofeation")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--precision", default="amp", choices=("amp", "fp32"))
    parser.add_argument("--device", default="cuda", help="cpu only to check the script (1 thread per process)")
    args = parser.parse_args()
    gpu = args.device if shutil.which("nvidia-smi") is None else subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    print(f"{args.method} {args.arch} at {args.image_size}px, batch {args.batch_size}, {args.precision}, on {gpu}")
    alone = None
    for count in (int(n) for n in args.processes.split(",")):
        speeds, utilisation, memory = run_together(count, args)
        alone = alone or sum(speeds)
        print(f"{count} per GPU (--gpus-per-trial {1 / count:.2g}): each {', '.join(f'{s:.1f}' for s in speeds)} "
              f"it/s, total {sum(speeds):.1f} it/s ({sum(speeds) / alone:.2f}x one), GPU busy {utilisation:.0f} %, "
              f"memory used {memory / 1024:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
