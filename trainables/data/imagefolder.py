"""The user's own images, `DATA_ROOT/train/<class>/<image>` and `DATA_ROOT/test/<class>/<image>`, read as
(image path, label) lists with torchvision's ImageFolder rules (`find_classes`, `make_dataset`): classes are
train/'s sub-folders in sorted order, images are files with an image extension anywhere below a class folder.
test/ may lack classes of train/, but not have classes train/ lacks."""
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from trainables.data.paper import ImageListSplit, Items
from trainables.data.specs import dataset_spec
from trainables.errors import UserError

IMAGE_FOLDER = "imagefolder"
LAYOUT = dataset_spec(IMAGE_FOLDER).layout


def load_imagefolder_split(name: str, data_root: str | Path) -> ImageListSplit:
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{IMAGE_FOLDER}: data root {data_root} does not exist or is not a folder")
    classes, class_index = _classes(root / "train")
    test_classes, _ = _classes(root / "test")
    unknown = [name for name in test_classes if name not in class_index]
    if unknown:
        raise UserError(f"{IMAGE_FOLDER}: test class folder {root / 'test' / unknown[0]} has no counterpart "
                        f"{root / 'train' / unknown[0]}; test classes must be train classes")
    train = _items(root / "train", class_index)
    test = _items(root / "test", {name: class_index[name] for name in test_classes})
    return ImageListSplit(name, classes, train, test)


def _classes(folder: Path) -> tuple[list[str], dict[str, int]]:
    if not folder.is_dir():
        raise UserError(f"{IMAGE_FOLDER}: missing folder {folder}; expected the layout {LAYOUT}")
    try:
        return find_classes(folder)
    except FileNotFoundError:  # what find_classes raises for a folder without sub-folders
        raise UserError(f"{IMAGE_FOLDER}: no class folders in {folder}; expected the layout {LAYOUT}") from None
    except OSError as error:
        raise UserError(f"{IMAGE_FOLDER}: cannot list {folder}: {error.strerror}") from None


def _items(folder: Path, class_index: dict[str, int]) -> Items:
    """Every image of every class in `class_index` below `folder`; a class folder without one is an error."""
    samples = make_dataset(folder, class_index, extensions=IMG_EXTENSIONS, allow_empty=True)
    labelled = {label for _, label in samples}
    empty = next((name for name, label in class_index.items() if label not in labelled), None)
    if empty is not None:
        raise UserError(f"{IMAGE_FOLDER}: class folder {folder / empty} has no images "
                        f"(files ending {', '.join(IMG_EXTENSIONS)})")
    return [(Path(path), label) for path, label in samples]
