"""Datasets held in memory as tensors (the embedded default), with per-sample augmentation."""
import hashlib
from collections.abc import Callable

import torch
from torch.utils.data import Dataset


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
