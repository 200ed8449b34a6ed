"""Backbones with a fresh linear head, normalisation inside the model, feature taps and spatial dropout.

A backbone is any torchvision classification model by name, or the embedded narrow ResNet-18
(`resnet18_w<WIDTH>`); `trainables.models.layout` says where its taps and head are.

Inputs are [0, 1] pixels (attacks and their budgets live in that space); each network normalises
internally. Taps use forward hooks, so torchvision's modules stay untouched and state-dict keys keep
torchvision's names (`body.` prefix aside).
"""
from functools import cache, partial

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, ResNet

from trainables.models.archs import NARROW_RESNET_PATTERN, check_arch
from trainables.models.layout import ArchLayout, find_layout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def build_body(arch: str, num_classes: int, taps: str | None = None) -> tuple[nn.Module, ArchLayout]:
    """An untrained torchvision-format network with a `num_classes` head, and where its taps and head are
    (`taps`: comma-separated module names to distil; None = the arch's known stages)."""
    check_arch(arch)
    narrow = NARROW_RESNET_PATTERN.match(arch)
    if narrow:
        body = NarrowResNet18(int(narrow.group(1)), num_classes)
    else:
        body = models.get_model(arch, weights=None, num_classes=num_classes)
    return body, find_layout(arch, body, taps)


def build_skeleton(arch: str, num_classes: int, taps: str | None = None) -> tuple[nn.Module, ArchLayout]:
    """`build_body` without allocating or initialising weights (the meta device) where the constructor allows
    it; RegNet computes its widths with tensors, so it is built for real."""
    try:
        with torch.device("meta"):
            return build_body(arch, num_classes, taps)
    except NotImplementedError:
        return build_body(arch, num_classes, taps)


@cache
def check_layout(arch: str, taps: str | None) -> None:
    """That `arch` builds, has an nn.Linear head and the distilled layers `taps` names (or known ones)."""
    build_skeleton(arch, 2, taps)


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
        body.get_submodule(layout.head).register_forward_pre_hook(self._before_head)

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
