from collections import Counter

import pytest

from trainables.data.subsample import balanced_subsample
from trainables.errors import UserError

LABELS = [0] * 30 + [1] * 9 + [2] * 4 + [3] * 1 + [0] * 3  # uneven classes, one class split in two runs


@pytest.mark.parametrize("fraction", [0.33, 0.5, 0.66])
def test_each_class_keeps_its_rounded_share(fraction: float) -> None:
    kept = balanced_subsample(LABELS, fraction, seed=0)
    assert kept == sorted(set(kept))
    per_class = Counter(LABELS)
    assert Counter(LABELS[index] for index in kept) == {
        label: max(1, round(fraction * count)) for label, count in per_class.items()
    }


def test_fraction_one_keeps_everything() -> None:
    assert balanced_subsample(LABELS, 1.0, seed=3) == list(range(len(LABELS)))


def test_the_seed_decides_the_subset() -> None:
    assert balanced_subsample(LABELS, 0.5, seed=7) == balanced_subsample(LABELS, 0.5, seed=7)
    assert balanced_subsample(LABELS, 0.5, seed=7) != balanced_subsample(LABELS, 0.5, seed=8)


@pytest.mark.parametrize("fraction", [0, 1.5, -1, float("nan")])
def test_fractions_outside_the_unit_interval_are_rejected(fraction: float) -> None:
    with pytest.raises(UserError, match=r"fraction .* \(0, 1\]"):
        balanced_subsample(LABELS, fraction, seed=0)
