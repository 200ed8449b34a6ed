"""Backbones with a fresh linear head, normalisation inside the model, feature taps and spatial dropout.

Inputs are [0, 1] pixels (attacks and their budgets live in that space); each network normalises
internally. Taps use forward hooks, so torchvision's modules stay untouched and state-dict keys keep
torchvision's names (`body.` prefix aside).
"""
import re
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, ResNet

from trainables.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

NARROW_RESNET_PATTERN = re.compile(r"^resnet18_w(\d+)$")
TORCHVISION_ARCHS = ("resnet18", "resnet50", "resnet101", "mobilenet_v2")
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
# MobileNetV2 `features` regrouped into five stages, each ending after a stride-2 group (4,3,4,6,2 modules).
MOBILENET_V2_STAGES = ("features.3", "features.6", "features.10", "features.16", "features.18")


@dataclass(frozen=True)
class ArchLayout:
    stages: tuple[str, ...]  # modules whose outputs are distilled (and followed by spatial dropout)
    head: str  # the nn.Linear replaced for the target task
    penultimate: str  # module whose *input* is the penultimate feature vector


RESNET_LAYOUT = ArchLayout(RESNET_STAGES, head="fc", penultimate="fc")
MOBILENET_V2_LAYOUT = ArchLayout(MOBILENET_V2_STAGES, head="classifier.1", penultimate="classifier")


class NarrowResNet18(ResNet):
    """torchvision's ResNet-18 with base width `width` instead of 64, for the offline embedded default."""

    def __init__(self, width: int, num_classes: int):
        with torch.device("meta"):  # the 64-wide layers built here are all replaced below: allocate nothing
            super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.fc = nn.Linear(8 * width, num_classes)
        for module in self.modules():  # the same initialisation torchvision's ResNet applies
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def is_narrow_arch(arch: str) -> bool:
    return NARROW_RESNET_PATTERN.match(arch) is not None


def check_arch(arch: str) -> None:
    if arch not in TORCHVISION_ARCHS and not is_narrow_arch(arch):
        allowed = ", ".join(TORCHVISION_ARCHS + ("resnet18_w<WIDTH> (e.g. resnet18_w32)",))
        raise UserError(f"unknown arch {arch!r}; choose one of {allowed}")


def build_body(arch: str, num_classes: int) -> tuple[nn.Module, ArchLayout]:
    """An untrained torchvision-format network with a `num_classes` head, and where its taps are."""
    check_arch(arch)
    narrow = NARROW_RESNET_PATTERN.match(arch)
    if narrow:
        return NarrowResNet18(int(narrow.group(1)), num_classes), RESNET_LAYOUT
    body = getattr(models, arch)(weights=None, num_classes=num_classes)
    return body, MOBILENET_V2_LAYOUT if arch == "mobilenet_v2" else RESNET_LAYOUT


class TransferNet(nn.Module):
    """A backbone + head taking [0, 1] pixels, with taps at the distilled stages and the penultimate layer.

    `forward_features` returns the logits with the stage outputs (read *before* spatial dropout) and the
    penultimate features. Spatial dropout, when enabled, follows every distilled stage in training only.
    """

    def __init__(self, body: nn.Module, layout: ArchLayout, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.body = body
        self.layout = layout
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.stage_dropout = nn.ModuleList()
        self._captured: dict | None = None
        for index, name in enumerate(layout.stages):
            body.get_submodule(name).register_forward_hook(partial(self._after_stage, index))
        body.get_submodule(layout.penultimate).register_forward_pre_hook(self._before_head)

    @property
    def head(self) -> nn.Linear:
        return self.body.get_submodule(self.layout.head)

    def enable_spatial_dropout(self, p: float) -> None:
        self.stage_dropout = nn.ModuleList(nn.Dropout2d(p) for _ in self.layout.stages)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.body((pixels - self.mean) / self.std)

    def forward_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        self._captured = {}
        try:
            logits = self(pixels)
            captured = self._captured
        finally:
            self._captured = None
        stages = [captured[index] for index in range(len(self.layout.stages))]
        return logits, stages, captured["penultimate"]

    def penultimate(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_features(pixels)[2]

    def backbone_parameters(self) -> dict[str, nn.Parameter]:
        head_prefix = self.layout.head + "."
        return {name: p for name, p in self.body.named_parameters() if not name.startswith(head_prefix)}

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation for every Conv2d / BatchNorm2d / Linear (the paper's re-init)."""
        for module in self.body.modules():
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
                module.reset_parameters()

    def _after_stage(self, index: int, module: nn.Module, inputs, output: torch.Tensor):
        if self._captured is not None:
            self._captured[index] = output
        if self.stage_dropout:
            return self.stage_dropout[index](output)
        return None

    def _before_head(self, module: nn.Module, inputs):
        if self._captured is not None:
            self._captured["penultimate"] = torch.flatten(inputs[0], 1)
        return None
