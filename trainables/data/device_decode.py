"""JPEG decoding and the training augmentation on the GPU, for datasets of image files.

On a fast GPU the CPU pipeline (PIL decode, RandomResizedCrop, flip) is the limit: 16 cores give ~800
images/s, a bf16 ResNet-18 step takes ~5,900 (benchmarks/README.md). With `gpu_decode` (on by default on CUDA)
the loader's workers only read the files' bytes; each batch is decoded by nvJPEG in one call and augmented on
the GPU with the very transform the CPU path uses (torchvision's v2 transforms take tensors as they take PIL
images), drawing its crops from the trial's checkpointed RNG. Files that are not JPEG are decoded on the CPU.
"""
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from trainables.errors import UserError

JPEG_MAGIC = b"\xff\xd8"
# torchvision 0.29 deprecates its decoders for TorchCodec, which is not part of torch's distribution (nor on
# the GPU images we run on); they still work, and one warning per batch would flood every trial's log.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


def decodes_on_device(dataset: Dataset, device: torch.device, enabled: bool) -> bool:
    """Whether training batches of `dataset` are decoded on `device`: image files (not tensors) on CUDA."""
    return enabled and device.type == "cuda" and hasattr(dataset, "encoded")


class EncodedImages(Dataset):
    """A list of (image file, label) as (the file's bytes, label, index): what a GPU-decoding loader reads."""

    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, label = self.items[index]
        try:
            return read_file(str(path)), label, index
        except (OSError, RuntimeError) as error:
            raise UserError(f"cannot read image {path}: {error}") from error


class EncodedBatch(NamedTuple):
    """A batch's files back to back in one byte tensor: a loader worker passes each tensor to the trial through
    its own shared-memory file descriptor, and one per file exhausts them."""

    data: torch.Tensor
    lengths: list[int]

    def files(self) -> list[torch.Tensor]:
        return list(torch.split(self.data, self.lengths))


def collate_encoded(batch: list[tuple[torch.Tensor, int, int]]) -> tuple[EncodedBatch, torch.Tensor, list[int]]:
    encoded, labels, indices = zip(*batch, strict=True)
    return EncodedBatch(torch.cat(encoded), [len(data) for data in encoded]), torch.tensor(labels), list(indices)


def decode_batch(encoded: EncodedBatch, indices: list[int], dataset: EncodedImages,
                 device: torch.device) -> torch.Tensor:
    """The batch's images decoded on `device` and augmented there by the dataset's transform, stacked."""
    return torch.stack([dataset.transform(image) for image in _decoded(encoded.files(), indices, dataset, device)])


def _decoded(encoded: list[torch.Tensor], indices: list[int], dataset: EncodedImages,
             device: torch.device) -> list[torch.Tensor]:
    jpeg = [i for i, data in enumerate(encoded) if bytes(data[:2].tolist()) == JPEG_MAGIC]
    images: list[torch.Tensor | None] = [None] * len(encoded)
    try:
        for i, image in zip(jpeg, decode_jpeg([encoded[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)):
            images[i] = image
    except RuntimeError:
        for i in jpeg:  # one at a time, to name the file that broke the batch
            images[i] = _decode_one(encoded[i], indices[i], dataset, device)
    for i, image in enumerate(images):
        if image is None:
            images[i] = _decode_one(encoded[i], indices[i], dataset, device)
    return images


def _decode_one(data: torch.Tensor, index: int, dataset: EncodedImages, device: torch.device) -> torch.Tensor:
    path = Path(dataset.items[index][0])
    try:
        if bytes(data[:2].tolist()) == JPEG_MAGIC:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        return decode_image(data, mode=ImageReadMode.RGB).to(device)
    except RuntimeError as error:
        raise UserError(f"cannot read image {path}: {str(error).splitlines()[0]}") from None
