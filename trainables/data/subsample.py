"""Seeded, per-class balanced subsampling of a training set (the paper's Table 5: 33% / 66% of each class)."""
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from trainables.errors import UserError


def balanced_subsample(labels: Sequence[int], fraction: float, seed: int) -> list[int]:
    """Sorted indices keeping max(1, round(fraction * n)) randomly chosen items of each class."""
    if not 0 < fraction <= 1:
        raise UserError(f"fraction {fraction} is outside the allowed range (0, 1]")
    if fraction == 1:
        return list(range(len(labels)))
    indices_by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        indices_by_class[label].append(index)
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for label in sorted(indices_by_class):
        indices = indices_by_class[label]
        count = max(1, round(fraction * len(indices)))
        kept += [int(index) for index in rng.choice(indices, size=count, replace=False)]
    return sorted(kept)
