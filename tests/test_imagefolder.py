"""`--dataset imagefolder`: the user's own DATA_ROOT/{train,test}/<class>/<image> through the paper datasets'
machinery (validation split, fraction, 224 px transforms, layout errors), and a trial on it."""
from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision import models
from torchvision.datasets import ImageFolder

from tests.layouts import FakeLayout, make_imagefolder
from trainables.adversarial_set import AdversarialSetSpec
from trainables.checkpoint import save_checkpoint
from trainables.config import resolve_config
from trainables.data.imagefolder import load_imagefolder_split
from trainables.data.registry import build_transfer_data, dataset_summary
from trainables.data.specs import dataset_names
from trainables.errors import UserError
from trainables.methods import METHODS
from trainables.robustness import load_evaluation_model
from trainables.trial import prepare_run
from tuner.attack_stage import default_attack_preset

TAPS = "features.1,features.3,features.8"


@pytest.fixture
def layout(tmp_path: Path) -> FakeLayout:
    return make_imagefolder(tmp_path / "mine")


def held_out(count: int, share: float) -> int:
    """Validation images of a class: a rounded share, at least one, never the whole class."""
    return min(count - 1, max(1, round(share * count))) if count >= 2 else 0


def one_line_error(data_root: Path) -> str:
    with pytest.raises(UserError) as raised:
        load_imagefolder_split("imagefolder", data_root)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("imagefolder: ")
    return message


def test_is_a_dataset_name() -> None:
    assert "imagefolder" in dataset_names()


def test_split_follows_torchvisions_imagefolder_rules(layout: FakeLayout) -> None:
    split = load_imagefolder_split("imagefolder", layout.root)
    assert split.classes == layout.classes
    assert split.train == [(Path(path), label) for path, label in ImageFolder(layout.root / "train").samples]
    assert Counter(label for _, label in split.train) == dict(enumerate(layout.train_per_class))
    assert len(split.test) == layout.test_count  # zebra's label in test is train's, though test has no dog
    assert dict(split.train + split.test) == layout.known  # nested folders and .png/.JPEG in, notes.txt out


def test_transfer_data_has_a_fixed_stratified_validation_split_at_224_px(layout: FakeLayout) -> None:
    data = build_transfer_data("imagefolder", layout.root, val_fraction=0.25)
    assert data.num_classes == 3 and len(data.test) == layout.test_count
    val_labels = Counter(label for _, label in data.val.items)
    assert val_labels == {label: held_out(n, 0.25) for label, n in enumerate(layout.train_per_class)}
    assert len(data.train) + len(data.val) == layout.train_count
    assert not {path for path, _ in data.train.items} & {path for path, _ in data.val.items}
    for dataset in (data.train, data.val, data.test):
        image, _ = dataset[0]
        assert image.shape == (3, 224, 224) and 0 <= image.min() <= image.max() <= 1
    for fraction, seed in ((1.0, 5), (0.5, 0)):
        other = build_transfer_data("imagefolder", layout.root, fraction, seed, val_fraction=0.25)
        assert other.val.items == data.val.items  # the same images whatever the trial seed and fraction
    half = build_transfer_data("imagefolder", layout.root, 0.5, 0, val_fraction=0.25)
    assert len(half.train) < len(data.train)
    assert dataset_summary("imagefolder", layout.root, 0.5, 0, val_fraction=0.25) == {
        "dataset": "imagefolder", "classes": 3, "train": len(half.train), "val": len(half.val),
        "test": layout.test_count}


def test_missing_split_folders_are_named(layout: FakeLayout) -> None:
    for split in ("test", "train"):
        folder = layout.root / split
        folder.rename(layout.root / f"{split}_moved")
        assert f"missing folder {folder};" in one_line_error(layout.root)
    assert str(layout.root / "nowhere") in one_line_error(layout.root / "nowhere")


def test_a_test_class_train_lacks_is_named(layout: FakeLayout) -> None:
    (layout.root / "test" / "cat").rename(layout.root / "test" / "lion")
    message = one_line_error(layout.root)
    assert str(layout.root / "test" / "lion") in message and str(layout.root / "train" / "lion") in message


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_class_folder_without_images_is_named(layout: FakeLayout, split: str) -> None:
    (layout.root / split / "zebra_empty").mkdir()
    (layout.root / split / "zebra_empty" / "readme.txt").write_text("no images here")
    if split == "test":
        (layout.root / "train" / "zebra_empty").mkdir()
        (layout.root / "train" / "zebra_empty" / "one.png").write_bytes(
            next(path for path in layout.known if path.suffix == ".png").read_bytes())
    assert f"class folder {layout.root / split / 'zebra_empty'} has no images" in one_line_error(layout.root)


def test_a_split_folder_without_class_folders_is_named(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    assert f"no class folders in {tmp_path / 'train'}" in one_line_error(tmp_path)


def test_a_trial_config_gets_the_paper_values_and_attack(layout: FakeLayout) -> None:
    for method, spec in METHODS.items():
        config = resolve_config({"method": method, "dataset": "imagefolder", "data_root": str(layout.root)})
        assert config.arch == "resnet18"
        assert all(getattr(config, key) == value for key, value in spec.defaults.items())
    assert default_attack_preset("imagefolder") == "paper"
    with pytest.raises(UserError, match=r"needs data_root \(--data-root\): the folder holding train/ and test/"):
        resolve_config({"method": "finetune", "dataset": "imagefolder"})


def test_a_delta_trial_on_an_image_folder_with_a_tapped_torchvision_arch(layout: FakeLayout, tmp_path: Path) -> None:
    weights = tmp_path / "mobilenet_v3_small.pt"
    torch.save(models.mobilenet_v3_small().state_dict(), weights)
    config = resolve_config({"method": "delta", "dataset": "imagefolder", "data_root": str(layout.root),
                             "arch": "mobilenet_v3_small", "taps": TAPS, "weights": str(weights), "iters": 2,
                             "eval_every": 1, "batch_size": 4, "num_workers": 0})
    run = prepare_run(config)
    assert run.student.layout.stages == tuple(TAPS.split(","))
    images = torch.stack([run.data.train_plain[i][0] for i in range(4)])
    with torch.no_grad():  # at theta0 (in eval mode) the student's taps are the teacher's
        assert run.regularizer(images, run.student.eval().forward_features(images)[1]).item() == 0
    reports = list(run.reports())
    assert [report["iteration"] for report in reports] == [1, 2]
    assert all(report["feature_loss"] > 0 and 0 <= report["val_acc"] <= 100 for report in reports)
    (tmp_path / "checkpoint").mkdir()
    save_checkpoint(run, tmp_path / "checkpoint")
    model, _ = load_evaluation_model(tmp_path / "checkpoint", torch.device("cpu"))
    assert model.layout == run.student.layout
    assert torch.equal(model(images), run.student.eval()(images))
    assert AdversarialSetSpec.from_trial(config, None, "val").trial_config().taps == TAPS
