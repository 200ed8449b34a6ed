"""The attack's box: `code` clips like the authors' eval_robustness.py (the scalar [-2.2, 2.2] after ImageNet
normalisation), the other presets clip each pixel to [0, 1]; the box is part of the adversarial set's key."""
from dataclasses import replace

import pytest
import torch

from tests.conftest import tiny_config
from trainables.adversarial_set import AdversarialSetSpec, _Context
from trainables.attack import PenultimateAttack, box_in_pixels, uniform_noise
from trainables.attack_presets import attack_config
from trainables.config import resolve_config
from trainables.errors import UserError
from trainables.models.network import build_network

AUTHORS_BOX = 2.2


def tiny_network():
    torch.manual_seed(0)
    return build_network("resnet18_w8", num_classes=5).eval()


def images_with_extremes() -> torch.Tensor:
    """Random pixels, with black and white patches: the two ends the boxes treat differently."""
    torch.manual_seed(1)
    images = torch.rand(4, 3, 32, 32)
    images[:, :, :8] = 1.0
    images[:, :, -8:] = 0.0
    return images


def authors_loss(features: torch.Tensor, magnitude: float) -> torch.Tensor:
    """Their objective as their script writes it: the negated mean distance, which untargeted PGD maximises."""
    return -((features[:, 0] - magnitude) ** 2 + 0.1 * (features[:, 1:] ** 2).mean(1)).mean()


def authors_pgd(network, normalised: torch.Tensor, eps: float, step: float, iters: int, magnitude: float):
    """AdverTorch 0.2.3's L-inf PGD step by step with clip_min=-2.2, clip_max=2.2, on normalised inputs."""
    delta = torch.zeros_like(normalised).uniform_(-1, 1) * eps  # the random start
    delta = (normalised + delta).clamp(-AUTHORS_BOX, AUTHORS_BOX) - normalised
    for _ in range(iters):
        delta.requires_grad_(True)
        # Their feature extractor takes normalised inputs; ours takes pixels and normalises inside.
        features = network.penultimate((normalised + delta) * network.std + network.mean)
        loss = authors_loss(features, magnitude)
        grad, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
        delta = (normalised + delta).clamp(-AUTHORS_BOX, AUTHORS_BOX) - normalised
    return (normalised + delta).clamp(-AUTHORS_BOX, AUTHORS_BOX)


def test_code_preset_is_the_authors_pgd_with_their_clip():
    network, images = tiny_network(), images_with_extremes()
    config = attack_config("code", iters=2)
    assert (config.box, config.box_min, config.box_max) == ("normalized", -AUTHORS_BOX, AUTHORS_BOX)
    normalised = (images - network.mean) / network.std
    torch.manual_seed(7)
    expected = authors_pgd(network, normalised, config.budget, config.step, config.iters, config.magnitude)
    torch.manual_seed(7)  # the same random start
    ours = PenultimateAttack(network, config).perturb(images)
    assert torch.allclose((ours - network.mean) / network.std, expected, atol=1e-5)
    assert ours.min() < 0.0 < 1.0 - ours.max()  # their box reaches below black and stops short of white


def test_code_preset_box_clips_bright_pixels_and_allows_values_below_black():
    network, images = tiny_network(), images_with_extremes()
    low, high = box_in_pixels(attack_config("code"), network.mean, network.std)
    assert low.flatten().tolist() == pytest.approx([-0.0188, -0.0368, -0.089], abs=1e-4)
    assert high.flatten().tolist() == pytest.approx([0.9888, 0.9488, 0.901], abs=1e-4)
    adversarial = PenultimateAttack(network, attack_config("code", iters=3)).perturb(images)
    assert (adversarial >= low - 1e-6).all() and (adversarial <= high + 1e-6).all()
    # White pixels end at the box's top whatever the budget: the clip, not PGD, moved them.
    assert torch.allclose(adversarial[:, :, :8].amax(dim=(0, 2, 3)), high.flatten(), atol=1e-6)


@pytest.mark.parametrize("preset", ["paper", "embedded", "digits"])
def test_other_presets_clip_each_pixel_to_0_1(preset):
    network, images = tiny_network(), images_with_extremes()
    config = attack_config(preset, iters=3)
    assert (config.box, config.box_min, config.box_max) == ("pixels", 0.0, 1.0)
    adversarial = PenultimateAttack(network, config).perturb(images)
    assert adversarial.min() == 0.0 and adversarial.max() == 1.0  # black and white reachable, never passed
    assert (adversarial - images).abs().max() <= config.budget + 1e-6


def test_code_preset_with_the_pixel_box_clips_each_pixel_to_0_1():
    network, images = tiny_network(), images_with_extremes()
    config = replace(attack_config("code", iters=3), box="pixels", box_min=0.0, box_max=1.0)
    adversarial = PenultimateAttack(network, config).perturb(images)
    assert adversarial.min() == 0.0 and adversarial.max() == 1.0
    budget_in_pixels = config.budget * network.std
    assert ((adversarial - images).abs() <= budget_in_pixels + 1e-6).all()


def test_noise_control_stays_in_the_attack_box():
    network, images = tiny_network(), images_with_extremes()
    for config in (attack_config("code"), attack_config("paper")):
        low, high = box_in_pixels(config, network.mean, network.std)
        noisy = uniform_noise(images, config, network.mean, network.std, torch.Generator().manual_seed(0))
        assert (noisy >= low - 1e-6).all() and (noisy <= high + 1e-6).all()


def test_box_is_recorded_and_keys_the_adversarial_set(tmp_path):
    authors = attack_config("code", iters=2)
    pixels = replace(authors, box="pixels", box_min=0.0, box_max=1.0)
    assert authors.record()["attack_box"] == "normalized" and authors.record()["attack_box_max"] == AUTHORS_BOX
    trial = resolve_config(tiny_config("finetune", cache_dir=str(tmp_path)))
    keys = {_Context(AdversarialSetSpec.from_trial(trial, attack, "test"), torch.device("cpu")).key
            for attack in (authors, pixels)}
    assert len(keys) == 2  # a set crafted with one box is never served for the other


def test_an_empty_box_is_a_user_error():
    with pytest.raises(UserError, match="box_min must be below box_max"):
        attack_config("paper", box_min=1.0, box_max=0.0)
