"""Scoring a model on a dataset."""
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

EVAL_BATCH_SIZE = 256


@torch.no_grad()
def predictions(model: nn.Module, dataset: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) over the whole dataset, in dataset order, on the CPU."""
    was_training = model.training
    model.eval()
    predicted, truth = [], []
    for images, labels in DataLoader(dataset, batch_size=EVAL_BATCH_SIZE):
        predicted.append(model(images.to(device)).argmax(dim=1).cpu())
        truth.append(labels)
    model.train(was_training)
    return torch.cat(predicted), torch.cat(truth)


def clean_accuracy(model: nn.Module, dataset: Dataset, device: torch.device) -> float:
    """Top-1 accuracy in percent."""
    predicted, truth = predictions(model, dataset, device)
    return 100.0 * (predicted == truth).float().mean().item()
