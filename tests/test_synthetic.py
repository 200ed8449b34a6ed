import hashlib
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from trainables.data import synthetic
from trainables.data.synthetic import NOVEL_SHAPES, NOVEL_TEXTURES, NUM_CLASSES, SHAPES, TEXTURES, generate_shapes

CHANCE = 1.0 / NUM_CLASSES


def test_class_layout_constants():
    assert len(SHAPES) == 5
    assert len(TEXTURES) == 4
    assert NUM_CLASSES == len(SHAPES) * len(TEXTURES) == 20


@pytest.mark.parametrize("size", [32, 24])
def test_images_have_expected_shape_dtype_and_range(size: int):
    images, labels = generate_shapes(100, seed=0, size=size)
    assert images.shape == (100, 3, size, size)
    assert images.dtype == torch.float32
    assert labels.shape == (100,)
    assert labels.dtype == torch.int64
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.std() > 0.1


def test_labels_are_balanced_cover_every_class_and_are_shuffled():
    _, labels = generate_shapes(1003, seed=5)
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    assert len(counts) == NUM_CLASSES
    assert counts.min() >= 1
    assert counts.max() - counts.min() <= 1
    assert not torch.equal(labels, torch.arange(1003) % NUM_CLASSES)


def test_same_arguments_give_identical_bytes_and_a_new_seed_differs():
    images_a, labels_a = generate_shapes(64, seed=11)
    images_b, labels_b = generate_shapes(64, seed=11)
    images_c, _ = generate_shapes(64, seed=12)
    assert images_a.numpy().tobytes() == images_b.numpy().tobytes()
    assert torch.equal(labels_a, labels_b)
    assert not torch.equal(images_a, images_c)


def test_rendering_chunk_size_does_not_change_the_output(monkeypatch: pytest.MonkeyPatch):
    images, labels = generate_shapes(50, seed=4)
    monkeypatch.setattr(synthetic, "CHUNK_SIZE", 7)
    rechunked_images, rechunked_labels = generate_shapes(50, seed=4)
    assert torch.equal(images, rechunked_images)
    assert torch.equal(labels, rechunked_labels)


def test_generator_leaves_global_random_state_alone():
    numpy_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state()
    generate_shapes(10, seed=0)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def _mean_abs_differences(images: torch.Tensor) -> tuple[float, float]:
    """(between vertically adjacent pixels, between horizontally adjacent pixels)"""
    vertical = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean().item()
    horizontal = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean().item()
    return vertical, horizontal


@pytest.fixture(scope="module")
def stripe_check_sample() -> tuple[torch.Tensor, torch.Tensor]:
    return generate_shapes(4000, seed=2)


@pytest.mark.parametrize("shape", SHAPES)
def test_horizontal_stripes_change_along_rows_and_vertical_stripes_along_columns(
    shape: str, stripe_check_sample: tuple[torch.Tensor, torch.Tensor]
):
    images, labels = stripe_check_sample
    first_label_of_shape = SHAPES.index(shape) * len(TEXTURES)
    hstripes = images[labels == first_label_of_shape + TEXTURES.index("hstripes")]
    vstripes = images[labels == first_label_of_shape + TEXTURES.index("vstripes")]
    h_vertical, h_horizontal = _mean_abs_differences(hstripes)
    v_vertical, v_horizontal = _mean_abs_differences(vstripes)
    # Observed ratios 1.2 to 1.5: per-pixel noise and shape outlines add to both directions.
    assert h_vertical > 1.1 * h_horizontal
    assert v_horizontal > 1.1 * v_vertical


def _translation_invariant_features(images: torch.Tensor) -> np.ndarray:
    """Log Fourier magnitudes: unchanged by where the shape sits, so a linear model can use them.

    On raw pixels a linear model stays near chance because position and colours are random.
    """
    centred = images - images.mean(dim=(2, 3), keepdim=True)
    magnitudes = torch.fft.rfft2(centred).abs().sum(dim=1)
    return torch.log1p(magnitudes).flatten(1).numpy()


def test_a_linear_model_learns_both_shape_and_texture():
    train_images, train_labels = generate_shapes(3000, seed=0)
    test_images, test_labels = generate_shapes(1000, seed=1)
    scaler = StandardScaler().fit(_translation_invariant_features(train_images))
    model = LogisticRegression(max_iter=500, C=0.01)
    # Multi-threaded BLAS on this small problem is several times slower on a busy machine.
    with threadpool_limits(limits=1):
        model.fit(scaler.transform(_translation_invariant_features(train_images)), train_labels.numpy())
    predicted = model.predict(scaler.transform(_translation_invariant_features(test_images)))
    truth = test_labels.numpy()
    texture_count = len(TEXTURES)
    # Observed: 0.57 overall, 0.59 shape, 0.97 texture (chance 0.05, 0.2, 0.25).
    assert (predicted == truth).mean() > 6 * CHANCE
    assert (predicted // texture_count == truth // texture_count).mean() > 2 / len(SHAPES)
    assert (predicted % texture_count == truth % texture_count).mean() > 2.5 / len(TEXTURES)


def test_the_source_images_are_pinned():
    """The shipped source model was pretrained on exactly these images: a generator change must bump the
    source recipe's version (and ship new weights)."""
    images, labels = generate_shapes(400, seed=1000)
    assert hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()[:16] == "eb4e24f7212a61cd"


def test_target_classes_are_novel_shapes_the_source_never_saw():
    assert not set(NOVEL_SHAPES) & set(SHAPES) and not set(NOVEL_TEXTURES) & set(TEXTURES)
    classes = (("star", "dots"), ("bar", "dstripes"), ("disc", "solid"))
    images, labels = generate_shapes(30, seed=3, classes=classes)
    assert sorted(Counter(labels.tolist()).values()) == [10, 10, 10]
    assert images.shape == (30, 3, 32, 32) and 0.0 <= images.min() and images.max() <= 1.0
