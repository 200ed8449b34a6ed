"""Multi-objective asynchronous successive halving (MO-ASHA; Schmucker et al. 2021) as a Ray Tune scheduler.

Ray's ASHA on clean accuracy prunes the robust trials of an accuracy/ASR sweep first: they reach lower clean
accuracy. MO-ASHA keeps ASHA's rungs (grace_period * rf^k up to max_t on `time_attr`) and its asynchronous
decision — a trial is judged once per rung, when it gets there, against the results already recorded there —
but ranks results by non-dominated sorting (NSGA-II's front number), ties broken by crowding distance (larger
is better; each front's boundary points are infinitely far), instead of by one metric.

Cutoff, as in Ray's ASHA: its trial continues iff its metric is at least the (1 - 1/rf) quantile of the m
results recorded before it at the rung, so the first trial at a rung always continues and a second continues
only if it is no worse than the first. With ranks for values there is nothing to interpolate between: a trial
continues iff at most (m - 1) / rf of those m results rank strictly ahead of it (ASHA's rule exactly whenever
its quantile falls on a recorded result).

Like ASHA's, the rungs live in the scheduler object only: Tune pickles it with the Tuner before the first
trial and never saves it again, so a resumed sweep starts with empty rungs (Tune re-adds every trial).
"""
import math
from collections.abc import Sequence

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

Point = tuple[float, ...]  # one result's objectives, each oriented so that larger is better


def dominates(a: Point, b: Point) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def front_numbers(points: Sequence[Point]) -> list[int]:
    """Each point's non-dominated front: 0 for the Pareto front, 1 once that front is removed, and so on (Deb et
    al.'s fast non-dominated sort: one pass of pairwise comparisons, however many fronts)."""
    beats = [[j for j, other in enumerate(points) if dominates(point, other)] for point in points]
    beaten_by = [0] * len(points)
    for beaten in beats:
        for j in beaten:
            beaten_by[j] += 1
    fronts, front, number = [0] * len(points), [i for i, count in enumerate(beaten_by) if count == 0], 0
    while front:
        following = []
        for i in front:
            fronts[i] = number
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        front, number = following, number + 1
    return fronts


def crowding_distances(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point of one front: the sum over objectives of the gap between its
    two neighbours, as a share of the front's range; the extremes of each objective are infinitely far."""
    distances = [0.0] * len(points)
    for objective in range(len(points[0]) if points else 0):
        order = sorted(range(len(points)), key=lambda i: points[i][objective])
        distances[order[0]] = distances[order[-1]] = math.inf
        spread = points[order[-1]][objective] - points[order[0]][objective]
        if spread == 0:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distances[here] += (points[after][objective] - points[before][objective]) / spread
    return distances


def ranking_keys(points: Sequence[Point]) -> list[tuple[int, float]]:
    """(front, -crowding distance) per point: smaller ranks ahead."""
    fronts = front_numbers(points)
    keys = [(0, 0.0)] * len(points)
    for number in set(fronts):
        members = [i for i, front in enumerate(fronts) if front == number]
        for i, distance in zip(members, crowding_distances([points[i] for i in members]), strict=True):
            keys[i] = (number, -distance)
    return keys


def worst_for_missing(points: Sequence[Point]) -> list[Point]:
    """NaN objectives replaced by the worst value present on that objective (0 if none is). A NaN ASR means no
    image was classified correctly, so nothing could be attacked: no evidence of robustness, and ranking it
    best would keep useless trials; as the worst, the trial still competes on its other objectives."""
    if not points:
        return []
    worst = [min((p[k] for p in points if not math.isnan(p[k])), default=0.0) for k in range(len(points[0]))]
    return [tuple(worst[k] if math.isnan(value) else value for k, value in enumerate(p)) for p in points]


def survives(candidate: Point, recorded: Sequence[Point], reduction_factor: float) -> bool:
    """ASHA's cutoff by rank: at most (m - 1) / rf of the m results already at the rung rank ahead of it."""
    if not recorded:
        return True
    keys = ranking_keys(worst_for_missing([candidate, *recorded]))
    ahead = sum(key < keys[0] for key in keys[1:])
    return ahead <= (len(recorded) - 1) / reduction_factor


class MultiObjectiveASHA(FIFOScheduler):
    """Stops a trial at a rung unless it is in the top 1/rf of the results recorded there, ranked by front and
    crowding distance over `metrics` (each maximised or minimised as `modes` says)."""

    def __init__(self, metrics: Sequence[str], modes: Sequence[str], time_attr: str = "training_iteration",
                 max_t: int = 100, grace_period: int = 1, reduction_factor: float = 4):
        if len(metrics) != len(modes) or not metrics or any(mode not in ("max", "min") for mode in modes):
            raise ValueError(f"one mode ('max' or 'min') per metric, got metrics {metrics} and modes {modes}")
        if not 0 < grace_period <= max_t or reduction_factor <= 1:
            raise ValueError("need 0 < grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self._metrics, self._signs = list(metrics), [1.0 if mode == "max" else -1.0 for mode in modes]
        self._time_attr, self._max_t, self._reduction_factor = time_attr, max_t, reduction_factor
        rung_count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)  # as ASHA counts them
        # Highest milestone first, as ASHA keeps them: a result is judged at the highest rung it reached.
        self._rungs: list[tuple[float, dict[str, Point]]] = [
            (grace_period * reduction_factor ** k, {}) for k in reversed(range(rung_count))]
        self._num_stopped = 0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        """Its objectives are its own: a single TuneConfig(metric=..., mode=...) is refused, as ASHA refuses a
        second one."""
        return metric is None and mode is None

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if self._time_attr not in result or any(metric not in result for metric in self._metrics):
            return TrialScheduler.CONTINUE  # nothing to judge it on, as ASHA does
        if result[self._time_attr] >= self._max_t:
            action = TrialScheduler.STOP  # its budget is spent, as with ASHA's stop_last_trials
        else:
            action = self._judge(trial.trial_id, result)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        """A finished trial's last result is recorded at the rung it reached, for those that come later."""
        if self._time_attr in result and all(metric in result for metric in self._metrics):
            self._judge(trial.trial_id, result)

    def _judge(self, trial_id: str, result: dict) -> str:
        point = tuple(sign * float(result[metric]) for sign, metric in zip(self._signs, self._metrics))
        for milestone, recorded in self._rungs:
            if result[self._time_attr] < milestone or trial_id in recorded:
                continue
            keep = survives(point, list(recorded.values()), self._reduction_factor)
            recorded[trial_id] = point
            return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        rungs = " | ".join(f"iter {milestone:g}: {len(recorded)} recorded" for milestone, recorded in self._rungs)
        return f"Using MO-ASHA on {', '.join(self._metrics)}: num_stopped={self._num_stopped}\nRungs: {rungs}"
