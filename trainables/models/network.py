"""Build a TransferNet for a task, with its backbone taken from pretrained weights when given."""
import torch

from trainables.errors import UserError
from trainables.models.backbones import TransferNet, build_body
from trainables.models.weights import Pretrained


def build_network(arch: str, num_classes: int, pretrained: Pretrained | None = None,
                  taps: str | None = None) -> TransferNet:
    """`arch` with a fresh `num_classes` head, distilling at `taps` (None: its known stages); the backbone is
    theta0 when `pretrained` is given."""
    body, layout = build_body(arch, num_classes, taps)
    network = TransferNet(body, layout)
    if pretrained is not None:
        load_backbone(network, pretrained)
    return network


def load_backbone(network: TransferNet, pretrained: Pretrained) -> None:
    """Every backbone tensor from `pretrained`; its classifier head is the source task's, so it is dropped."""
    head_prefix = network.layout.head + "."
    backbone_state = {name: t for name, t in pretrained.state.items() if not name.startswith(head_prefix)}
    mismatch = first_shape_mismatch(network.body.state_dict(), backbone_state)
    if mismatch is not None:
        raise UserError(f"pretrained weights {pretrained.origin} do not fit this arch: {mismatch}")
    missing, unexpected = network.body.load_state_dict(backbone_state, strict=False)
    missing = [name for name in missing if not name.startswith(head_prefix)]
    if missing or unexpected:
        name = (missing or unexpected)[0]
        kind = "lack" if missing else "have an unexpected"
        raise UserError(f"pretrained weights {pretrained.origin} {kind} tensor {name!r} for this arch")


def first_shape_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """The first tensor, in the network's order, that both have with different shapes, said with both shapes."""
    for name, tensor in expected.items():
        if name in given and given[name].shape != tensor.shape:
            return (f"tensor {name!r} has shape {list(given[name].shape)} in the file but "
                    f"{list(tensor.shape)} in this arch")
    return None


def build_teacher(arch: str, num_classes: int, pretrained: Pretrained, taps: str | None = None) -> TransferNet:
    """The pretrained model as distillation target: frozen, in evaluation mode, never with dropout."""
    teacher = build_network(arch, num_classes, pretrained, taps)
    return teacher.eval().requires_grad_(False)
