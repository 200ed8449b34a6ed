from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from tests.layouts import MAKERS, FakeLayout, make_bird, make_dog, make_flower
from trainables.data.images import ImageListDataset, paper_transforms
from trainables.data.paper import load_paper_split
from trainables.data.specs import PAPER_DATASETS
from trainables.errors import UserError


def one_line_error(name: str, data_root: Path) -> str:
    with pytest.raises(UserError) as raised:
        load_paper_split(name, data_root)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_split_matches_the_layout(name: str, tmp_path: Path) -> None:
    layout: FakeLayout = MAKERS[name](tmp_path)
    split = load_paper_split(name, tmp_path)
    assert split.dataset == name
    assert split.classes == layout.classes
    assert Counter(label for _, label in split.train) == dict(enumerate(layout.train_per_class))
    assert len(split.test) == layout.test_count
    labels = dict(split.train + split.test)
    assert {path: labels[path] for path in layout.known} == layout.known
    assert {label for _, label in split.train} == set(range(len(layout.classes)))
    assert all(path.is_absolute() and path.is_file() for path, _ in split.train + split.test)
    assert not {path for path, _ in split.train} & {path for path, _ in split.test}


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_the_archive_top_folder_is_accepted(name: str, tmp_path: Path) -> None:
    layout = MAKERS[name](tmp_path / "unpacked")
    split = load_paper_split(name, tmp_path)
    assert split.classes == layout.classes
    assert len(split.train) == layout.train_count


def test_bird_accepts_the_cub_folder_itself(tmp_path: Path) -> None:
    layout = make_bird(tmp_path)
    split = load_paper_split("bird", tmp_path / "CUB_200_2011")
    assert split.classes == layout.classes
    assert len(split.train) == layout.train_count


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_a_missing_image_is_named(name: str, tmp_path: Path) -> None:
    layout = MAKERS[name](tmp_path)
    missing = sorted(layout.known)[0]
    missing.unlink()
    message = one_line_error(name, tmp_path)
    assert message.startswith(f"{name}: ")
    assert str(missing) in message


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_a_missing_index_file_is_named_with_the_layout(name: str, tmp_path: Path) -> None:
    layout = MAKERS[name](tmp_path)
    layout.index_file.unlink()
    message = one_line_error(name, tmp_path)
    assert str(layout.index_file) in message
    assert "expected the layout" in message


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_an_empty_folder_names_what_was_expected(name: str, tmp_path: Path) -> None:
    message = one_line_error(name, tmp_path)
    assert str(tmp_path) in message
    assert "expected the layout" in message


def test_a_missing_data_root_is_named(tmp_path: Path) -> None:
    assert str(tmp_path / "nowhere") in one_line_error("dog", tmp_path / "nowhere")


def test_an_unknown_name_lists_the_paper_datasets(tmp_path: Path) -> None:
    message = one_line_error("cars", tmp_path)
    assert "'cars'" in message
    assert all(name in message for name in PAPER_DATASETS)


def test_a_corrupt_mat_file_is_a_user_error(tmp_path: Path) -> None:
    make_dog(tmp_path)
    (tmp_path / "train_list.mat").write_bytes(b"not a MATLAB file at all")
    assert str(tmp_path / "train_list.mat") in one_line_error("dog", tmp_path)


def test_a_mat_file_without_its_variable_is_a_user_error(tmp_path: Path) -> None:
    make_flower(tmp_path)
    scipy.io.savemat(tmp_path / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[2]])})
    assert "'tstid'" in one_line_error("flower", tmp_path)


def test_dog_labels_that_disagree_with_the_folders_are_rejected(tmp_path: Path) -> None:
    make_dog(tmp_path)
    variables = scipy.io.loadmat(tmp_path / "test_list.mat")
    swapped = {"file_list": variables["file_list"], "labels": 4 - variables["labels"]}
    scipy.io.savemat(tmp_path / "test_list.mat", swapped)
    assert "label" in one_line_error("dog", tmp_path)


def test_a_malformed_text_index_is_a_user_error(tmp_path: Path) -> None:
    make_bird(tmp_path)
    labels_path = tmp_path / "CUB_200_2011" / "image_class_labels.txt"
    labels_path.write_text(labels_path.read_text().replace("1 1\n", "1 one\n", 1))
    message = one_line_error("bird", tmp_path)
    assert str(labels_path) in message
    assert "'one'" in message


def test_paper_transforms_give_unit_range_images(tmp_path: Path) -> None:
    layout = make_flower(tmp_path)
    train_transform, test_transform = paper_transforms()
    items = sorted(layout.known.items())
    for transform in (train_transform, test_transform):
        image, label = ImageListDataset(items, transform)[0]
        assert image.shape == (3, 224, 224)
        assert image.dtype == torch.float32
        assert 0 <= image.min() <= image.max() <= 1
        assert label == items[0][1]


def test_an_unreadable_image_is_a_user_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="broken.jpg"):
        ImageListDataset([(broken, 0)], paper_transforms()[1])[0]
