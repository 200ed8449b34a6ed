"""Rezaei & Liu's penultimate-layer attack, as adapted by the Renofeation paper.

Threat model: the attacker has only the public pretrained model. PGD (AdverTorch's LinfPGDAttack, random
start) pushes the pretrained model's penultimate features f towards t = m * e_k; the images are then shown
to the transferred model. Budgets and steps are in the units the preset names: `pixels` ([0, 1] images) or
`normalized` (after ImageNet mean/std, as the authors' code ran). Adversarial images stay in the preset's box:
[0, 1] pixels, or for `code` the authors' [-2.2, 2.2] after normalisation, which in pixels reaches slightly
below 0 and stops short of 1 (the images are float tensors, so nothing rounds them back into [0, 1]).
"""
import torch

from trainables.advertorch_compat import LinfPGDAttack
from trainables.attack_presets import AttackConfig
from trainables.models.backbones import TransferNet


def feature_objective(features: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    """Per-example attack loss on penultimate features (lower = more polarised towards t)."""
    k, m = config.target_index, config.magnitude
    if config.loss == "target_l2":
        target = torch.zeros_like(features)
        target[:, k] = m
        return (features - target).pow(2).sum(dim=1)
    others = torch.cat([features[:, :k], features[:, k + 1:]], dim=1)
    return (features[:, k] - m).pow(2) + 0.1 * others.pow(2).mean(dim=1)


class PenultimateAttack:
    """Crafts adversarial images on the pretrained model alone: batches of [0, 1] images in, images in the box out."""

    def __init__(self, pretrained: TransferNet, config: AttackConfig):
        self.model = pretrained.eval().requires_grad_(False)
        self.config = config
        mean, std = pretrained.mean, pretrained.std
        if config.units == "pixels":
            self._to_pixels = lambda inputs: inputs
            self._from_pixels = lambda images: images
        else:
            self._to_pixels = lambda inputs: inputs * std + mean
            self._from_pixels = lambda images: (images - mean) / std
        self._box_pixels = box_in_pixels(config, mean, std)
        # The box in the attack's own units; a scalar stays a scalar, so the `code` preset clips exactly at +-2.2.
        self._clip = ((config.box_min, config.box_max) if config.box == config.units
                      else tuple(self._from_pixels(bound) for bound in self._box_pixels))
        self._pgd_options = dict(
            loss_fn=lambda features, _: feature_objective(features, config).sum(),
            eps=config.budget, nb_iter=config.iters, eps_iter=config.step, rand_init=True, targeted=True,
        )

    def perturb(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self._from_pixels(images)
        clip_min, clip_max = (bound if isinstance(bound, float) else expand_bound(bound, inputs.shape[1:])
                              for bound in self._clip)
        pgd = LinfPGDAttack(lambda x: self.model.penultimate(self._to_pixels(x)),
                            clip_min=clip_min, clip_max=clip_max, **self._pgd_options)
        # `targeted=True` makes AdverTorch minimise the loss; the label argument is unused by our loss.
        adversarial = pgd.perturb(inputs, torch.zeros(len(images), dtype=torch.long, device=images.device))
        # Converting back to pixels may round a hair past the box; the clamp is a no-op otherwise.
        return clamp_to_box(self._to_pixels(adversarial), self._box_pixels).detach()


def box_in_pixels(config: AttackConfig, mean: torch.Tensor, std: torch.Tensor) -> tuple:
    """The attack's box as (low, high) in pixels: scalars for a pixel box, per-channel tensors for a normalised one."""
    if config.box == "pixels":
        return config.box_min, config.box_max
    return mean + config.box_min * std, mean + config.box_max * std


def expand_bound(bound: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A (1, C, 1, 1) bound as the (C, H, W) tensor AdverTorch's clamp takes per example."""
    return bound.squeeze(0).expand(shape)


def clamp_to_box(images: torch.Tensor, box: tuple) -> torch.Tensor:
    low, high = (bound if isinstance(bound, float) else bound.to(images.device) for bound in box)
    return images.clamp(low, high)


def uniform_noise(images: torch.Tensor, config: AttackConfig, mean: torch.Tensor, std: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """The random-noise control: U(-B, B) per pixel at the attack's budget (converted to pixels), clipped to the
    attack's box, so a box that clips clean pixels (the `code` preset's) counts in the control too."""
    budget = config.budget if config.units == "pixels" else config.budget * std.to(images.device)
    noise = torch.rand(images.shape, generator=generator).to(images.device) * 2 - 1
    return clamp_to_box(images + noise * budget, box_in_pixels(config, mean, std))
