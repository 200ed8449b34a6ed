"""Where a network's distilled layers and its classifier head are.

The distilled layers ("taps") are the known stages of the paper's backbones (every ResNet, MobileNetV2) or the
module names a trial's `taps` config value gives, as `named_modules()` spells them (e.g. `features.2`). The head
is found the same way for every torchvision classifier: the last nn.Linear in `named_modules()` order; its input
is the penultimate feature vector the attack works on.
"""
import difflib
from dataclasses import dataclass

from torch import nn
from torchvision.models import MobileNetV2, ResNet

from trainables.errors import UserError

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
# MobileNetV2 `features` regrouped into five stages, each ending after a stride-2 group (4,3,4,6,2 modules).
MOBILENET_V2_STAGES = ("features.3", "features.6", "features.10", "features.16", "features.18")
KNOWN_STAGES = ((ResNet, RESNET_STAGES), (MobileNetV2, MOBILENET_V2_STAGES))
SUGGESTIONS = 5  # module names an error message offers


@dataclass(frozen=True)
class ArchLayout:
    stages: tuple[str, ...]  # modules whose outputs are distilled (and followed by spatial dropout)
    head: str  # the nn.Linear replaced for the target task; its input is the penultimate feature vector


def parse_taps(taps: str | None) -> tuple[str, ...]:
    """'features.2, features.4' -> ('features.2', 'features.4'); None or '' -> () (the arch's known layout)."""
    names = tuple(name.strip() for name in (taps or "").split(",") if name.strip())
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise UserError(f"taps names module {repeated!r} twice; give each distilled module once")
    return names


def find_layout(arch: str, body: nn.Module, taps: str | None = None) -> ArchLayout:
    """The modules `taps` names (the arch's known stages when it names none) and the head of `body`."""
    modules = dict(body.named_modules())
    stages = parse_taps(taps) or known_stages(arch, body)
    for name in stages:
        if name not in modules:
            near = difflib.get_close_matches(name, [n for n in modules if n], n=SUGGESTIONS, cutoff=0)
            raise UserError(f"arch {arch!r} has no module {name!r} to tap; module names near it: {', '.join(near)}")
    return ArchLayout(stages, head_name(arch, modules))


def known_stages(arch: str, body: nn.Module) -> tuple[str, ...]:
    for kind, stages in KNOWN_STAGES:
        if isinstance(body, kind):
            return stages
    shallow = [name for name, _ in body.named_modules() if name and name.count(".") <= 1]
    raise UserError(f"arch {arch!r} has no known layout of distilled layers: name them with --set taps=MODULE,MODULE "
                    f"(module names as named_modules() gives them, e.g. {', '.join(shallow[:SUGGESTIONS])}, ...)")


def head_name(arch: str, modules: dict[str, nn.Module]) -> str:
    linears = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    if not linears:
        raise UserError(f"arch {arch!r} has no nn.Linear classifier head to replace (its classifier is another "
                        "kind of layer); choose another arch")
    return linears[-1]
