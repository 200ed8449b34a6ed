"""Scoring a model: predictions over a dataset, and accuracy / attack-success counts."""
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainables.precision import FP32, Precision

EVAL_BATCH_SIZE = 256


@torch.no_grad()
def predictions(model: nn.Module, dataset: Dataset, device: torch.device,
                precision: Precision = FP32) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) over the whole dataset, in dataset order, on the CPU."""
    was_training = model.training
    model.eval()
    predicted, truth = [], []
    for images, labels in DataLoader(dataset, batch_size=EVAL_BATCH_SIZE):
        with precision.autocast():
            predicted.append(model(precision.images(images.to(device))).argmax(dim=1).cpu())
        truth.append(labels)
    model.train(was_training)
    return torch.cat(predicted), torch.cat(truth)


@dataclass(frozen=True)
class AttackCounts:
    total: int
    clean_correct: int
    adversarial_correct: int
    fooled: int  # correct on the clean image, wrong on its adversarial version

    @property
    def clean_acc(self) -> float:
        return 100.0 * self.clean_correct / self.total if self.total else math.nan

    @property
    def adv_acc(self) -> float:
        return 100.0 * self.adversarial_correct / self.total if self.total else math.nan

    @property
    def asr(self) -> float:
        """P(wrong on adversarial | correct on clean) in percent; NaN when nothing was classified correctly."""
        return 100.0 * self.fooled / self.clean_correct if self.clean_correct else math.nan


def attack_counts(labels: torch.Tensor, clean_predicted: torch.Tensor,
                  adversarial_predicted: torch.Tensor) -> AttackCounts:
    clean_ok = clean_predicted == labels
    adversarial_ok = adversarial_predicted == labels
    fooled = clean_ok & ~adversarial_ok
    return AttackCounts(len(labels), int(clean_ok.sum()), int(adversarial_ok.sum()), int(fooled.sum()))
