"""Datasets are specs: a new one is one entry of `trainables.data.specs.DATASETS` and its loader, and everything
else (flags, config resolution, the trial, the final stage's attack preset, the report's chance level) reads it."""
import subprocess
import sys

import pytest
import torch

from tests.conftest import TINY_SOURCE
from trainables.config import resolve_config
from trainables.data.registry import TransferData, build_transfer_data, dataset_summary, split_indices
from trainables.data.specs import DATASETS, EMBEDDED, IMAGE_FILES, DataRequest, DatasetSpec, data_root_hint
from trainables.data.tensors import TensorImageDataset
from trainables.errors import UserError
from trainables.trial import prepare_run
from tuner.attack_stage import default_attack_preset
from tuner.chance_level import chance_level
from tuner.sweep import command_parser

STRIPES = 3


def striped_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c: a bright horizontal band at rows 8c..8c+8 of a 32 x 32 RGB image, over noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % STRIPES
    images = torch.rand(count, 3, 32, 32, generator=generator) * 0.3
    for index, label in enumerate(labels.tolist()):
        images[index, :, 8 * label:8 * label + 8] += 0.7
    return images.clamp(0, 1), labels


def stripes_loader(request: DataRequest) -> TransferData:
    images, labels = striped_images(60, seed=1)
    test_images, test_labels = striped_images(30, seed=2)
    kept, val = split_indices(labels.tolist(), request.fraction, request.seed, request.val_fraction)
    return TransferData(request.name, STRIPES, TensorImageDataset(images[kept], labels[kept]),
                        TensorImageDataset(images[val], labels[val]) if val else None,
                        TensorImageDataset(test_images, test_labels), TensorImageDataset(images[kept], labels[kept]))


@pytest.fixture
def stripes(monkeypatch) -> DatasetSpec:
    spec = DatasetSpec("stripes", EMBEDDED, stripes_loader, STRIPES, attack_preset="digits", profile="embedded")
    monkeypatch.setitem(DATASETS, spec.name, spec)
    return spec


def test_a_dataset_added_as_one_spec_runs_a_trial_end_to_end(stripes):
    config = resolve_config({"method": "finetune", "dataset": "stripes", **TINY_SOURCE, "batch_size": 8,
                             "iters": 6, "eval_every": 3, "val_fraction": 0.2})
    assert config.lr == resolve_config({"method": "finetune", "dataset": "digits"}).lr  # the embedded profile
    run = prepare_run(config)
    reports = list(run.reports())
    assert [report["iteration"] for report in reports] == [3, 6]
    assert run.data.num_classes == STRIPES and len(run.data.val) == 12 and len(run.data.test) == 30
    assert reports[-1]["val_acc"] > 100 / STRIPES  # it learns the stripes
    assert default_attack_preset("stripes") == "digits"
    assert chance_level([{"dataset": "stripes"}]).accuracy == pytest.approx(100 / STRIPES)
    assert dataset_summary("stripes", val_fraction=0.2) == {"dataset": "stripes", "classes": 3, "train": 48,
                                                            "val": 12, "test": 30}
    flags = command_parser().parse_args(["--dataset", "stripes"])
    assert flags.dataset == "stripes"


def test_an_image_files_spec_reads_its_layout_through_its_loader(monkeypatch, tmp_path):
    from tests.layouts import make_imagefolder

    layout = make_imagefolder(tmp_path / "mine")
    folder = DATASETS["imagefolder"]
    monkeypatch.setitem(DATASETS, "my_photos", DatasetSpec(
        "my_photos", IMAGE_FILES, folder.loader, None, "paper", "paper", folder.layout, folder.data_root))
    data = build_transfer_data("my_photos", layout.root, val_fraction=0.25)
    assert data.name == "my_photos" and data.num_classes == 3 and len(data.test) == layout.test_count
    with pytest.raises(UserError, match=r"needs data_root \(--data-root\): the folder holding train/ and test/"):
        resolve_config({"method": "finetune", "dataset": "my_photos"})
    assert chance_level([{"dataset": "my_photos"}]) is None  # the data decides its class count


def test_every_shipped_spec_is_complete_and_its_loader_exists():
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.kind in (EMBEDDED, IMAGE_FILES) and spec.profile in ("embedded", "paper")
        assert callable(spec.load_function())
        assert default_attack_preset(name) == spec.attack_preset
        if spec.needs_data_root:
            assert spec.layout and spec.layout in data_root_hint(name)


def test_the_dataset_table_imports_without_torch():
    probe = "import sys, trainables.data.specs; print([m for m in ('torch', 'torchvision') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
