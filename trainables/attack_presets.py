"""The attack's settings as data: budget, step, iterations, objective, units, box, and the named presets.

No torch here: every command lists the presets in its --help.
"""
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

from trainables.errors import UserError


@dataclass(frozen=True)
class AttackConfig:
    preset: str
    budget: float  # L-inf bound B on the perturbation, in `units`
    step: float  # PGD step size, in `units`
    iters: int = 40
    magnitude: float = 1000.0  # m in t = m * e_k
    target_index: int = 0  # k
    loss: Literal["target_l2", "code"] = "target_l2"
    units: Literal["pixels", "normalized"] = "pixels"
    # The box PGD clips every input to (AdverTorch's clip_min / clip_max), in `box` units: [0, 1] pixels, or
    # the authors' scalar [-2.2, 2.2] after ImageNet normalisation (per channel in pixels: R [-0.019, 0.989],
    # G [-0.037, 0.949], B [-0.089, 0.901], so it also clips clean bright pixels).
    box: Literal["pixels", "normalized"] = "pixels"
    box_min: float = 0.0
    box_max: float = 1.0

    def record(self) -> dict:
        """Flat columns for results tables, units in the names."""
        return {f"attack_{key}": value for key, value in asdict(self).items()}

    def budget_in_pixels(self, std: Sequence[float]) -> float:
        """B as an L-inf bound in [0, 1] pixels: a normalised budget times the largest channel std."""
        return self.budget if self.units == "pixels" else self.budget * max(std)


ATTACK_PRESETS = {
    # The paper's text: ||f - t||^2, B = 0.4 and step 0.01 with pixels in [0, 1].
    "paper": AttackConfig("paper", budget=0.4, step=0.01),
    # The authors' code: B = 0.1, step 0.01 after normalisation; loss (f_k - m)^2 + 0.1 * mean_{j!=k} f_j^2.
    # Their box too: eval_robustness.py clips to [-2.2, 2.2] in normalised space.
    "code": AttackConfig("code", budget=0.1, step=0.01, loss="code", units="normalized",
                         box="normalized", box_min=-2.2, box_max=2.2),
    # The embedded default (novel_shapes, 32x32): at B = 0.1 uniform noise alone fools ~10% and the attack
    # fools even re-trained models; B = 0.03 keeps the noise control near 1-2% (docs/embedded-defaults.md).
    "embedded": AttackConfig("embedded", budget=0.03, step=0.01),
    # digits (32x32 upsampled 8x8 scans): B = 0.4 destroys such images, B = 0.03 barely separates methods.
    "digits": AttackConfig("digits", budget=0.1, step=0.01),
}


def attack_config(preset: str, **overrides) -> AttackConfig:
    if preset not in ATTACK_PRESETS:
        raise UserError(f"unknown attack preset {preset!r}; choose one of {', '.join(ATTACK_PRESETS)}")
    config = replace(ATTACK_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    if config.budget <= 0 or config.step <= 0 or config.iters <= 0:
        raise UserError(f"attack budget, step and iters must be > 0 "
                        f"(got {config.budget}, {config.step}, {config.iters})")
    if config.box_min >= config.box_max:
        raise UserError(f"attack box_min must be below box_max (got {config.box_min}, {config.box_max})")
    return config
