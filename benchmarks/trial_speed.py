"""Training speed and peak memory of one trial per method: how many trials fit on one GPU (--gpus-per-trial).

    .venv/bin/python benchmarks/trial_speed.py [--arch resnet18] [--image-size 224] [--device cuda]
        [--methods finetune,delta,renofeation,delta_adv] [--iters 40] [--batch-size 64]
        [--precisions amp,fp32] [--compile]

Random images and random "pretrained" weights of the right shapes: speed and memory do not depend on the
pixel values, so this runs anywhere without datasets or weights. Times the main loop after 5 warm-up
iterations (the SWA stage costs the same per iteration); on CUDA also reports peak allocated memory, which
times the trials per GPU must fit in the card. `amp` is the trial's CUDA default (bf16 autocast or fp16 + loss
scaling, channels_last: trainables.precision), `fp32` the config with `amp` and `channels_last` off; `--compile`
adds each with `torch.compile` on the student's and the teacher's forward pass (compilation not timed).
"""
import argparse
import time

import torch

from trainables.config import resolve_config
from trainables.data.registry import TransferData
from trainables.data.tensors import TensorImageDataset
from trainables.models.backbones import build_body
from trainables.models.weights import Pretrained
from trainables.train import TransferRun

WARM_UP = 5


def random_task(image_size: int, images: int = 512, classes: int = 100) -> TransferData:
    generator = torch.Generator().manual_seed(0)
    train = TensorImageDataset(torch.rand(images, 3, image_size, image_size, generator=generator),
                               torch.randint(0, classes, (images,), generator=generator))
    test = TensorImageDataset(train.images[:256], train.labels[:256])
    return TransferData("random", classes, train, None, test, train)


PRECISIONS = {"amp": {"amp": True, "channels_last": True}, "fp32": {"amp": False, "channels_last": False}}


def measure(method: str, arch: str, data: TransferData, iters: int, batch_size: int, device: torch.device,
            precision: str = "amp", compiled: bool = False) -> dict:
    config = resolve_config({"method": method, "arch": arch, "batch_size": batch_size, "iters": iters + WARM_UP,
                             "eval_every": 10 * iters, "checkpoint_every": 10 * iters, "swa": False,
                             **PRECISIONS[precision]})
    body, _ = build_body(arch, num_classes=1000)
    run = TransferRun(config, data, Pretrained(body.state_dict(), "random", "random"), device)
    if compiled:
        run.student.compile()  # forward_features calls the module, so the compiled graph runs
        if run.regularizer is not None:
            run.regularizer.compile()
    images = torch.stack([data.train[i][0] for i in range(batch_size)]).to(device)
    labels = torch.tensor([data.train[i][1] for i in range(batch_size)], device=device)
    for _ in range(WARM_UP):
        run.step(images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(iters):
        run.step(images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"method": method, "it_per_s": iters / seconds, "peak_gib": peak,
            "setting": precision + (" compiled" if compiled else ""), "precision": run.precision.describe()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18_w32")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--methods", default="linear,finetune,delta,renofeation,delta_adv")
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precisions", default="amp", help="comma-separated: amp (the CUDA default), fp32")
    parser.add_argument("--compile", action="store_true", help="also measure each with torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = random_task(args.image_size)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({args.threads} threads)"
    print(f"{args.arch} at {args.image_size}px, batch {args.batch_size}, on {name}, torch {torch.__version__}")
    for method in args.methods.split(","):
        for precision in args.precisions.split(","):
            for compiled in (False, True) if args.compile else (False,):
                result = measure(method, args.arch, data, args.iters, args.batch_size, device, precision, compiled)
                print(f"{result['method']:>12} {result['setting']:<13} ({result['precision']}): "
                      f"{result['it_per_s']:7.1f} it/s   peak memory {result['peak_gib']:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
