"""The penalties a transfer method adds to the cross-entropy, each an nn.Module with one call shape.

A method's spec (`trainables.methods`) names at most one `Regularizer` class; the training loop builds it from
the run's parts (`RunParts`) and adds `config[weight_key] * regularizer(images, stages)` to every step's loss.
`HeadPenalty` is on every method.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trainables.data.registry import TransferData
from trainables.models.backbones import TransferNet
from trainables.models.network import build_teacher
from trainables.models.weights import Pretrained
from trainables.teacher_cache import TeacherFeatureCache

if TYPE_CHECKING:  # trainables.config imports the method specs, which import this module
    from trainables.config import TrialConfig


@dataclass(frozen=True)
class RunParts:
    """What a regulariser may be built from: the trial's config, the network being trained (already on its
    device), the pretrained model theta0 and the task's data."""

    config: "TrialConfig"
    student: TransferNet
    pretrained: Pretrained
    data: TransferData

    @property
    def device(self) -> torch.device:
        return next(self.student.parameters()).device


class Regularizer(nn.Module):
    """A method's penalty. `forward(images, stages)` gets the step's input batch and the student's outputs at
    the distilled stages and returns a scalar; the loop weighs it by the config value named `weight_key` and
    reports its running mean as `metric`."""

    weight_key: ClassVar[str]
    metric: ClassVar[str]

    def __init__(self, parts: RunParts):
        super().__init__()

    def before_training(self) -> None:
        """Called by the loop before its first step, a resumed run's too, under the trial's autocast."""

    def checkpoint_state(self) -> dict:
        """What it computed from the data before the first step (nothing for most), for a resume to reuse."""
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        """Restore what `checkpoint_state` returned."""


class HeadPenalty(nn.Module):
    """0.5 * beta * (||W_fc||^2 + ||b_fc||^2): the paper's last-layer weight decay, on every method (Chin et al.,
    Sec. 5.1); the authors' code (train.py, linear_l2) penalises the bias too. `bias=False` leaves it out."""

    def __init__(self, head: nn.Linear, beta: float, bias: bool):
        super().__init__()
        self.head, self.beta, self.bias = head, beta, bias

    def forward(self) -> torch.Tensor:
        squares = self.head.weight.pow(2).sum()
        if self.bias and self.head.bias is not None:
            squares = squares + self.head.bias.pow(2).sum()
        return 0.5 * self.beta * squares


class StartingPointPenalty(Regularizer):
    """L2-SP (Li, Grandvalet & Davoine, ICML 2018): sum over the backbone parameters of ||w - w0||^2, w0 the
    pretrained weights, instead of weight decay towards 0."""

    weight_key = "lambda_l2sp"
    metric = "l2sp_penalty"

    def __init__(self, parts: RunParts):
        super().__init__(parts)
        self.parameters_now = parts.student.backbone_parameters()
        # theta0 as the student holds it at the start (pretrained init), not re-read: the same device and dtype.
        self.reference = {name: p.detach().clone() for name, p in self.parameters_now.items()}

    def forward(self, images: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        return sum((self.parameters_now[name] - w0).pow(2).sum() for name, w0 in self.reference.items())


def feature_distillation(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """sum over distilled stages of MSE(student, teacher), each averaged over B*C*H*W (the paper's code)."""
    return sum(F.mse_loss(s, t) for s, t in zip(student, teacher, strict=True))


class FeatureDistillation(Regularizer):
    """DELTA's behavioural regulariser as the Renofeation code has it (Li et al., ICLR 2019, without the
    channel attention): sum over the distilled stages j of mean_{b,c,h,w} (FM_j(w, x) - FM_j(w0, x))^2, the
    pretrained model frozen in evaluation mode. Its features come from `trainables.teacher_cache` where the
    training images are known ahead (the embedded datasets), computed once; from the live teacher otherwise."""

    weight_key = "lambda_feat"
    metric = "feature_loss"

    def __init__(self, parts: RunParts):
        super().__init__(parts)
        self.teacher = build_teacher(parts.config.arch, parts.data.num_classes, parts.pretrained,
                                     parts.config.taps).to(parts.device)
        self.teacher_cache = TeacherFeatureCache.for_run(self.teacher, parts)  # not a module: never checkpointed

    def before_training(self) -> None:
        if self.teacher_cache is not None:
            self.teacher_cache.open()

    def live_teacher_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return self.teacher.forward_features(images)[1]

    def teacher_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.teacher_cache is None:
            return self.live_teacher_stages(images)
        return self.teacher_cache.stages(images, self.live_teacher_stages)

    def forward(self, images: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        return feature_distillation(stages, self.teacher_stages(images))
