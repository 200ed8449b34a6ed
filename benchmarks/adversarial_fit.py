"""Does adversarial training fit at all on the embedded default? One delta_adv trial, then white-box accuracy
under its own training attack (PGD-3) and PGD-10 at its training epsilon, on training images and on test.

    .venv/bin/python benchmarks/adversarial_fit.py EPS ITERS

Training images are scored as stored (no crop or flip); 600 of the 1,800 and 500 of the 1,000 test images.
Robust accuracy low on the training images too means the schedule never fits the adversarial half (not a
generalisation gap): docs/embedded-defaults.md, "Two ablation directions".
"""
import sys

import torch

from trainables.advertorch_compat import LinfPGDAttack
from trainables.config import resolve_config
from trainables.data.registry import novel_shapes_task
from trainables.train import TransferRun
from trainables.trial import pretrained_for


def robust_accuracy(model, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int, step: float) -> float:
    torch.manual_seed(0)
    pgd = LinfPGDAttack(model, loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), eps=eps, nb_iter=steps,
                        eps_iter=step, rand_init=True, clip_min=0.0, clip_max=1.0)
    adversarial = pgd.perturb(images, labels)
    with torch.no_grad():
        return 100.0 * float((model(adversarial).argmax(1) == labels).float().mean())


def main() -> None:
    torch.set_num_threads(1)
    eps, iters = float(sys.argv[1]), int(sys.argv[2])
    config = resolve_config({"method": "delta_adv", "dataset": "novel_shapes", "seed": 0, "adv_eps": eps,
                             "adv_step": eps / 3, "iters": iters})
    data = novel_shapes_task(1.0, 0, config.val_fraction)
    run = TransferRun(config, data, pretrained_for(config), "cpu")
    for _ in run.reports():
        pass
    model = run.evaluation_model().eval()
    for split, dataset, stride in (("train", data.train, 3), ("test", data.test, 2)):
        picked = range(0, len(dataset), stride)
        images = torch.stack([dataset.images[i] for i in picked])
        labels = torch.tensor([int(dataset.labels[i]) for i in picked])
        with torch.no_grad():
            clean = 100.0 * float((model(images).argmax(1) == labels).float().mean())
        print(f"eps {eps} iters {iters} {split} ({len(labels)} images): clean {clean:.1f}%, "
              f"PGD-3 {robust_accuracy(model, images, labels, eps, 3, eps / 3):.1f}%, "
              f"PGD-10 {robust_accuracy(model, images, labels, eps, 10, eps / 4):.1f}%")


if __name__ == "__main__":
    main()
