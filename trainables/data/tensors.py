"""Datasets held in memory as tensors (the embedded default), with per-sample augmentation."""
import hashlib
import itertools
from collections.abc import Callable

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2


class TensorImageDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None):
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def fingerprint(self) -> str:
        """Content hash of images, labels and transform, for cache keys."""
        digest = hashlib.sha256(self.images.contiguous().numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        digest.update(repr(self.transform).encode())
        return digest.hexdigest()[:16]

    def variants(self, index: int) -> torch.Tensor | None:
        """(V, C, H, W): every image `self[index][0]` can be, the same V for every index, when the transform
        can only make a small known set of them (none, or crops and flips: `transform_variants`); None when
        it can make more (then a model's outputs on the training images cannot be computed ahead)."""
        variants = transform_variants(self.transform, self.images[index])
        return None if variants is None else torch.stack(variants)


def transform_variants(transform: Callable | None, image: torch.Tensor) -> list[torch.Tensor] | None:
    """Every image `transform` can make of `image` (CHW tensor), or None when that set is not known to be small
    and finite. Known: no transform, v2.Compose of known ones, v2.RandomCrop to a fixed size with constant
    padding (every offset), v2.RandomHorizontalFlip / v2.RandomVerticalFlip. Each variant is made with the
    same functional op the transform applies (pixels copied, padding filled), so it equals, bit for bit, the
    output of the random draw that picks it."""
    if transform is None:
        return [image]
    if isinstance(transform, v2.Compose):
        images = [image]
        for step in transform.transforms:
            expanded = [transform_variants(step, current) for current in images]
            if any(variants is None for variants in expanded):
                return None
            images = list(itertools.chain.from_iterable(expanded))
        return images
    if isinstance(transform, v2.RandomCrop):
        return _crops(transform, image)
    if isinstance(transform, (v2.RandomHorizontalFlip, v2.RandomVerticalFlip)):
        flip = v2.functional.horizontal_flip if isinstance(transform, v2.RandomHorizontalFlip) else \
            v2.functional.vertical_flip
        return {0.0: [image], 1.0: [flip(image)]}.get(transform.p, [image, flip(image)])
    return None


def _crops(transform: v2.RandomCrop, image: torch.Tensor) -> list[torch.Tensor] | None:
    if transform.padding_mode != "constant" or transform.pad_if_needed or not isinstance(transform.fill, (int, float)):
        return None
    padded = image
    if transform.padding is not None:
        padded = v2.functional.pad(image, transform.padding, fill=transform.fill, padding_mode="constant")
    height, width = transform.size
    rows, columns = padded.shape[-2] - height + 1, padded.shape[-1] - width + 1
    if rows < 1 or columns < 1:
        return None
    return [v2.functional.crop(padded, top, left, height, width) for top in range(rows) for left in range(columns)]
