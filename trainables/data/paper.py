"""The five paper datasets, read as (image path, label) lists from their official archive layouts."""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from trainables.data.specs import dataset_spec
from trainables.errors import UserError

Items = list[tuple[Path, int]]


@dataclass(frozen=True)
class ImageListSplit:
    dataset: str
    classes: list[str]
    train: Items
    test: Items
    # The archive's own validation list, already part of `train` (Flowers' `valid`); empty where there is none.
    official_val: tuple[tuple[Path, int], ...] = ()
    skipped: int = 0  # unreadable image files left out of train and test (skip_unreadable_images)


class _MissingLayoutPath(Exception):
    """An index file or folder of the layout is absent; reported with the expected layout."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path


class _BadLayout(Exception):
    """A malformed index file or a missing image; reported with the dataset name."""


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise _MissingLayoutPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _BadLayout(f"cannot read {path}: {error}") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    """Rows of `<key> <value>` as in CUB's index files."""
    pairs = []
    for line in _read_lines(path):
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise _BadLayout(f"malformed {path}: expected '<id> <value>' lines, got {line!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


def _parse_int(text: str, path: Path) -> int:
    try:
        return int(text)
    except ValueError as error:
        raise _BadLayout(f"malformed {path}: {text!r} is not an integer") from error


def _load_mat(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise _MissingLayoutPath(path)
    try:
        variables = scipy.io.loadmat(path)
    # scipy signals a corrupt file with many unrelated exception types (ValueError, TypeError, MatReadError, ...).
    except Exception as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise _BadLayout(f"cannot read {path}: {reason}") from error
    for name in names:
        if name not in variables:
            raise _BadLayout(f"malformed {path}: no variable {name!r}")
    return {name: variables[name] for name in names}


def _mat_ints(values: np.ndarray, path: Path) -> list[int]:
    flat = np.asarray(values).ravel()
    if flat.dtype.kind not in "iuf" or not np.array_equal(flat, np.round(flat)):
        raise _BadLayout(f"malformed {path}: expected integer values")
    return [int(value) for value in flat]


def _mat_strings(values: np.ndarray, path: Path) -> list[str]:
    """A MATLAB cell array of strings, as scipy loads it: an object array of 1-element string arrays."""
    strings = []
    for cell in np.asarray(values).ravel():
        inner = np.asarray(cell).ravel()
        if inner.size != 1 or inner.dtype.kind != "U":
            raise _BadLayout(f"malformed {path}: expected a cell array of strings")
        strings.append(str(inner[0]))
    return strings


def _read_dog_list(path: Path) -> tuple[list[str], list[int]]:
    variables = _load_mat(path, ("file_list", "labels"))
    relpaths = _mat_strings(variables["file_list"], path)
    labels = _mat_ints(variables["labels"], path)
    if len(relpaths) != len(labels):
        raise _BadLayout(f"malformed {path}: {len(relpaths)} files but {len(labels)} labels")
    return relpaths, labels


def _read_dog(root: Path) -> tuple[list[str], Items, Items]:
    list_paths = {split: root / f"{split}_list.mat" for split in ("train", "test")}
    lists = {split: _read_dog_list(path) for split, path in list_paths.items()}
    classes = sorted({relpath.split("/")[0] for relpaths, _ in lists.values() for relpath in relpaths})
    class_index = {name: index for index, name in enumerate(classes)}
    items: dict[str, Items] = {}
    for split, (relpaths, labels) in lists.items():
        items[split] = []
        for relpath, label in zip(relpaths, labels):
            folder_label = class_index[relpath.split("/")[0]] + 1
            # The 1-based labels follow the sorted class folders; a disagreement would mislabel the class names.
            if label != folder_label:
                raise _BadLayout(f"malformed {list_paths[split]}: {relpath} has label {label}, "
                                 f"but its folder sorts as class {folder_label}")
            items[split].append((root / "Images" / relpath, label - 1))
    return classes, items["train"], items["test"]


def _read_bird(cub: Path) -> tuple[list[str], Items, Items]:
    classes_path = cub / "classes.txt"
    class_rows = _read_pairs(classes_path)
    if [_parse_int(class_id, classes_path) for class_id, _ in class_rows] != list(range(1, len(class_rows) + 1)):
        raise _BadLayout(f"malformed {classes_path}: class ids must run 1..{len(class_rows)} in order")
    classes = [name for _, name in class_rows]
    labels_path = cub / "image_class_labels.txt"
    labels = {image_id: _parse_int(label, labels_path) for image_id, label in _read_pairs(labels_path)}
    split_path = cub / "train_test_split.txt"
    is_train = dict(_read_pairs(split_path))
    train: Items = []
    test: Items = []
    for image_id, relpath in _read_pairs(cub / "images.txt"):
        if image_id not in labels:
            raise _BadLayout(f"malformed {labels_path}: no class for image id {image_id}")
        if not 1 <= labels[image_id] <= len(classes):
            raise _BadLayout(f"malformed {labels_path}: class {labels[image_id]} of image id {image_id} "
                             f"is outside 1..{len(classes)}")
        if is_train.get(image_id) not in ("0", "1"):
            raise _BadLayout(f"malformed {split_path}: image id {image_id} needs a 1 (train) or 0 (test)")
        items = train if is_train[image_id] == "1" else test
        items.append((cub / "images" / relpath, labels[image_id] - 1))
    return classes, train, test


def _read_action(root: Path) -> tuple[list[str], Items, Items]:
    splits = root / "ImageSplits"
    actions_path = splits / "actions.txt"
    classes = [line.split()[0] for line in _read_lines(actions_path)[1:]]  # the first line is a header
    if not classes:
        raise _BadLayout(f"malformed {actions_path}: no actions listed after the header line")
    train: Items = []
    test: Items = []
    for label, action in enumerate(classes):
        train += [(root / "JPEGImages" / name, label) for name in _read_lines(splits / f"{action}_train.txt")]
        test += [(root / "JPEGImages" / name, label) for name in _read_lines(splits / f"{action}_test.txt")]
    return classes, train, test


def _read_indoor(root: Path) -> tuple[list[str], Items, Items]:
    images = root / "Images"
    if not images.is_dir():
        raise _MissingLayoutPath(images)
    classes = sorted(folder.name for folder in images.iterdir() if folder.is_dir())
    class_index = {name: index for index, name in enumerate(classes)}

    def read_list(path: Path) -> Items:
        items = []
        for relpath in _read_lines(path):
            folder = relpath.split("/")[0]
            if folder not in class_index:
                raise _BadLayout(f"missing image {images / relpath}")
            items.append((images / relpath, class_index[folder]))
        return items

    return classes, read_list(root / "TrainImages.txt"), read_list(root / "TestImages.txt")


def _read_flower(root: Path) -> tuple[list[str], Items, Items]:
    labels_path = root / "imagelabels.mat"
    labels = _mat_ints(_load_mat(labels_path, ("labels",))["labels"], labels_path)
    if not labels or min(labels) < 1:
        raise _BadLayout(f"malformed {labels_path}: expected 1-based labels, one per image")
    setid_path = root / "setid.mat"
    setid = _load_mat(setid_path, ("trnid", "valid", "tstid"))

    def read_ids(*names: str) -> Items:
        items = []
        for name in names:
            for image_id in _mat_ints(setid[name], setid_path):
                if not 1 <= image_id <= len(labels):
                    raise _BadLayout(f"malformed {setid_path}: image id {image_id} has no label in {labels_path}")
                items.append((root / "jpg" / f"image_{image_id:05d}.jpg", labels[image_id - 1] - 1))
        return items

    classes = [str(label) for label in range(1, max(labels) + 1)]
    return classes, read_ids("trnid", "valid"), read_ids("tstid"), read_ids("valid")


@dataclass(frozen=True)
class _Layout:
    marker: str  # a path relative to the data root that identifies where the layout sits (described by the spec)
    read: Callable[[Path], tuple]  # -> (classes, train, test) or (classes, train, test, official validation)


_LAYOUTS = {
    "dog": _Layout("train_list.mat", _read_dog),
    "bird": _Layout("images.txt", _read_bird),
    "action": _Layout("ImageSplits/actions.txt", _read_action),
    "indoor": _Layout("TrainImages.txt", _read_indoor),
    "flower": _Layout("imagelabels.mat", _read_flower),
}


def _layout_root(data_root: Path, marker: str, depth: int = 2) -> Path:
    """The data root itself, or the one folder up to `depth` levels below it holding the layout (an
    archive's top folder, e.g. the folder holding CUB_200_2011/ or CUB_200_2011/ itself)."""
    level = [data_root]
    for _ in range(depth + 1):
        holders = [folder for folder in level if (folder / marker).exists()]
        if len(holders) == 1:
            return holders[0]
        try:
            level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()]
        except OSError as error:
            raise _BadLayout(f"cannot list {error.filename}: {error.strerror}") from error
    raise _MissingLayoutPath(data_root / marker)


def load_paper_split(name: str, data_root: str | Path) -> ImageListSplit:
    if name not in _LAYOUTS:
        raise UserError(f"unknown paper dataset {name!r}; choose one of {', '.join(_LAYOUTS)}")
    layout = _LAYOUTS[name]
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{name}: data root {data_root} does not exist or is not a folder")
    try:
        classes, train, test, *official_val = layout.read(_layout_root(root, layout.marker))
        for path, _ in train + test:
            if not path.is_file():
                raise _BadLayout(f"missing image {path}")
    except _MissingLayoutPath as error:
        raise UserError(f"{name}: missing {error.path}; expected the layout {dataset_spec(name).layout}") from None
    except _BadLayout as error:
        raise UserError(f"{name}: {error}") from None
    return ImageListSplit(name, classes, train, test, tuple(official_val[0]) if official_val else ())
