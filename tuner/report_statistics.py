"""The report's statistics: mean ± std over seeds, a confidence interval for a rate from its counts, and
correlations (Pearson and rank-based Spearman)."""
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest, spearmanr

CONFIDENCE = 0.95


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation over a configuration's seeds (std NaN for one seed)."""

    mean: float
    std: float
    n: int


def statistic(values: Iterable[Any]) -> Statistic:
    present = [float(v) for v in values if not is_missing(v)]
    if not present:
        return Statistic(math.nan, math.nan, 0)
    return Statistic(statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else math.nan,
                     len(present))


@dataclass(frozen=True)
class RateInterval:
    """A CONFIDENCE-level Wilson score interval of successes / trials, in percent."""

    low: float
    high: float
    successes: int
    trials: int


def wilson_interval(successes: int, trials: int) -> RateInterval | None:
    """Wilson rather than the normal approximation: it stays inside [0, 100] % and keeps its coverage for rates
    near 0, where robust methods' ASRs lie. None without trials (an undefined rate)."""
    if trials <= 0:
        return None
    interval = binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return RateInterval(100.0 * interval.low, 100.0 * interval.high, successes, trials)


def pooled_interval(pairs: Iterable[tuple[Any, Any]]) -> RateInterval | None:
    """The interval of the summed (successes, trials) pairs, e.g. over a configuration's seeds; pairs with a
    missing count are left out, and None when nothing is left (rows written before the counts were kept)."""
    present = [(int(s), int(t)) for s, t in pairs if not (is_missing(s) or is_missing(t))]
    if not present:
        return None
    return wilson_interval(sum(s for s, _ in present), sum(t for _, t in present))


@dataclass(frozen=True)
class Correlation:
    pearson_r: float | None  # None below 3 pairs or with a constant side
    spearman_rho: float | None
    n: int


def correlation(xs: Iterable[Any], ys: Iterable[Any]) -> Correlation:
    """Pearson r and Spearman's rank correlation over the pairs where both values are present."""
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if not (is_missing(x) or is_missing(y))]
    first, second = [x for x, _ in pairs], [y for _, y in pairs]
    if len(pairs) < 3 or len(set(first)) < 2 or len(set(second)) < 2:
        return Correlation(None, None, len(pairs))
    return Correlation(statistics.correlation(first, second), float(spearmanr(first, second).statistic),
                       len(pairs))
