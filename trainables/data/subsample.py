"""Seeded, per-class splits of a training set: the validation split carved from it, and the paper's Table 5
subsampling (33% / 66% of each class)."""
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from trainables.errors import UserError


def _indices_by_class(labels: Sequence[int]) -> dict[int, list[int]]:
    indices: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        indices[label].append(index)
    return dict(sorted(indices.items()))


def balanced_subsample(labels: Sequence[int], fraction: float, seed: int) -> list[int]:
    """Sorted indices keeping max(1, round(fraction * n)) randomly chosen items of each class."""
    if not 0 < fraction <= 1:
        raise UserError(f"fraction {fraction} is outside the allowed range (0, 1]")
    if fraction == 1:
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for indices in _indices_by_class(labels).values():
        count = max(1, round(fraction * len(indices)))
        kept += [int(index) for index in rng.choice(indices, size=count, replace=False)]
    return sorted(kept)


def stratified_split(labels: Sequence[int], held_out_share: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out) sorted indices. Every class with at least two items gives max(1, round(share * n)) of
    them, never all, to the held-out part, so both parts hold every such class."""
    if not 0 < held_out_share < 1:
        raise UserError(f"validation share {held_out_share} is outside the allowed range (0, 1)")
    rng = np.random.default_rng(seed)
    held_out: list[int] = []
    for indices in _indices_by_class(labels).values():
        if len(indices) < 2:
            continue
        count = min(len(indices) - 1, max(1, round(held_out_share * len(indices))))
        held_out += [int(index) for index in rng.choice(indices, size=count, replace=False)]
    held = set(held_out)
    return [i for i in range(len(labels)) if i not in held], sorted(held_out)
