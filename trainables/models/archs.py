"""Which backbone names exist, checked without building anything: any torchvision classification model, or
the embedded narrow ResNet-18 (`resnet18_w<WIDTH>`). Importing this imports no torch (commands list flags
quickly); checking a torchvision name imports torchvision."""
import difflib
import re

from trainables.errors import UserError

NARROW_RESNET_PATTERN = re.compile(r"^resnet18_w(\d+)$")
# resnet18_w<WIDTH>'s widths: ResNet-18 is 64 wide; at 1024 it has ~3 billion parameters, and past ~10^18 its
# layer shapes overflow torch's integers.
MAX_NARROW_WIDTH = 1024
ARCH_LIST_COMMAND = 'python -c "import torchvision; print(torchvision.models.list_models(module=torchvision.models))"'
# While training, their forward returns auxiliary logits too: the one training loop needs a single output.
AUXILIARY_OUTPUT_ARCHS = ("googlenet", "inception_v3")


def is_narrow_arch(arch: str) -> bool:
    return NARROW_RESNET_PATTERN.match(arch) is not None


def torchvision_archs() -> list[str]:
    """Every torchvision classification model name (resnet34, efficientnet_b0, vgg11_bn, convnext_tiny, ...)."""
    from torchvision import models  # here, not at import time: listing a command's flags needs no torch

    return models.list_models(module=models)


def check_arch(arch: str) -> None:
    """That `arch` names a backbone, for a command line to call before any work; one line when it does not."""
    if arch in AUXILIARY_OUTPUT_ARCHS:
        raise UserError(f"arch {arch!r} is not supported: while training its forward returns auxiliary logits too")
    narrow = NARROW_RESNET_PATTERN.match(arch)
    # The length first: int() refuses a string of thousands of digits.
    if narrow and not (len(narrow.group(1)) <= 6 and 1 <= int(narrow.group(1)) <= MAX_NARROW_WIDTH):
        raise UserError(f"arch {arch!r}: the width of resnet18_w<WIDTH> must be 1 to {MAX_NARROW_WIDTH}")
    if narrow or arch in torchvision_archs():
        return
    near = difflib.get_close_matches(arch, torchvision_archs(), n=3)
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    raise UserError(f"unknown arch {arch!r}{hint}; use any torchvision classification model name (list them with "
                    f"{ARCH_LIST_COMMAND}) or resnet18_w<WIDTH> (e.g. resnet18_w32)")
