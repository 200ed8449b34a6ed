"""The embedded default's method study: every method at its defaults on `novel_shapes`, several seeds.

    .venv/bin/python benchmarks/embedded_study.py [--train-per-class 20] [--methods linear finetune ...]
        [--seeds 0 1 2] [--workers 2] [--device cpu|cuda] [--weights SOURCE.pt] [--set key=value ...]
        [--whitebox 0.03 0.1]

Trials run without Ray (so the study also runs where only torch is installed, e.g. a lent GPU machine), in
`--workers` processes with one torch thread each. The adversarial test set is crafted once on the source
model (`embedded` preset) and every trained model is scored on it. Prints one row per method: validation
and test clean accuracy, test ASR and uniform-noise ASR, mean (min–max) over the seeds. `--whitebox EPS ...`
adds each trained model's test accuracy under a white-box PGD-10 on its own cross-entropy at each budget
(pixels): whether adversarial training made the model robust at all, whatever the transfer attack does.
"""
import argparse
import multiprocessing
import statistics
import sys
import time

import torch

from trainables.advertorch_compat import LinfPGDAttack
from trainables.attack import PenultimateAttack, uniform_noise
from trainables.attack_presets import attack_config
from trainables.config import resolve_config
from trainables.data.registry import NOVEL_TEXTURE_SET, NOVEL_TRAIN_PER_CLASS, novel_shapes_task
from trainables.data.synthetic import NOVEL_SHAPES
from trainables.evaluation import attack_counts, predictions
from trainables.models.network import build_network
from trainables.models.weights import file_pretrained
from trainables.train import TransferRun
from trainables.trial import pretrained_for
from tuner.cli import parse_assignments


def source(weights: str | None):
    if weights:
        return file_pretrained(weights)
    return pretrained_for(resolve_config({"method": "finetune", "dataset": "novel_shapes"}))


def design_classes(textures: str) -> tuple[tuple[str, str], ...]:
    return tuple((shape, texture) for shape in NOVEL_SHAPES for texture in textures.split(","))


def craft(weights: str | None, textures: str, budgets: list[float], device: str) -> dict:
    """{budget: (clean test images, adversarial versions, labels)}: the test split is the same for every
    training-set size."""
    data = novel_shapes_task(1.0, 0, 0.1, classes=design_classes(textures))
    images = torch.stack([data.test[i][0] for i in range(len(data.test))])
    labels = torch.tensor([data.test[i][1] for i in range(len(data.test))])
    network = build_network("resnet18_w32", data.num_classes, source(weights)).to(device).eval()
    crafted = {}
    for budget in budgets:
        torch.manual_seed(0)
        attack = PenultimateAttack(network, attack_config("embedded", budget=budget))
        crafted[budget] = (images, torch.cat([attack.perturb(b.to(device)).cpu() for b in images.split(256)]), labels)
    return crafted


def score(model, crafted: tuple, budget: float, device: str) -> dict:
    images, adversarial, labels = crafted
    target = torch.device(device)
    clean, _ = predictions(model, torch.utils.data.TensorDataset(images, labels), target)
    attacked, _ = predictions(model, torch.utils.data.TensorDataset(adversarial, labels), target)
    noisy_images = uniform_noise(images, attack_config("embedded", budget=budget), model.mean.cpu(), model.std.cpu(),
                                 torch.Generator().manual_seed(0))
    noisy, _ = predictions(model, torch.utils.data.TensorDataset(noisy_images, labels), target)
    counts, noise = attack_counts(labels, clean, attacked), attack_counts(labels, clean, noisy)
    return {"test_clean": counts.clean_acc, "test_asr": counts.asr, "noise_asr": noise.asr}


def whitebox_accuracy(model, crafted: tuple, budgets: list[float], device: str) -> dict:
    """{"wb_<eps>": test accuracy under PGD-10 (step eps/4, random start) on the model's own cross-entropy}."""
    images, _, labels = crafted
    accuracies = {}
    for eps in budgets:
        torch.manual_seed(0)
        pgd = LinfPGDAttack(model, loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), eps=eps, nb_iter=10,
                            eps_iter=eps / 4, rand_init=True, clip_min=0.0, clip_max=1.0)
        correct = 0
        for batch, batch_labels in zip(images.split(250), labels.split(250)):
            adversarial = pgd.perturb(batch.to(device), batch_labels.to(device))
            with torch.no_grad():
                correct += int((model(adversarial).argmax(1).cpu() == batch_labels).sum())
        accuracies[f"wb_{eps:g}"] = 100.0 * correct / len(labels)
    return accuracies


def run_trial(job: tuple) -> list[dict]:
    method, seed, textures, train_per_class, overrides, weights, device, crafted, whitebox = job
    torch.set_num_threads(1)
    started = time.time()
    config = resolve_config({"method": method, "dataset": "novel_shapes", "seed": seed, **overrides})
    data = novel_shapes_task(1.0, seed, config.val_fraction, train_per_class, design_classes(textures))
    run = TransferRun(config, data, source(weights), device)
    for _ in run.reports():
        pass
    model = run.evaluation_model().eval()
    val_predicted, val_labels = predictions(model, data.val, torch.device(device))
    common = {"method": method, "seed": seed, "design": f"{textures} x{train_per_class}",
              "val_clean": 100.0 * int((val_predicted == val_labels).sum()) / len(val_labels),
              "seconds": time.time() - started}
    common |= whitebox_accuracy(model, next(iter(crafted.values())), whitebox, device)
    return [common | {"budget": budget} | score(model, sets, budget, device) for budget, sets in crafted.items()]


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):6.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, nargs="+", default=[NOVEL_TRAIN_PER_CLASS])
    parser.add_argument("--textures", nargs="+", default=[",".join(NOVEL_TEXTURE_SET)],
                        help="comma-separated textures per design: classes = the novel shapes x these")
    parser.add_argument("--budgets", type=float, nargs="+", default=[attack_config("embedded").budget])
    parser.add_argument("--methods", nargs="+", default=["linear", "finetune", "retrain", "delta_r", "renofeation"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", help="the source model's state dict (default: the embedded source)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config for every trial")
    parser.add_argument("--whitebox", type=float, nargs="*", default=[], metavar="EPS",
                        help="also report test accuracy under white-box PGD-10 on each model at these budgets")
    args = parser.parse_args()
    overrides = parse_assignments(args.set)
    crafted = {textures: craft(args.weights, textures, args.budgets, args.device) for textures in args.textures}
    jobs = [(method, seed, textures, per_class, overrides, args.weights, args.device, crafted[textures], args.whitebox)
            for textures in args.textures for per_class in args.train_per_class for method in args.methods
            for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = [row for rows in pool.map(run_trial, jobs) for row in rows]
    print(f"device {args.device}; embedded attack preset (pixels) at B = {args.budgets}; seeds {args.seeds}; "
          f"overrides {overrides}", file=sys.stderr)
    whitebox = [f"wb_{eps:g}" for eps in args.whitebox]
    print("| design | B | method | val clean % | test clean % | test ASR % | noise ASR % | "
          + "".join(f"white-box PGD-10 acc. % at {eps:g} | " for eps in args.whitebox) + "s/trial |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(whitebox) + "---|")
    for design in dict.fromkeys(r["design"] for r in results):
        for budget in args.budgets:
            for method in args.methods:
                rows = [r for r in results if (r["method"], r["design"], r["budget"]) == (method, design, budget)]
                print(f"| {design} | {budget:g} | {method} | {spread([r['val_clean'] for r in rows])} | "
                      f"{spread([r['test_clean'] for r in rows])} | {spread([r['test_asr'] for r in rows])} | "
                      f"{spread([r['noise_asr'] for r in rows])} | "
                      + "".join(f"{spread([r[key] for r in rows])} | " for key in whitebox)
                      + f"{statistics.fmean(r['seconds'] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
