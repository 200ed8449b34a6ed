"""DELTA with its channel attention (Li et al., ICLR 2019, Sec. 3.2), which the Renofeation code left out.

Each channel of a distilled stage is weighted by how much the pretrained model needs it for the target task:
the mean rise of the target loss when that channel's feature map is zeroed, measured once before training on
the pretrained backbone with a linear head fitted to the target task, standardised per stage and passed
through softmax(z / T). The weights of a stage sum to 1, so uniform attention gives back plain DELTA and
lambda_feat keeps its scale.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from trainables.models.backbones import TransferNet
from trainables.models.network import build_network
from trainables.regularizers import FeatureDistillation, RunParts

ATTENTION_IMAGES = 256  # training images the channel importances are averaged over (DELTA's code: a few batches)
ATTENTION_TEMPERATURE = 5.0  # T of softmax(z / T), as in DELTA's code
PROBE_STEPS = 100  # L-BFGS iterations fitting the linear head on the frozen pretrained features


def attention_weighted_distance(student: list[torch.Tensor], teacher: list[torch.Tensor],
                                attention: list[torch.Tensor]) -> torch.Tensor:
    """sum over stages j and channels c of W_jc * mean_{b,h,w} (FM_jc(w, x) - FM_jc(w0, x))^2."""
    total = torch.zeros((), device=student[0].device)
    for s, t, weights in zip(student, teacher, attention, strict=True):
        per_channel = (s - t).pow(2).mean(dim=(0, 2, 3))
        total = total + (weights * per_channel).sum()
    return total


@torch.no_grad()
def penultimate_features(parts: RunParts, network: TransferNet) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's penultimate features of every un-augmented training image, with the labels."""
    loader = DataLoader(parts.data.train_plain, batch_size=parts.config.batch_size)
    features, labels = zip(*((network.penultimate(x.to(parts.device)), y.to(parts.device)) for x, y in loader))
    return torch.cat(features), torch.cat(labels)


def fit_probe_head(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, beta: float) -> None:
    """`head` fitted on frozen features by full-batch L-BFGS on cross-entropy + 0.5 * beta * ||W||^2, from
    zero: deterministic, and what the pretrained model can do on the target task."""
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=PROBE_STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels) + 0.5 * beta * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)


def mean_loss(network: TransferNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The cross-entropy averaged over the images, `batch_size` at a time."""
    total = sum(F.cross_entropy(network(images[i:i + batch_size]), labels[i:i + batch_size], reduction="sum")
                for i in range(0, len(images), batch_size))
    return total / len(images)


def _zero_channel(channel: int):
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return output.index_fill(1, torch.tensor([channel], device=output.device), 0.0)
    return hook


@torch.no_grad()
def channel_importance(network: TransferNet, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int) -> list[torch.Tensor]:
    """Per distilled stage, per channel: the rise of the mean cross-entropy when that channel's map is zeroed."""
    base = mean_loss(network, images, labels, batch_size)
    _, stage_outputs, _ = network.forward_features(images[:1])
    importances = []
    for name, output in zip(network.layout.stages, stage_outputs, strict=True):
        rises = []
        for channel in range(output.shape[1]):
            handle = network.body.get_submodule(name).register_forward_hook(_zero_channel(channel))
            try:
                rises.append(mean_loss(network, images, labels, batch_size) - base)
            finally:
                handle.remove()
        importances.append(torch.stack(rises))
    return importances


def attention_from_importance(importance: torch.Tensor) -> torch.Tensor:
    """softmax(z / T) of the standardised importances; uniform where every channel matters equally."""
    spread = importance.std(unbiased=False)
    if spread == 0:
        return torch.full_like(importance, 1.0 / len(importance))
    return torch.softmax((importance - importance.mean()) / spread / ATTENTION_TEMPERATURE, dim=0)


def attention_images(parts: RunParts) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ATTENTION_IMAGES un-augmented training images, a fixed draw per seed."""
    dataset = parts.data.train_plain
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(parts.config.seed))
    images, labels = zip(*(dataset[int(i)] for i in order[:ATTENTION_IMAGES]))
    return torch.stack(images).to(parts.device), torch.tensor(labels, device=parts.device)


class AttentiveFeatureDistillation(FeatureDistillation):
    """DELTA's regulariser with channel attention (Li et al., ICLR 2019, Eq. 4-5):
    sum over stages j and channels c of W_jc * mean_{b,h,w} (FM_jc(w, x) - FM_jc(w0, x))^2, with
    W_j = softmax(standardise(rise of the target loss when channel c of the pretrained model is zeroed) / T)."""

    def __init__(self, parts: RunParts):
        super().__init__(parts)
        self.parts: RunParts | None = parts
        self.attention: list[torch.Tensor] = []
        self.probe_head: nn.Linear | None = None  # the fitted head the importances were measured with

    def estimate_attention(self) -> None:
        """Measured on the first step (a resumed run loads it from its checkpoint instead)."""
        config = self.parts.config
        probe = build_network(config.arch, self.parts.data.num_classes, self.parts.pretrained, config.taps)
        probe = probe.to(self.parts.device).eval().requires_grad_(False)
        features, labels = penultimate_features(self.parts, probe)
        fit_probe_head(probe.head.requires_grad_(True), features, labels, self.parts.config.head_beta)
        sample, sample_labels = attention_images(self.parts)
        importances = channel_importance(probe, sample, sample_labels, self.parts.config.batch_size)
        self.attention = [attention_from_importance(i) for i in importances]
        self.probe_head = probe.head.requires_grad_(False)
        self.parts = None  # built once: no need to keep theta0 and the data alive for the rest of the run

    def forward(self, images: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        if not self.attention:
            with torch.random.fork_rng(devices=[]):  # the training run's random stream stays as it was
                self.estimate_attention()
        return attention_weighted_distance(stages, self.teacher_stages(images), self.attention)

    def checkpoint_state(self) -> dict:
        return {"attention": [a.cpu() for a in self.attention]}

    def load_checkpoint_state(self, state: dict) -> None:
        device = next(self.teacher.parameters()).device
        self.attention = [a.to(device) for a in state["attention"]]
