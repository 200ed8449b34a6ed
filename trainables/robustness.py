"""Robustness of one transferred model: clean / adversarial accuracy, ASR, noise control, and its
distance to the pretrained model in weight and feature space (the paper's Fig. 1)."""
import math
from collections.abc import Iterable
from pathlib import Path

import torch

from trainables.adversarial_set import AdversarialSet
from trainables.checkpoint import load_model_state
from trainables.config import TrialConfig, resolve_config
from trainables.evaluation import attack_counts
from trainables.models.backbones import TransferNet, build_skeleton
from trainables.regularizers import feature_distillation


@torch.no_grad()
def weight_distance(model: TransferNet, pretrained: TransferNet) -> float:
    """||theta - theta0||_2 over the backbone parameters both networks have (same name and shape)."""
    reference = pretrained.backbone_parameters()
    squares = [(parameter.double() - reference[name].double()).pow(2).sum()
               for name, parameter in model.backbone_parameters().items()
               if name in reference and reference[name].shape == parameter.shape]
    return math.sqrt(torch.stack(squares).sum().item()) if squares else 0.0


@torch.no_grad()
def feature_distance(model: TransferNet, pretrained: TransferNet, image_batches: Iterable[torch.Tensor],
                     reference_cache: list | None = None) -> float:
    """The feature-distillation loss to the pretrained model on the training data: the sum over the distilled
    layers of the MSE between the two models' outputs, averaged over the data, in eval mode (no dropout).
    The authors' evaluation sums the layers the same way: Table 7's "feature loss" scale (and Fig. 1 right).

    With `image_batches` a list (a set small enough to keep in memory), `reference_cache`, a list the caller
    keeps, holds the pretrained model's features after the first call: scoring many checkpoints runs the
    teacher once."""
    model.eval()
    keep = reference_cache is not None and isinstance(image_batches, list)
    cached = keep and len(reference_cache) == len(image_batches)
    weighted, total = 0.0, 0
    for index, images in enumerate(image_batches):
        _, stages, _ = model.forward_features(images)
        if cached:
            reference = reference_cache[index]
        else:
            _, reference, _ = pretrained.forward_features(images)
            if keep:
                reference_cache.append(reference)
        weighted += feature_distillation(stages, reference).item() * len(images)
        total += len(images)
    return weighted / total


def load_evaluation_model(checkpoint_dir: str | Path, device: torch.device) -> tuple[TransferNet, TrialConfig]:
    """The model a trial checkpoint stands for (the SWA average for SWA runs), ready for evaluation."""
    state = load_model_state(Path(checkpoint_dir), device)
    config = resolve_config(state["config"])
    # No initialisation work where the arch allows it: every tensor comes from the checkpoint.
    body, layout = build_skeleton(config.arch, state["num_classes"], config.taps)
    model = TransferNet(body, layout)
    model.load_state_dict(state["model"], assign=True)
    return model.to(device).eval(), config


@torch.no_grad()
def split_metrics(model: TransferNet, adversarial: AdversarialSet, device: torch.device) -> dict:
    """Clean accuracy, ASR and the noise control of `model` on one crafted split, with the counts behind each
    rate, in columns named after the split (`val_asr`, `test_clean_acc`, ...)."""
    model.eval()
    labels, clean, attacked, noisy = [], [], [], []
    for clean_images, adversarial_images, noise_images, batch_labels in adversarial.scoring_batches(device):
        labels.append(batch_labels)
        clean.append(model(clean_images).argmax(1).cpu())
        attacked.append(model(adversarial_images).argmax(1).cpu())
        noisy.append(model(noise_images).argmax(1).cpu())
    labels = torch.cat(labels)
    counts = attack_counts(labels, torch.cat(clean), torch.cat(attacked))
    noise_counts = attack_counts(labels, torch.cat(clean), torch.cat(noisy))
    metrics = {
        "clean_acc": counts.clean_acc, "adv_acc": counts.adv_acc, "asr": counts.asr,
        "clean_correct": counts.clean_correct, "fooled": counts.fooled, "images": counts.total,
        "noise_asr": noise_counts.asr, "noise_fooled": noise_counts.fooled, "attack_key": adversarial.key,
    }
    return {f"{adversarial.split}_{name}": value for name, value in metrics.items()}


@torch.no_grad()
def distance_metrics(model: TransferNet, adversarial: AdversarialSet, device: torch.device) -> dict:
    """How far `model` moved from the pretrained model, in weights and in features on the training data."""
    return {
        "weight_distance": weight_distance(model, adversarial.pretrained),
        "feature_distance": feature_distance(model, adversarial.pretrained, adversarial.training_batches(device),
                                             adversarial.reference_features),
    }
