"""The validation split: carved from the training split, stratified, disjoint from train and test, the same
for every trial seed and every resume, and absent (the old split) with val_fraction = 0."""
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config
from tests.layouts import make_bird, make_flower
from trainables.config import resolve_config
from trainables.data.digits import digits_split
from trainables.data.registry import build_transfer_data, split_indices
from trainables.data.subsample import balanced_subsample
from trainables.errors import UserError
from trainables.trial import prepare_run

LABELS = [0] * 30 + [1] * 9 + [2] * 4 + [3] * 2 + [4] * 1 + [0] * 3


def rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


@pytest.mark.parametrize("val_fraction", [0.1, 0.25, 0.5])
def test_validation_is_stratified_and_disjoint_from_training(val_fraction):
    kept, val = split_indices(LABELS, 1.0, seed=0, val_fraction=val_fraction)
    assert not set(kept) & set(val) and sorted(kept + val) == list(range(len(LABELS)))
    per_class = Counter(LABELS)
    assert Counter(LABELS[i] for i in val) == {
        label: min(count - 1, max(1, round(val_fraction * count))) for label, count in per_class.items() if count > 1}
    assert {LABELS[i] for i in kept} == set(per_class)  # every class still trains, the singleton class too


def test_validation_comes_before_the_fraction_and_ignores_the_trial_seed():
    reference = split_indices(LABELS, 1.0, seed=0, val_fraction=0.1)[1]
    for fraction, seed in ((1.0, 3), (0.5, 0), (0.33, 7)):
        kept, val = split_indices(LABELS, fraction, seed, val_fraction=0.1)
        assert val == reference and not set(kept) & set(val)
    assert split_indices(LABELS, 0.5, 1, 0.1)[0] != split_indices(LABELS, 0.5, 2, 0.1)[0]  # the seed subsamples


def test_digits_splits_are_disjoint_and_the_same_for_every_seed_and_resume():
    data = build_transfer_data("digits", fraction=0.5, seed=0, val_fraction=0.1)
    val, train, test = data.val.images, data.train.images, data.test.images
    assert not rows(val) & rows(train) and not rows(val) & rows(test)
    assert set(data.val.labels.tolist()) == set(range(10))
    assert data.train.transform is not None and data.val.transform is None  # validation is not augmented
    for seed in (1, 2):
        other = build_transfer_data("digits", fraction=0.5, seed=seed, val_fraction=0.1)
        assert torch.equal(other.val.images, val) and torch.equal(other.val.labels, data.val.labels)
        assert not torch.equal(other.train.images, train)  # only the trial seed's subsample changed
    config = resolve_config(tiny_config("finetune", seed=4))
    assert torch.equal(prepare_run(config).data.val.images, prepare_run(config).data.val.images)
    assert prepare_run(config).data.selection_split == config.selection_split == "val"


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_val_fraction_zero_is_the_old_split(fraction):
    data = build_transfer_data("digits", fraction=fraction, seed=3, val_fraction=0.0)
    split = digits_split()
    old = balanced_subsample(split.train_labels.tolist(), fraction, seed=3)  # what training used before
    assert data.val is None and data.selection_split == "test"
    assert torch.equal(data.train.images, split.train_images[old])
    assert torch.equal(data.train.labels, split.train_labels[old])
    assert torch.equal(data.test.images, split.test_images)
    with pytest.raises(UserError, match="no validation split"):
        data.split("val")


def test_paper_validation_is_carved_from_train_and_flowers_uses_its_official_list(tmp_path: Path):
    make_bird(tmp_path / "bird")
    bird = build_transfer_data("bird", tmp_path / "bird", val_fraction=0.1)
    train, val, test = ({path for path, _ in part.items} for part in (bird.train, bird.val, bird.test))
    assert not train & val and not val & test and not train & test
    assert {label for _, label in bird.val.items} == {label for _, label in bird.train.items} == {0, 1, 2}

    make_flower(tmp_path / "flower")
    flower = build_transfer_data("flower", tmp_path / "flower", val_fraction=0.1)
    official_valid = {tmp_path / "flower" / "jpg" / f"image_{i:05d}.jpg" for i in (1, 4, 8, 12, 13, 15)}
    assert {path.relative_to(tmp_path) for path, _ in flower.val.items} == {
        path.relative_to(tmp_path) for path in official_valid}
    assert len(flower.train) == 3  # trnid
    assert len(build_transfer_data("flower", tmp_path / "flower", val_fraction=0.0).train) == 9  # trnid + valid


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_a_bad_val_fraction_is_a_user_error(value):
    with pytest.raises(UserError, match=f"val_fraction={value}"):
        resolve_config({"method": "finetune", "val_fraction": value})


def test_the_embedded_default_has_few_images_per_class_and_disjoint_splits():
    data = build_transfer_data("novel_shapes", val_fraction=0.1)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (1800, 200, 1000, 20)
    assert Counter(data.val.labels.tolist()) == dict.fromkeys(range(20), 10)
    assert not rows(data.val.images) & rows(data.train.images) and not rows(data.test.images) & rows(data.train.images)
