"""JPEG decoding and augmentation on the device (`gpu_decode`): the same images as the CPU path, the file that
breaks a batch named. The speed-up is a GPU figure (benchmarks/README.md)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainables.train as train_module
from tests.layouts import make_indoor
from trainables.config import resolve_config
from trainables.data.device_decode import collate_encoded, decode_batch
from trainables.data.registry import build_transfer_data
from trainables.errors import UserError
from trainables.trial import prepare_run

# Here on the CPU, where CI runs (torchvision decodes on either); also on CUDA where a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def photo_layout(root: Path) -> Path:
    """The indoor layout with its tiny solid files replaced by 60x80 photo-like images (smooth colour fields plus a
    little noise; on pure noise nvJPEG's chroma upsampling and libjpeg's differ by ~10 levels), one stored as PNG."""
    make_indoor(root)
    generator = np.random.default_rng(0)
    for index, path in enumerate(sorted((root / "Images").rglob("*.jpg"))):
        coarse = Image.fromarray(generator.integers(0, 256, (5, 6, 3), dtype=np.uint8)).resize((80, 60), Image.BILINEAR)
        pixels = np.clip(np.asarray(coarse, dtype=np.int16) + generator.integers(-8, 9, (60, 80, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path, "PNG" if index == 0 else "JPEG", quality=90)
    return root


@pytest.mark.parametrize("device", DEVICES)
def test_device_decoding_gives_the_cpu_path_images(tmp_path, device):
    data = build_transfer_data("indoor", str(photo_layout(tmp_path)), val_fraction=0)
    indices = list(range(len(data.train)))
    torch.manual_seed(0)
    on_cpu = torch.stack([data.train[i][0] for i in indices])
    encoded = data.train.encoded()
    files, labels, batch_indices = collate_encoded([encoded[i] for i in indices])
    torch.manual_seed(0)  # the same crops and flips, drawn in the same order
    decoded = decode_batch(files, batch_indices, encoded, torch.device(device)).cpu()
    assert decoded.shape == on_cpu.shape == (len(indices), 3, 224, 224) and decoded.dtype == torch.float32
    assert labels.tolist() == [data.train[i][1] for i in indices]
    # The same crops and flips. On the CPU both paths decode with libjpeg and resample alike; nvJPEG rounds its
    # colour conversion and chroma upsampling its own way (a few levels).
    assert (decoded - on_cpu).abs().mean() < (1e-3 if device == "cpu" else 0.02)


@pytest.mark.parametrize("device", DEVICES)
def test_a_training_run_decoding_on_the_device_matches_the_cpu_path(tmp_path, monkeypatch, device):
    config = resolve_config({"method": "retrain", "dataset": "indoor", "data_root": str(photo_layout(tmp_path)),
                             "arch": "resnet18_w8", "batch_size": 4, "iters": 2, "eval_every": 2, "num_workers": 0,
                             "val_fraction": 0, "amp": False})
    losses = {}
    for on_device in (False, True):
        monkeypatch.setattr(train_module, "decodes_on_device", lambda *args, flag=on_device: flag)
        losses[on_device] = [report["train_loss"] for report in prepare_run(config, device).reports()]
    assert losses[True] == pytest.approx(losses[False], abs=0.02)


@pytest.mark.parametrize("device", DEVICES)
def test_a_corrupt_jpeg_in_a_batch_is_named(tmp_path, device):
    data = build_transfer_data("indoor", str(photo_layout(tmp_path)), val_fraction=0)
    encoded = data.train.encoded()
    broken = Path(encoded.items[1][0])
    broken.write_bytes(broken.read_bytes()[:40])  # a JPEG header and nothing after it
    files, _, indices = collate_encoded([encoded[i] for i in range(len(encoded))])
    with pytest.raises(UserError, match=f"cannot read image {broken}"):
        decode_batch(files, indices, encoded, torch.device(device))


def test_loader_workers_hand_over_encoded_batches(tmp_path, monkeypatch):
    """Workers pass each batch's files as one tensor: one shared-memory descriptor per file ran out of them."""
    config = resolve_config({"method": "retrain", "dataset": "indoor", "data_root": str(photo_layout(tmp_path)),
                             "arch": "resnet18_w8", "batch_size": 4, "iters": 6, "num_workers": 2, "val_fraction": 0})
    monkeypatch.setattr(train_module, "decodes_on_device", lambda *args: True)
    batches = prepare_run(config)._training_batches()
    for _ in range(6):
        images, labels = next(batches)
        assert images.shape == (4, 3, 224, 224) and labels.shape == (4,)
