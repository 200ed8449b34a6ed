"""Tiny copies of the five official dataset archive layouts and of an image folder, built in a temporary
folder for tests.

Each class has a different number of train images, so per-class balance checks mean something.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


@dataclass(frozen=True)
class FakeLayout:
    root: Path  # the folder to pass as data_root
    classes: list[str]
    train_per_class: list[int]  # index = label
    test_count: int
    known: dict[Path, int]  # absolute image path -> expected label, a train and a test image of each class
    index_file: Path  # one index file the loader needs

    @property
    def train_count(self) -> int:
        return sum(self.train_per_class)


def write_jpeg(path: Path, label: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), color=(40 * label, 90, 200)).save(path, "JPEG")


def _cell_column(strings: list[str]) -> np.ndarray:
    """An N×1 MATLAB cell array of strings, the shape of Stanford Dogs' `file_list`."""
    cells = np.empty((len(strings), 1), dtype=object)
    for row, string in enumerate(strings):
        cells[row, 0] = string
    return cells


def make_dog(root: Path) -> FakeLayout:
    classes = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02086240-Shih-Tzu"]
    train_per_class = [4, 2, 3]
    known: dict[Path, int] = {}
    for split, per_class in (("train", train_per_class), ("test", [1, 2, 1])):
        relpaths, labels = [], []
        for label, folder in enumerate(classes):
            wnid = folder.split("-")[0]
            for number in range(per_class[label]):
                relpath = f"{folder}/{wnid}_{split}{number}.jpg"
                write_jpeg(root / "Images" / relpath, label)
                relpaths.append(relpath)
                labels.append(label + 1)
            known[root / "Images" / relpath] = label
        # Listed newest class first, so the labels cannot come from the list order.
        scipy.io.savemat(root / f"{split}_list.mat", {
            "file_list": _cell_column(relpaths[::-1]),
            "annotation_list": _cell_column([relpath[:-4] for relpath in relpaths[::-1]]),
            "labels": np.array(labels[::-1], dtype=np.float64).reshape(-1, 1),
        })
    return FakeLayout(root, classes, train_per_class, 4, known, root / "test_list.mat")


def make_bird(root: Path) -> FakeLayout:
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    train_per_class = [3, 5, 2]
    cub = root / "CUB_200_2011"
    rows: list[tuple[str, int, bool]] = []  # (relative path, 1-based class, is train)
    for label, name in enumerate(classes):
        for number in range(train_per_class[label] + 2):
            rows.append((f"{name}/{name[4:]}_{number:04d}_{100 + number}.jpg", label + 1, number >= 2))
    known: dict[Path, int] = {}
    for relpath, class_id, _ in rows:
        write_jpeg(cub / "images" / relpath, class_id)
        known[cub / "images" / relpath] = class_id - 1
    ids = range(1, len(rows) + 1)
    (cub / "images.txt").write_text("".join(f"{i} {row[0]}\n" for i, row in zip(ids, rows)))
    (cub / "image_class_labels.txt").write_text("".join(f"{i} {row[1]}\n" for i, row in zip(ids, rows)))
    (cub / "train_test_split.txt").write_text("".join(f"{i} {int(row[2])}\n" for i, row in zip(ids, rows)))
    (cub / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(classes, start=1)))
    return FakeLayout(root, classes, train_per_class, 2 * len(classes), known, cub / "train_test_split.txt")


def make_action(root: Path) -> FakeLayout:
    # Not alphabetical: the label is the position in actions.txt.
    classes = ["writing_on_a_book", "applauding", "riding_a_horse"]
    train_per_class = [2, 4, 3]
    test_per_class = [2, 1, 1]
    splits = root / "ImageSplits"
    splits.mkdir(parents=True)
    counts = [train + test for train, test in zip(train_per_class, test_per_class)]
    (splits / "actions.txt").write_text(
        "action_name\tnumber_of_images\n"
        f"{classes[0]}\t{counts[0]}\n{classes[1]}    {counts[1]}\n{classes[2]}\t\t{counts[2]}\n"
    )
    known: dict[Path, int] = {}
    for label, action in enumerate(classes):
        names = [f"{action}_{number:03d}.jpg" for number in range(1, counts[label] + 1)]
        for name in names:
            write_jpeg(root / "JPEGImages" / name, label)
        train_names, test_names = names[:train_per_class[label]], names[train_per_class[label]:]
        (splits / f"{action}_train.txt").write_text("".join(f"{name}\n" for name in train_names))
        (splits / f"{action}_test.txt").write_text("".join(f"{name}\r\n" for name in test_names))
        known[root / "JPEGImages" / train_names[0]] = label
        known[root / "JPEGImages" / test_names[-1]] = label
    return FakeLayout(root, classes, train_per_class, sum(test_per_class), known,
                      splits / f"{classes[1]}_test.txt")


def make_indoor(root: Path) -> FakeLayout:
    classes = ["airport_inside", "bakery", "kitchen"]
    train_per_class = [3, 2, 4]
    listed_order = [2, 0, 1]  # the lists are not sorted by class; labels come from the sorted folder names
    known: dict[Path, int] = {}
    for split, per_class in (("Train", train_per_class), ("Test", [1, 1, 2])):
        lines = []
        for label in listed_order:
            for number in range(per_class[label]):
                relpath = f"{classes[label]}/{split.lower()}_{number}.jpg"
                write_jpeg(root / "Images" / relpath, label)
                lines.append(relpath)
            known[root / "Images" / relpath] = label
        (root / f"{split}Images.txt").write_text("\n".join(lines) + "\n")
    write_jpeg(root / "Images" / "bakery" / "not_in_any_list.jpg", 1)
    return FakeLayout(root, classes, train_per_class, 4, known, root / "TestImages.txt")


def make_flower(root: Path) -> FakeLayout:
    labels = [2, 1, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 2, 1, 2]  # 1-based, one per image id 1..15
    trnid, valid, tstid = [2, 3, 5], [1, 4, 8, 12, 13, 15], [6, 7, 9, 10, 11, 14]
    for image_id, label in enumerate(labels, start=1):
        write_jpeg(root / "jpg" / f"image_{image_id:05d}.jpg", label)
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.float64)})
    scipy.io.savemat(root / "setid.mat", {name: np.array([ids], dtype=np.uint16)
                                          for name, ids in (("trnid", trnid), ("valid", valid), ("tstid", tstid))})
    train_labels = [labels[image_id - 1] for image_id in trnid + valid]
    known = {root / "jpg" / f"image_{image_id:05d}.jpg": labels[image_id - 1] - 1 for image_id in (1, 2, 6, 9)}
    return FakeLayout(root, ["1", "2", "3"], [train_labels.count(label) for label in (1, 2, 3)], len(tstid),
                      known, root / "setid.mat")


MAKERS = {"dog": make_dog, "bird": make_bird, "action": make_action, "indoor": make_indoor, "flower": make_flower}


def make_imagefolder(root: Path) -> FakeLayout:
    """torchvision's ImageFolder layout: root/{train,test}/<class>/<image>, in several formats and a nested folder,
    beside files that are not images; test/ lacks one of train/'s classes. `index_file` is test/."""
    classes = ["cat", "dog", "zebra"]  # labels follow the sorted folder names
    train_per_class = [6, 4, 5]
    test_per_class = {"cat": 2, "zebra": 3}
    suffixes = (".jpg", ".png", ".JPEG")
    known: dict[Path, int] = {}
    for split, per_class in (("train", dict(zip(classes, train_per_class))), ("test", test_per_class)):
        for name, count in per_class.items():
            label = classes.index(name)
            for number in range(count):
                folder = root / split / name / ("nested" if number == 1 else "")
                path = folder / f"{split}_{number}{suffixes[number % len(suffixes)]}"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (12, 10), color=(40 * label, 90, 200)).save(path)
                known[path] = label
            (root / split / name / "notes.txt").write_text("not an image")
    return FakeLayout(root, classes, train_per_class, sum(test_per_class.values()), known, root / "test")
