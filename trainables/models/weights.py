"""Pretrained ("public") weights, never downloaded: torchvision's cache, a --weights file, or the embedded
source model the project pretrains itself."""
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision import models

from trainables.errors import UserError
from trainables.models.archs import is_narrow_arch


@dataclass(frozen=True)
class Pretrained:
    state: dict[str, torch.Tensor]  # torchvision-format state dict, its own head included
    origin: str  # where it came from, for run records
    digest: str  # content hash of the tensors, for cache keys


def state_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def imagenet_weights(arch: str) -> models.WeightsEnum:
    """The ImageNet weights of the paper's era: torchvision's original release (IMAGENET1K_V1), or its default
    for the few models that have no such release."""
    releases = models.get_model_weights(arch)
    return releases.__members__.get("IMAGENET1K_V1", releases.DEFAULT)


def torchvision_cache_file(arch: str) -> Path:
    """Where torchvision's downloader would have put the weights (TORCH_HOME/hub/checkpoints/...)."""
    url = imagenet_weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / foreign files
        raise UserError(f"weights file {path} is not a readable torch state dict ({type(error).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} is not a state dict of tensors (torchvision format expected)")
    return state


def imagenet_pretrained(arch: str) -> Pretrained:
    if is_narrow_arch(arch):
        raise UserError(f"arch {arch!r} has no ImageNet weights; it uses the embedded synthetic source or --weights")
    path = torchvision_cache_file(arch)
    if not path.is_file():
        raise UserError(
            f"ImageNet weights for {arch} not found offline: put {path.name} ({imagenet_weights(arch).url}) "
            f"in {path.parent} (set TORCH_HOME to move it) or pass --weights FILE"
        )
    state = load_state_file(path)
    return Pretrained(state, f"imagenet:{imagenet_weights(arch)}", state_digest(state))


def file_pretrained(path: str | Path) -> Pretrained:
    state = load_state_file(path)
    return Pretrained(state, f"file:{Path(path).expanduser().resolve()}", state_digest(state))
