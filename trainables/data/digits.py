"""The embedded target task: scikit-learn's bundled handwritten digits, upsampled to RGB 32x32.

1,797 real 8x8 scans ship inside scikit-learn, so the default workload needs no download.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DIGITS_IMAGE_SIZE = 32
DIGITS_TEST_SHARE = 0.3
# Fixed, independent of the trial seed, so every trial and every run is scored on the same test images.
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class TensorSplit:
    train_images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor


def digits_split() -> TensorSplit:
    # scikit-learn is imported here, not at module level: it adds a second to every CLI start-up.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)
    images = F.interpolate(pixels, size=DIGITS_IMAGE_SIZE, mode="bilinear", align_corners=False)
    images = images.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=DIGITS_TEST_SHARE,
        stratify=labels.numpy(),
        random_state=DIGITS_SPLIT_SEED,
    )
    return TensorSplit(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
