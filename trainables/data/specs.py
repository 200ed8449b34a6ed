"""Every dataset as one spec: the table the rest of the code reads (names, loaders, layouts, class counts, attack
presets, recipe profiles), importable without torch so that every command can list the names in its --help.

Adding a dataset is one entry here and its loader (and a test fixture of its layout). A loader is named
"module:function" and imported only when the data is built, which keeps this table torch-free; a spec built at
run time (a plugin, a test) may hold the function itself. Two kinds of loader:

- EMBEDDED: `loader(request: DataRequest) -> TransferData`, generated or bundled data built in memory;
- IMAGE_FILES: `loader(name, data_root) -> ImageListSplit`, the (image path, label) lists of a layout under
  --data-root; `trainables.data.registry` carves validation, subsamples and applies the image transforms.
"""
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainables.errors import UserError

EMBEDDED = "embedded"
IMAGE_FILES = "image_files"
# The share of each class's training images held out as the validation split, unless a trial says otherwise.
DEFAULT_VAL_FRACTION = 0.1
ARCHIVE_ROOT = "the folder its official archive was unpacked in"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # EMBEDDED or IMAGE_FILES
    loader: str | Callable  # "module:function", or the function
    num_classes: int | None  # None where the data decides (the user's own folders)
    attack_preset: str  # the final stage's default (trainables.attack_presets)
    profile: str  # "embedded" or "paper": the recipe defaults a trial starts from (trainables.config)
    layout: str = ""  # IMAGE_FILES: the files --data-root must hold, quoted when they are not there
    data_root: str = ARCHIVE_ROOT  # IMAGE_FILES: what --data-root names
    role: str = "target"  # "source": the task the embedded stand-in for a public model is pretrained on

    @property
    def needs_data_root(self) -> bool:
        return self.kind == IMAGE_FILES

    def load_function(self) -> Callable:
        if callable(self.loader):
            return self.loader
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class DataRequest:
    """What a trial asks of a dataset's loader."""

    name: str
    data_root: str | Path | None = None
    fraction: float = 1.0  # of each class of the training split (after validation is carved out)
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION
    synthetic_images: int = 10_000  # the source task's size (its recipe)
    skip_unreadable_images: bool = False
    cache_dir: str | None = None


_PAPER = "trainables.data.paper:load_paper_split"
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    # The embedded default target: 20 generated shape x texture classes the source never saw.
    DatasetSpec("novel_shapes", EMBEDDED, "trainables.data.registry:novel_shapes_data", 20, "embedded", "embedded"),
    # scikit-learn's bundled handwritten digits, upsampled to RGB 32 x 32.
    DatasetSpec("digits", EMBEDDED, "trainables.data.registry:digits_data", 10, "digits", "embedded"),
    # The source task the embedded stand-in for a public pre-trained model learns (5 shapes x 4 textures).
    DatasetSpec("synthetic", EMBEDDED, "trainables.data.registry:synthetic_data", 20, "embedded", "embedded",
                role="source"),
    DatasetSpec("dog", IMAGE_FILES, _PAPER, 120, "paper", "paper",
                "Stanford Dogs: Images/<wnid>-<name>/*.jpg, train_list.mat, test_list.mat"),
    DatasetSpec("bird", IMAGE_FILES, _PAPER, 200, "paper", "paper",
                "CUB-200-2011: CUB_200_2011/ holding images.txt, image_class_labels.txt, train_test_split.txt, "
                "classes.txt, images/"),
    DatasetSpec("action", IMAGE_FILES, _PAPER, 40, "paper", "paper",
                "Stanford 40 Actions: JPEGImages/, ImageSplits/actions.txt, ImageSplits/<action>_train.txt, "
                "ImageSplits/<action>_test.txt"),
    DatasetSpec("indoor", IMAGE_FILES, _PAPER, 67, "paper", "paper",
                "MIT Indoor 67: Images/<class>/*.jpg, TrainImages.txt, TestImages.txt"),
    DatasetSpec("flower", IMAGE_FILES, _PAPER, 102, "paper", "paper",
                "Oxford Flowers 102: jpg/image_%05d.jpg, imagelabels.mat, setid.mat"),
    # The user's own images, in torchvision's ImageFolder layout.
    DatasetSpec("imagefolder", IMAGE_FILES, "trainables.data.imagefolder:load_imagefolder_split", None, "paper",
                "paper", "DATA_ROOT/train/<class>/<image> and DATA_ROOT/test/<class>/<image>",
                "the folder holding train/ and test/"),
)}
# The five datasets of the paper, in its tables' column order.
PAPER_DATASETS = ("dog", "bird", "action", "indoor", "flower")


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def data_root_hint(name: str) -> str:
    """What --data-root holds for dataset `name`."""
    spec = dataset_spec(name)
    return f"{spec.data_root} ({spec.layout})"
