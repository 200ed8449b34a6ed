"""Robustness of one transferred model: clean / adversarial accuracy, ASR, noise control, and its
distance to the pretrained model in weight and feature space (the paper's Fig. 1)."""
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from trainables.adversarial_set import AdversarialSet
from trainables.attack import uniform_noise
from trainables.checkpoint import load_model_state
from trainables.config import TrialConfig, resolve_config
from trainables.evaluation import attack_counts
from trainables.models.backbones import TransferNet
from trainables.models.network import build_network
from trainables.regularizers import feature_distillation

FEATURE_BATCH_SIZE = 256
REFERENCE_CACHE_BYTES = 512 * 2**20


def weight_distance(model: TransferNet, pretrained: TransferNet) -> float:
    """||theta - theta0||_2 over the backbone parameters both networks have (same name and shape)."""
    reference = pretrained.backbone_parameters()
    total = torch.zeros((), dtype=torch.float64)
    for name, parameter in model.backbone_parameters().items():
        if name in reference and reference[name].shape == parameter.shape:
            total += (parameter.detach().double().cpu() - reference[name].detach().double().cpu()).pow(2).sum()
    return math.sqrt(total.item())


@torch.no_grad()
def feature_distance(model: TransferNet, pretrained: TransferNet, train_plain: Dataset, device: torch.device,
                     reference_cache: list | None = None) -> float:
    """The feature-distillation loss to the pretrained model on the training data, averaged over the
    distilled layers and the data, in eval mode (no dropout) — the paper's Fig. 1 right and Table 7.

    `reference_cache`, an empty list the caller keeps, is filled with the pretrained model's features on the
    first call when they fit in REFERENCE_CACHE_BYTES, so scoring many checkpoints runs the teacher once."""
    model.eval()
    weighted, count = 0.0, 0
    batches = DataLoader(train_plain, batch_size=FEATURE_BATCH_SIZE)
    cached = reference_cache is not None and len(reference_cache) == len(batches)
    for index, (images, _) in enumerate(batches):
        images = images.to(device)
        _, stages, _ = model.forward_features(images)
        if cached:
            reference = reference_cache[index]
        else:
            _, reference, _ = pretrained.forward_features(images)
            if reference_cache is not None and _fits_cache(reference, len(images), len(train_plain)):
                reference_cache.append(reference)
        weighted += feature_distillation(stages, reference).item() / len(stages) * len(images)
        count += len(images)
    return weighted / count


def _fits_cache(stages: list[torch.Tensor], batch_images: int, total_images: int) -> bool:
    per_image = sum(stage.element_size() * stage[0].numel() for stage in stages)
    return per_image * total_images <= REFERENCE_CACHE_BYTES


def load_evaluation_model(checkpoint_dir: str | Path, device: torch.device) -> tuple[TransferNet, TrialConfig]:
    """The model a trial checkpoint stands for (the SWA average for SWA runs), ready for evaluation."""
    state = load_model_state(Path(checkpoint_dir), device)
    config = resolve_config(state["config"])
    model = build_network(config.arch, state["num_classes"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


@torch.no_grad()
def evaluate_model(model: TransferNet, adversarial: AdversarialSet, device: torch.device) -> dict:
    """Every robustness metric of `model` on a crafted set: counts, rates and distances."""
    model.eval()
    generator = torch.Generator().manual_seed(adversarial.manifest["key_fields"]["seed"])
    labels, clean, attacked, noisy = [], [], [], []
    for clean_images, adversarial_images, batch_labels in adversarial.batches():
        clean_images = clean_images.to(device)
        labels.append(batch_labels)
        clean.append(model(clean_images).argmax(1).cpu())
        attacked.append(model(adversarial_images.to(device)).argmax(1).cpu())
        noise = uniform_noise(clean_images, adversarial.attack, adversarial.pretrained.std, generator)
        noisy.append(model(noise).argmax(1).cpu())
    labels = torch.cat(labels)
    counts = attack_counts(labels, torch.cat(clean), torch.cat(attacked))
    noise_counts = attack_counts(labels, torch.cat(clean), torch.cat(noisy))
    return {
        "clean_acc": counts.clean_acc, "adv_acc": counts.adv_acc, "asr": counts.asr,
        "clean_correct": counts.clean_correct, "fooled": counts.fooled, "test_images": counts.total,
        "noise_asr": noise_counts.asr, "noise_fooled": noise_counts.fooled,
        "weight_distance": weight_distance(model, adversarial.pretrained),
        "feature_distance": feature_distance(model, adversarial.pretrained, adversarial.train_plain, device,
                                             adversarial.reference_features),
    }

