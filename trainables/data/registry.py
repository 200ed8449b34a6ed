"""A dataset's three splits, built by its spec's loader (`trainables.data.specs.DATASETS`): the embedded targets,
the synthetic source task, the paper datasets and the user's own image folder (`imagefolder`).

Each task has three disjoint splits. The validation split is carved from the official training split,
stratified by class, with a fixed seed independent of the trial seed, so every trial of a sweep (every
seed, every `fraction`) is selected on the same images; Flowers uses its official `valid` list. Hyper-parameter
selection reads validation numbers only; the test split is for reporting. `val_fraction = 0` keeps the whole
training split for training, and then selection can only use the test split.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch.utils.data import Dataset
from torchvision.transforms import v2

from trainables.data.digits import DIGITS_IMAGE_SIZE, digits_split
from trainables.data.images import ImageListDataset, paper_transforms
from trainables.data.paper import ImageListSplit
from trainables.data.readable import unreadable_images
from trainables.data.specs import DataRequest, data_root_hint, dataset_spec
from trainables.data.subsample import balanced_subsample, stratified_split
from trainables.data.synthetic import NOVEL_SHAPES, generate_shapes
from trainables.data.synthetic import NUM_CLASSES as SYNTHETIC_CLASSES
from trainables.data.tensors import TensorImageDataset
from trainables.errors import UserError

SYNTHETIC_IMAGE_SIZE = 32
SYNTHETIC_TEST_IMAGES = 2_000
SYNTHETIC_TRAIN_SEED, SYNTHETIC_TEST_SEED = 1_000, 1_001
# The target: shapes the source never saw, in two of its textures and two new ones, few images per class.
NOVEL_TEXTURE_SET = ("solid", "hstripes", "dstripes", "dots")
NOVEL_CLASSES = tuple((shape, texture) for shape in NOVEL_SHAPES for texture in NOVEL_TEXTURE_SET)
NOVEL_TRAIN_PER_CLASS, NOVEL_TEST_PER_CLASS = 100, 50  # a 3-seed study's choice: docs/embedded-defaults.md
NOVEL_TRAIN_SEED, NOVEL_TEST_SEED = 2_000, 2_001
# Fixed and independent of the trial seed: every trial and every resume sees the same validation images.
VALIDATION_SPLIT_SEED = 20_201
SPLITS = ("val", "test")


@dataclass(frozen=True)
class TransferData:
    """A task: datasets yield (CHW float image in [0, 1] pixels, label).

    `train` is augmented; `val` and `test` use the test transform; `val` is None when there is no validation
    split. `train_plain` is the training split with the test transform (no augmentation), for measurements
    such as the feature distance to the pretrained model."""

    name: str
    num_classes: int
    train: Dataset
    val: Dataset | None
    test: Dataset
    train_plain: Dataset
    skipped_images: int = 0  # unreadable image files left out before the splits (skip_unreadable_images)

    @property
    def finite_training_transform(self) -> bool:
        """Whether the training transform can only make a small known set of images of each training image
        (none, or crops and flips: the embedded datasets), so a frozen model's outputs on every image training can
        see are computable ahead (`trainables.teacher_cache`); False for the paper datasets and imagefolder."""
        variants = getattr(self.train, "variants", None)
        return variants is not None and len(self.train) > 0 and variants(0) is not None

    @property
    def selection_split(self) -> str:
        """The split trials report on and hyper-parameters are chosen by."""
        return "val" if self.val is not None else "test"

    def split(self, name: str) -> Dataset:
        if name == "val" and self.val is None:
            raise UserError(f"dataset {self.name!r} has no validation split (val_fraction = 0)")
        return self.val if name == "val" else self.test


def split_indices(labels: Sequence[int], fraction: float, seed: int, val_fraction: float,
                  official_val: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(training indices kept, validation indices) into the official training split: validation first (fixed
    seed, or the archive's own list), then `fraction` of each class of the rest (trial seed)."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction {val_fraction} is outside the allowed range [0, 1)")
    if val_fraction == 0:
        pool, val = list(range(len(labels))), []
    elif official_val:
        held = set(official_val)
        pool, val = [i for i in range(len(labels)) if i not in held], sorted(held)
    else:
        pool, val = stratified_split(labels, val_fraction, VALIDATION_SPLIT_SEED)
    kept = balanced_subsample([labels[i] for i in pool], fraction, seed)
    return [pool[i] for i in kept], val


def build_transfer_data(name: str, data_root: str | Path | None = None, fraction: float = 1.0, seed: int = 0, *,
                        val_fraction: float, synthetic_images: int = 10_000, skip_unreadable_images: bool = False,
                        cache_dir: str | None = None) -> TransferData:
    """The task's train split (augmented, `fraction` of each class kept), validation and test splits; image files
    that do not decode are left out first with `skip_unreadable_images` (see load_image_split)."""
    spec = dataset_spec(name)
    request = DataRequest(name, data_root, fraction, seed, val_fraction, synthetic_images, skip_unreadable_images,
                          cache_dir)
    if not spec.needs_data_root:
        return spec.load_function()(request)
    return image_files_data(request)


def image_files_data(request: DataRequest) -> TransferData:
    """An IMAGE_FILES dataset's splits: its loader's lists, validation carved, `fraction` kept, the paper's
    image transforms."""
    split = load_image_split(request.name, request.data_root, skip_unreadable=request.skip_unreadable_images,
                             cache_dir=request.cache_dir)
    train_transform, test_transform = paper_transforms()
    items = split.train
    kept, val = split_indices([label for _, label in items], request.fraction, request.seed, request.val_fraction,
                              _positions(items, split.official_val))

    def images(indices: list[int], transform) -> ImageListDataset:
        return ImageListDataset([items[i] for i in indices], transform)

    return TransferData(request.name, len(split.classes), images(kept, train_transform),
                        images(val, test_transform) if val else None, ImageListDataset(split.test, test_transform),
                        images(kept, test_transform), split.skipped)


def digits_data(request: DataRequest) -> TransferData:
    split = digits_split()
    # No flips: mirrored digits change meaning.
    return _tensor_task(request.name, 10, split.train_images, split.train_labels, split.test_images,
                        split.test_labels, v2.RandomCrop(DIGITS_IMAGE_SIZE, padding=2), request.fraction,
                        request.seed, request.val_fraction)


def novel_shapes_data(request: DataRequest) -> TransferData:
    return novel_shapes_task(request.fraction, request.seed, request.val_fraction)


def synthetic_data(request: DataRequest) -> TransferData:
    images, labels = generate_shapes(request.synthetic_images, SYNTHETIC_TRAIN_SEED, SYNTHETIC_IMAGE_SIZE)
    test_images, test_labels = generate_shapes(SYNTHETIC_TEST_IMAGES, SYNTHETIC_TEST_SEED, SYNTHETIC_IMAGE_SIZE)
    augment = v2.Compose([v2.RandomCrop(SYNTHETIC_IMAGE_SIZE, padding=2), v2.RandomHorizontalFlip()])
    return _tensor_task(request.name, SYNTHETIC_CLASSES, images, labels, test_images, test_labels, augment,
                        request.fraction, request.seed, request.val_fraction)


def novel_shapes_task(fraction: float, seed: int, val_fraction: float, train_per_class: int = NOVEL_TRAIN_PER_CLASS,
                      classes: tuple[tuple[str, str], ...] = NOVEL_CLASSES) -> TransferData:
    images, labels = generate_shapes(train_per_class * len(classes), NOVEL_TRAIN_SEED, SYNTHETIC_IMAGE_SIZE, classes)
    test_images, test_labels = generate_shapes(NOVEL_TEST_PER_CLASS * len(classes), NOVEL_TEST_SEED,
                                               SYNTHETIC_IMAGE_SIZE, classes)
    augment = v2.Compose([v2.RandomCrop(SYNTHETIC_IMAGE_SIZE, padding=2), v2.RandomHorizontalFlip()])
    return _tensor_task("novel_shapes", len(classes), images, labels, test_images, test_labels, augment, fraction,
                        seed, val_fraction)


def _tensor_task(name: str, num_classes: int, images, labels, test_images, test_labels, augment: Callable,
                 fraction: float, seed: int, val_fraction: float) -> TransferData:
    kept, val = split_indices(labels.tolist(), fraction, seed, val_fraction)
    return TransferData(name, num_classes, TensorImageDataset(images[kept], labels[kept], augment),
                        TensorImageDataset(images[val], labels[val]) if val else None,
                        TensorImageDataset(test_images, test_labels), TensorImageDataset(images[kept], labels[kept]))


def _positions(items: Sequence[tuple[Path, int]], subset: Sequence[tuple[Path, int]]) -> list[int]:
    wanted = set(subset)
    return [i for i, item in enumerate(items) if item in wanted]


def dataset_summary(name: str, data_root: str | Path | None = None, fraction: float = 1.0, seed: int = 0, *,
                    val_fraction: float) -> dict:
    """Class and image counts per split after checking the layout; decodes no image."""
    if not dataset_spec(name).needs_data_root:
        data = build_transfer_data(name, fraction=fraction, seed=seed, val_fraction=val_fraction)
        return {"dataset": name, "classes": data.num_classes, "train": len(data.train),
                "val": len(data.val) if data.val is not None else 0, "test": len(data.test)}
    split = load_image_split(name, data_root)
    kept, val = split_indices([label for _, label in split.train], fraction, seed, val_fraction,
                              _positions(split.train, split.official_val))
    return {"dataset": name, "classes": len(split.classes), "train": len(kept), "val": len(val),
            "test": len(split.test)}


def load_image_split(name: str, data_root: str | Path | None, *, skip_unreadable: bool = False,
                     cache_dir: str | None = None) -> ImageListSplit:
    """A paper dataset's or the image folder's (image path, label) lists, its layout checked; with
    `skip_unreadable`, without the files that do not decode, left out before any split so that every trial holds
    the same lists (the verdict is cached: trainables.data.readable)."""
    if not data_root:
        raise UserError(f"dataset {name!r} needs --data-root: {data_root_hint(name)}")
    split = dataset_spec(name).load_function()(name, data_root)
    if not skip_unreadable:
        return split
    unreadable = {item.path for item in unreadable_images(_image_paths(split), cache_dir, f"the {name} images")}

    def readable(items: Sequence[tuple[Path, int]]) -> list[tuple[Path, int]]:
        return [(path, label) for path, label in items if path not in unreadable]

    return replace(split, train=readable(split.train), test=readable(split.test),
                   official_val=tuple(readable(split.official_val)), skipped=len(unreadable))


def check_images_decode(name: str, data_root: str | Path | None, *, skip_unreadable: bool,
                        cache_dir: str | None = None) -> str | None:
    """Decodes every image file of the dataset (once per file list, then cached), so that no trial meets one
    that does not decode: the first such file is a UserError naming it, unless `skip_unreadable`; then trials
    leave them out, and this returns the warning line that says so. None when every file decodes."""
    paths = _image_paths(load_image_split(name, data_root))
    unreadable = unreadable_images(paths, cache_dir, f"the {name} images")
    if not unreadable:
        return None
    first, plural = unreadable[0], len(unreadable) > 1
    if not skip_unreadable:
        raise UserError(f"{name}: cannot read image {first.path}: {first.reason}; {len(unreadable)} of its "
                        f"{len(paths)} images {'do' if plural else 'does'} not decode "
                        f"(--skip-unreadable-images leaves {'them' if plural else 'it'} out)")
    return (f"{name}: skipped {len(unreadable)} unreadable image{'s' if plural else ''} of {len(paths)} in "
            f"{data_root} (first: {first.path}: {first.reason})")


def _image_paths(split: ImageListSplit) -> list[Path]:
    return [path for path, _ in split.train + split.test]
