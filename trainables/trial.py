"""From a resolved config to a ready TransferRun: the task's data and the right pretrained weights."""
import torch

from trainables.config import TrialConfig
from trainables.data.registry import build_transfer_data
from trainables.methods import get_method
from trainables.models.archs import is_narrow_arch
from trainables.models.weights import Pretrained, file_pretrained, imagenet_pretrained
from trainables.source import synthetic_source
from trainables.train import TransferRun


def pretrained_for(config: TrialConfig) -> Pretrained:
    """The public pretrained model of the threat model: a --weights file, else the arch's default source."""
    if config.weights:
        return file_pretrained(config.weights)
    if is_narrow_arch(config.arch):
        return synthetic_source(config.arch, config.source_images, config.source_iters, config.cache_dir)
    return imagenet_pretrained(config.arch)


def prepare_run(config: TrialConfig, device: str | torch.device = "cpu") -> TransferRun:
    data = build_transfer_data(config.dataset, config.data_root, config.fraction, config.seed,
                               val_fraction=config.val_fraction, skip_unreadable_images=config.skip_unreadable_images,
                               cache_dir=config.cache_dir)
    pretrained = pretrained_for(config) if get_method(config.method).needs_pretrained else None
    return TransferRun(config, data, pretrained, device)
