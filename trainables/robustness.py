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
from trainables.precision import FP32, Precision
from trainables.regularizers import feature_distillation

# Checkpoints scored in one pass on a GPU at 32 px (fewer at larger images: activations grow with K x pixels).
# On the CPU one: there the stacked weights make grouped convolutions, 2x slower than one model after another.
CHECKPOINTS_PER_PASS = {"cuda": 8, "cpu": 1}
# Checkpoints the final stage loads and scores as one batch, their rows written together (an interrupted stage
# loses at most these): enough to fill a GPU's passes; one on the CPU, which scores one after another anyway.
CHECKPOINTS_LOADED_TOGETHER = {"cuda": 8, "cpu": 1}


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
    """The feature-distillation loss to the pretrained model, as the authors' code measures Table 7's "feature
    loss" (train.py, test() on train_loader): both models in eval mode (no dropout) on the augmented training
    images, per stage the MSE averaged over batch, channels and pixels, summed over the distilled stages (the
    paper's text says averaged), then averaged over the images. The caller fixes the augmentation's draw.

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


class CheckpointGroup:
    """Checkpoints of one architecture scored together. The module is built once; a checkpoint's weights are
    copied into it in place (no network is built per checkpoint), and each batch of images runs through several
    checkpoints in one call, their weights stacked (`torch.func.vmap`): on a GPU, per-checkpoint overheads, not
    arithmetic, dominate the small models of a sweep."""

    def __init__(self, arch: str, num_classes: int, taps: str | None, device: torch.device,
                 precision: Precision = FP32):
        body, layout = build_skeleton(arch, num_classes, taps)
        # Storage only: every body tensor comes from the checkpoints (the input normalisation is TransferNet's).
        self.module = precision.module(TransferNet(body.to_empty(device=device), layout).to(device).eval())
        self.device, self.precision = device, precision

    def load(self, state: dict) -> TransferNet:
        """The module holding one checkpoint's weights (a `load_model_state` dict's "model")."""
        self.module.load_state_dict(state)
        return self.module.eval()

    def per_pass(self, image_pixels: int) -> int:
        most = CHECKPOINTS_PER_PASS.get(self.device.type, 1)
        return max(1, min(most, most * 32 * 32 // image_pixels))

    def predictor(self, states: list[dict]):
        """images -> predicted labels [len(states), batch] of every checkpoint in `states`."""
        if len(states) == 1:
            return _single_predictor(self.load(states[0]), self.precision)
        stacked = {name: torch.stack([state[name] for state in states]) for name in states[0]}

        def logits(weights: dict, images: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.module, weights, (images,))

        every = torch.func.vmap(logits, in_dims=(0, None))

        def predict(images: torch.Tensor) -> torch.Tensor:
            with self.precision.autocast():
                return every(stacked, self.precision.images(images)).argmax(-1)
        return predict


@torch.no_grad()
def split_metrics(model: TransferNet, adversarial: AdversarialSet, device: torch.device,
                  precision: Precision = FP32) -> dict:
    """Clean accuracy, ASR and the noise control of `model` on one crafted split, with the counts behind each
    rate, in columns named after the split (`val_asr`, `test_clean_acc`, ...)."""
    return _split_rows(_single_predictor(model.eval(), precision), 1, adversarial, device)[0]


@torch.no_grad()
def group_split_metrics(group: CheckpointGroup, states: list[dict], adversarial: AdversarialSet) -> list[dict]:
    """`split_metrics` of each checkpoint in `states` (model state dicts), in order."""
    pixels = adversarial.clean[0][0][0].numel()
    rows = []
    for start in range(0, len(states), group.per_pass(pixels)):
        chunk = states[start:start + group.per_pass(pixels)]
        rows += _split_rows(group.predictor(chunk), len(chunk), adversarial, group.device)
    return rows


def _single_predictor(model: TransferNet, precision: Precision):
    def predict(images: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return model(precision.images(images)).argmax(1)[None]
    return predict


def _split_rows(predict, count: int, adversarial: AdversarialSet, device: torch.device) -> list[dict]:
    """`predict(images)` gives [count, batch] labels: one row of split metrics per model."""
    labels, clean, attacked, noisy = [], [], [], []
    for clean_images, adversarial_images, noise_images, batch_labels in adversarial.scoring_batches(device):
        labels.append(batch_labels)
        clean.append(predict(clean_images).cpu())
        attacked.append(predict(adversarial_images).cpu())
        noisy.append(predict(noise_images).cpu())
    labels, clean, attacked, noisy = torch.cat(labels), torch.cat(clean, 1), torch.cat(attacked, 1), torch.cat(noisy, 1)
    return [_split_record(labels, clean[k], attacked[k], noisy[k], adversarial) for k in range(count)]


def _split_record(labels: torch.Tensor, clean: torch.Tensor, attacked: torch.Tensor, noisy: torch.Tensor,
                  adversarial: AdversarialSet) -> dict:
    counts = attack_counts(labels, clean, attacked)
    noise_counts = attack_counts(labels, clean, noisy)
    metrics = {
        "clean_acc": counts.clean_acc, "adv_acc": counts.adv_acc, "asr": counts.asr,
        "clean_correct": counts.clean_correct, "fooled": counts.fooled, "images": counts.total,
        "noise_asr": noise_counts.asr, "noise_fooled": noise_counts.fooled, "attack_key": adversarial.key,
    }
    return {f"{adversarial.split}_{name}": value for name, value in metrics.items()}


@torch.no_grad()
def distance_metrics(model: TransferNet, adversarial: AdversarialSet, device: torch.device) -> dict:
    """How far `model` moved from the pretrained model, in weights and in features on the augmented training
    images (a fixed draw: `AdversarialSet.training_batches`)."""
    return {
        "weight_distance": weight_distance(model, adversarial.pretrained),
        "feature_distance": feature_distance(model, adversarial.pretrained, adversarial.training_batches(device),
                                             adversarial.reference_features),
    }
