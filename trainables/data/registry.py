"""Every dataset by name: the embedded `digits` target, the synthetic source task and the paper datasets."""
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from trainables.data.digits import DIGITS_IMAGE_SIZE, digits_split
from trainables.data.images import ImageListDataset, paper_transforms
from trainables.data.paper import load_paper_split
from trainables.data.subsample import balanced_subsample
from trainables.data.synthetic import NUM_CLASSES as SYNTHETIC_CLASSES
from trainables.data.synthetic import generate_shapes
from trainables.data.tensors import TensorImageDataset
from trainables.errors import UserError

# `synthetic` is the embedded source task the project pretrains its stand-in "public model" on.
EMBEDDED_DATASETS = ("digits", "synthetic")
PAPER_DATASETS = ("dog", "bird", "action", "indoor", "flower")
DATASET_NAMES = EMBEDDED_DATASETS + PAPER_DATASETS
SYNTHETIC_IMAGE_SIZE = 32
SYNTHETIC_TEST_IMAGES = 2_000
SYNTHETIC_TRAIN_SEED, SYNTHETIC_TEST_SEED = 1_000, 1_001


@dataclass(frozen=True)
class TransferData:
    """A task: datasets yield (CHW float image in [0, 1] pixels, label).

    `train_plain` is the training split with the test transform (no augmentation), for BatchNorm-free
    measurements such as the feature distance to the pretrained model."""

    name: str
    num_classes: int
    train: Dataset
    test: Dataset
    image_size: int
    train_plain: Dataset


def check_dataset_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def build_transfer_data(
    name: str, data_root: str | Path | None = None, fraction: float = 1.0, seed: int = 0,
    synthetic_images: int = 10_000,
) -> TransferData:
    """The task's train split (augmented, `fraction` of each class kept) and test split."""
    check_dataset_name(name)
    if name == "digits":
        split = digits_split()
        augment = v2.RandomCrop(DIGITS_IMAGE_SIZE, padding=2)  # no flips: mirrored digits change meaning
        train = TensorImageDataset(split.train_images, split.train_labels, augment)
        test = TensorImageDataset(split.test_images, split.test_labels)
        plain = TensorImageDataset(split.train_images, split.train_labels)
        labels = split.train_labels.tolist()
        return TransferData(name, 10, _fraction_of(train, labels, fraction, seed), test, DIGITS_IMAGE_SIZE,
                            _fraction_of(plain, labels, fraction, seed))
    if name == "synthetic":
        images, labels = generate_shapes(synthetic_images, SYNTHETIC_TRAIN_SEED, SYNTHETIC_IMAGE_SIZE)
        test_images, test_labels = generate_shapes(SYNTHETIC_TEST_IMAGES, SYNTHETIC_TEST_SEED, SYNTHETIC_IMAGE_SIZE)
        augment = v2.Compose([v2.RandomCrop(SYNTHETIC_IMAGE_SIZE, padding=2), v2.RandomHorizontalFlip()])
        train = TensorImageDataset(images, labels, augment)
        plain = TensorImageDataset(images, labels)
        return TransferData(name, SYNTHETIC_CLASSES, _fraction_of(train, labels.tolist(), fraction, seed),
                            TensorImageDataset(test_images, test_labels), SYNTHETIC_IMAGE_SIZE,
                            _fraction_of(plain, labels.tolist(), fraction, seed))
    split = load_paper_split(name, _required_root(name, data_root))
    train_transform, test_transform = paper_transforms()
    train_labels = [label for _, label in split.train]
    train = ImageListDataset(split.train, train_transform)
    plain = ImageListDataset(split.train, test_transform)
    return TransferData(name, len(split.classes), _fraction_of(train, train_labels, fraction, seed),
                        ImageListDataset(split.test, test_transform), 224,
                        _fraction_of(plain, train_labels, fraction, seed))


def dataset_summary(name: str, data_root: str | Path | None = None, fraction: float = 1.0, seed: int = 0) -> dict:
    """Class and image counts after checking the layout; decodes no image."""
    check_dataset_name(name)
    if name in EMBEDDED_DATASETS:
        data = build_transfer_data(name, fraction=fraction, seed=seed)
        return {"dataset": name, "classes": data.num_classes, "train": len(data.train), "test": len(data.test)}
    split = load_paper_split(name, _required_root(name, data_root))
    kept = balanced_subsample([label for _, label in split.train], fraction, seed)
    return {"dataset": name, "classes": len(split.classes), "train": len(kept), "test": len(split.test)}


def _required_root(name: str, data_root: str | Path | None) -> Path:
    if not data_root:
        raise UserError(f"dataset {name!r} needs --data-root: the folder its official archive was unpacked in")
    return Path(data_root)


def _fraction_of(train: Dataset, labels: list[int], fraction: float, seed: int) -> Dataset:
    if fraction == 1.0:
        return train
    return Subset(train, balanced_subsample(labels, fraction, seed))
