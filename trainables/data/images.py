"""Image files as a torch Dataset, and the paper's train/test transforms (pixels stay in [0, 1])."""
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from trainables.data.device_decode import EncodedImages
from trainables.data.readable import UnreadableImage, decode_rgb
from trainables.errors import UserError

Transform = Callable[[Image.Image], torch.Tensor]


class ImageListDataset(Dataset):
    def __init__(self, items: Sequence[tuple[Path, int]], transform: Transform):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        try:
            rgb = decode_rgb(path)
        except UnreadableImage as error:  # became unreadable after the sweep checked it (trainables.data.readable)
            raise UserError(f"cannot read image {path}: {error}") from None
        return self.transform(rgb), label

    def encoded(self):
        """The same files as their bytes, for decoding on the GPU (trainables.data.device_decode)."""
        return EncodedImages(self.items, self.transform)

    def fingerprint(self) -> str:
        """Hash of the listed files (folder/name, label) and the transform, for cache keys."""
        digest = hashlib.sha256(repr(self.transform).encode())
        for path, label in self.items:
            digest.update(f"{Path(path).parent.name}/{Path(path).name}:{label}\n".encode())
        return digest.hexdigest()[:16]

    def variants(self, index: int) -> None:
        """None: the paper's RandomResizedCrop draws from a continuum of scales and aspect ratios, so the images
        it can make of a file are not a small known set (see TensorImageDataset.variants)."""
        return None


def paper_transforms(image_size: int = 224, resize_size: int = 256) -> tuple[Transform, Transform]:
    """(train, test) transforms; ImageNet normalisation lives inside the model so attacks work in pixel space."""
    to_unit_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    train = v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), *to_unit_tensor])
    test = v2.Compose([v2.Resize(resize_size), v2.CenterCrop(image_size), *to_unit_tensor])
    return train, test
