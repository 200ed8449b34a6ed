"""The Pareto front of clean accuracy (maximised) against attack success rate (minimised)."""
import math
from collections.abc import Sequence


def pareto_front(clean_acc: Sequence[float], asr: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, by ascending ASR. A point is dominated when another is at least
    as good on both axes and better on one. Exact duplicates are all kept; NaN points are never on it."""
    valid = [i for i, (c, a) in enumerate(zip(clean_acc, asr, strict=True)) if not (math.isnan(c) or math.isnan(a))]
    front = []
    for i in valid:
        dominated = any(
            clean_acc[j] >= clean_acc[i] and asr[j] <= asr[i] and (clean_acc[j] > clean_acc[i] or asr[j] < asr[i])
            for j in valid
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (asr[i], -clean_acc[i]))
