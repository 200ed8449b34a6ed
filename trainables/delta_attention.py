"""DELTA with its channel attention (Li et al., ICLR 2019, Sec. 3.2-3.3), as the authors' code computes it
(github.com/lixingjian/DELTA: channel_eval.py and train.py at 45054d4 / 6a8efc9, run.sh), which the Renofeation
code left out.

Distilled and attended layers: the last convolution of each distilled stage, read before its BatchNorm. For the
known ResNet stages that is conv2 of the stage's last BasicBlock (resnet18/34, resnet18_w<N>) or conv3 of its last
Bottleneck: DELTA hooks the last block's conv3 of all four ResNet-50/101 stages (train.py:126-129,
channel_eval.py:93-96), which this rule gives for resnet50/101 name for name. Other taps (MobileNetV2, a user's
`taps`) follow the same rule: the tapped module's last convolution, a ResNet shortcut's aside.

The attention, measured once before the first step on a probe (a copy of the pretrained model), following
channel_eval.py:
1. the probe's fresh linear head alone is fitted: SGD (lr 0.01, momentum 0.9, weight decay 1e-4), 10 epochs, the
   lr falling exponentially 10x per 6 epochs and stepped before each epoch, on the augmented training images in
   batches of 32 with the model in train mode, so BatchNorm's running statistics follow the target data
   (channel_eval.py:102-111, 113-119, 128-145; run.sh:7);
2. in eval mode, on the first 4 batches of a fresh shuffle of the augmented training images, output channel j of
   each attended convolution is switched off by zeroing its weight W[j] (the block's BatchNorm, residual add and
   ReLU still follow); the rise of the batch-mean cross-entropy over the intact probe is averaged over the batches
   (channel_eval.py:168-208);
3. per layer the rises are standardised (population std) and W = softmax(z / 5) over its channels
   (train.py:111-116).

The penalty (train.py:167-178), weighed by alpha = lambda_feat (train.py:224):
    0.5 * sum over layers l, images b, channels c of  C_l * W_lc * ||FM_lc(w, x_b) - FM_lc(w0, x_b)||^2 / (H_l W_l)
summed over the batch, not averaged: DELTA's own scale, for its alpha (0.01 by default, train.py:34; 0.1 on
Stanford Dogs, run.sh:15-18). C_l * W_lc is 1 for every channel under uniform attention.

Kept differences: the probe sees the dataset's own training augmentation (theirs: resize to 256, flip, random
224 crop; channel_eval.py:45-50); its per-epoch test pass, which only prints, is not run; the attention is measured
per trial from the trial's seed (theirs: once per dataset, run.sh:6-9), in fp32 whatever the trial's autocast;
a layer whose channels all rise alike gets uniform weights (their standardisation divides by zero there).
"""
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import ResNet

from trainables.errors import UserError
from trainables.models.backbones import TransferNet
from trainables.models.layout import RESNET_STAGES
from trainables.models.network import build_network
from trainables.regularizers import FeatureDistillation, RunParts

PROBE_BATCH_SIZE = 32  # run.sh:7 (channel_eval.py's default is 64, :25); the fit's and the rises' batches
PROBE_EPOCHS = 10  # channel_eval.py:109
PROBE_LR = 0.01  # run.sh:7, channel_eval.py:29
PROBE_MOMENTUM = 0.9  # channel_eval.py:108
PROBE_WEIGHT_DECAY = 1e-4  # channel_eval.py:108, on the head's weight and bias
PROBE_DECAY_EPOCHS = 6  # channel_eval.py:110-111: lr x gamma per epoch, gamma = 0.1 ** (1 / 6)
RISE_BATCHES = 4  # channel_eval.py:179-180
ATTENTION_TEMPERATURE = 5.0  # softmax(z / 5), train.py:115

Batch = tuple[torch.Tensor, torch.Tensor]


def attended_layer(body: nn.Module, stage: str) -> str:
    """The last nn.Conv2d of the module `stage` (itself, if it is one), ResNet's downsample shortcuts aside."""
    convolutions = [name for name, module in body.get_submodule(stage).named_modules()
                    if isinstance(module, nn.Conv2d) and "downsample" not in name.split(".")]
    if not convolutions:
        raise UserError(f"delta_att distils the last convolution of each distilled module; {stage!r} has none "
                        "(name modules that hold convolutions with --set taps=...)")
    return ".".join(name for name in (stage, convolutions[-1]) if name)


def attended_layers(body: nn.Module, stages: Iterable[str]) -> tuple[str, ...]:
    layers = tuple(attended_layer(body, stage) for stage in stages)
    repeated = next((layer for layer in layers if layers.count(layer) > 1), None)
    if repeated is not None:
        raise UserError(f"delta_att: two distilled modules end in the same convolution {repeated!r}; tap one of them")
    return layers


def attention_weighted_distance(student: list[torch.Tensor], teacher: list[torch.Tensor],
                                attention: list[torch.Tensor]) -> torch.Tensor:
    """0.5 * sum_l sum_b sum_c C_l * W_lc * ||student_lbc - teacher_lbc||^2 / (H_l W_l) (train.py:167-178)."""
    total = torch.zeros((), device=student[0].device)
    for s, t, weights in zip(student, teacher, attention, strict=True):
        _, channels, height, width = s.shape
        squared = (s.float() - t.float()).pow(2).sum(dim=(2, 3))  # fp32 sums: bf16 under autocast is too coarse
        total = total + 0.5 * channels * (weights * squared).sum() / (height * width)
    return total


def probe_lr(epoch: int) -> float:
    """Their ExponentialLR stepped before each epoch's training (channel_eval.py:111, 118): epoch 0 already
    decayed once."""
    return PROBE_LR * 0.1 ** ((epoch + 1) / PROBE_DECAY_EPOCHS)


def fit_probe_head(probe: TransferNet, loader: Iterable[Batch], epochs: int = PROBE_EPOCHS) -> None:
    """The head alone trains, the backbone frozen but in train mode (channel_eval.py:102-145)."""
    device = next(probe.parameters()).device
    probe.requires_grad_(False).train()
    head = probe.head.requires_grad_(True)
    optimizer = torch.optim.SGD(head.parameters(), lr=PROBE_LR, momentum=PROBE_MOMENTUM,
                                weight_decay=PROBE_WEIGHT_DECAY)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = probe_lr(epoch)
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(probe(images.to(device)), labels.to(device)).backward()
            optimizer.step()
    head.requires_grad_(False)


Step = tuple[str, Callable[[torch.Tensor], torch.Tensor]]


def forward_steps(body: nn.Module) -> list[Step]:
    """`body`'s forward as (module name, step) pairs, so that a pass can start at the step holding a layer (the
    steps before it are the same whichever channel is off): torchvision's ResNet._forward_impl block by block;
    any other body as one step, itself (named "", as named_modules() names it)."""
    if not isinstance(body, ResNet):
        return [("", body)]
    steps = [(name, body.get_submodule(name)) for name in ("conv1", "bn1", "relu", "maxpool")]
    for stage in RESNET_STAGES:
        steps += [(f"{stage}.{index}", block) for index, block in enumerate(body.get_submodule(stage))]
    return steps + [("avgpool", body.avgpool), ("flatten", partial(torch.flatten, start_dim=1)), ("fc", body.fc)]


def step_holding(steps: list[Step], layer: str) -> int:
    return next(index for index, (name, _) in enumerate(steps)
                if not name or layer == name or layer.startswith(name + "."))


def run_steps(steps: list[Step], x: torch.Tensor) -> torch.Tensor:
    for _, step in steps:
        x = step(x)
    return x


def loss_without_channel(steps: list[Step], x: torch.Tensor, labels: torch.Tensor, conv: nn.Conv2d,
                         channel: int) -> torch.Tensor:
    """The batch-mean cross-entropy with `conv`'s output channel `channel` switched off by its weight
    (channel_eval.py:192-202), the weight restored after."""
    kept = conv.weight[channel].clone()
    conv.weight[channel] = 0.0
    try:
        return F.cross_entropy(run_steps(steps, x), labels)
    finally:
        conv.weight[channel] = kept


@torch.no_grad()
def loss_rises(probe: TransferNet, layers: Iterable[str], batches: list[Batch]) -> list[torch.Tensor]:
    """Per layer, per output channel: the rise of the cross-entropy when the channel is switched off, averaged
    over `batches`, the probe in eval mode (channel_eval.py:168-208)."""
    probe.eval()
    steps = forward_steps(probe.body)
    convolutions = {layer: probe.body.get_submodule(layer) for layer in layers}
    totals = {layer: torch.zeros(conv.out_channels, dtype=torch.float64) for layer, conv in convolutions.items()}
    for images, labels in batches:
        pixels = (images - probe.mean) / probe.std  # TransferNet's own normalisation, outside its body
        base = F.cross_entropy(run_steps(steps, pixels), labels)
        for layer, conv in convolutions.items():
            start = step_holding(steps, layer)
            before = run_steps(steps[:start], pixels)
            for channel in range(conv.out_channels):
                rise = loss_without_channel(steps[start:], before, labels, conv, channel) - base
                totals[layer][channel] += rise.item()
    return [(totals[layer] / len(batches)).float() for layer in convolutions]


def attention_from_rises(rises: torch.Tensor) -> torch.Tensor:
    """softmax(standardised rises / 5) over a layer's channels (train.py:111-116); uniform where all rise alike."""
    spread = rises.std(unbiased=False)
    if spread == 0:
        return torch.full_like(rises, 1.0 / len(rises))
    return torch.softmax((rises - rises.mean()) / spread / ATTENTION_TEMPERATURE, dim=0)


def measure_attention(parts: RunParts, layers: tuple[str, ...]) -> list[torch.Tensor]:
    """Fit a probe's head, then weigh every attended channel by its loss rise; a function of the trial's seed."""
    config, device = parts.config, parts.device
    torch.default_generator.manual_seed(config.seed)  # the probe's head init and the main-process augmentation
    probe = build_network(config.arch, parts.data.num_classes, parts.pretrained, config.taps).to(device)
    loader = DataLoader(parts.data.train, batch_size=PROBE_BATCH_SIZE, shuffle=True, num_workers=config.num_workers,
                        generator=torch.Generator().manual_seed(config.seed))
    fit_probe_head(probe, loader)
    batches = [(images.to(device), labels.to(device)) for images, labels in itertools.islice(loader, RISE_BATCHES)]
    return [attention_from_rises(rises.to(device)) for rises in loss_rises(probe, layers, batches)]


def keep_output(outputs: dict[int, torch.Tensor], index: int):
    """A forward hook keeping a training forward pass's output (not the no-grad evaluation passes')."""
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            outputs[index] = output
    return hook


class AttentiveFeatureDistillation(FeatureDistillation):
    """DELTA's attentive feature-map regulariser (module docstring): the attended convolutions' outputs of the
    student against the frozen pretrained model's, each channel weighed by its measured attention."""

    def __init__(self, parts: RunParts):
        layers = attended_layers(parts.student.body, parts.student.layout.stages)
        # The teacher (and its feature cache) taps the attended convolutions instead of the stage outputs.
        super().__init__(dataclasses.replace(parts, config=dataclasses.replace(parts.config, taps=",".join(layers))))
        self.layers = layers
        self.parts: RunParts | None = parts
        self.attention: list[torch.Tensor] = []
        self.student_outputs: dict[int, torch.Tensor] = {}  # a closure's dict: deep copies of the student share it
        for index, name in enumerate(layers):
            parts.student.body.get_submodule(name).register_forward_hook(keep_output(self.student_outputs, index))

    def measured_attention(self) -> list[torch.Tensor]:
        """Measured on the first step (a resumed run loads it from its checkpoint instead), in fp32, on its own
        random stream: the training run's stream stays as it was."""
        with torch.random.fork_rng(devices=[]), torch.autocast(self.parts.device.type, enabled=False):
            attention = measure_attention(self.parts, self.layers)
        self.parts = None  # measured once: no need to keep theta0 and the data alive for the rest of the run
        return attention

    def forward(self, images: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        """`stages`, the stage outputs, go unused: the student's hooks kept this step's attended outputs."""
        if not self.attention:
            self.attention = self.measured_attention()
        student = [self.student_outputs.pop(index) for index in range(len(self.layers))]
        return attention_weighted_distance(student, self.teacher_stages(images), self.attention)

    def checkpoint_state(self) -> dict:
        return {"attention": [a.cpu() for a in self.attention]}

    def load_checkpoint_state(self, state: dict) -> None:
        device = next(self.teacher.parameters()).device
        self.attention = [a.to(device) for a in state["attention"]]
