"""The Pareto front of clean accuracy (max) against ASR (min)."""
import math

from tuner.pareto import pareto_front

NAN = math.nan


def test_a_point_better_on_both_axes_removes_the_other():
    assert pareto_front([90.0, 80.0], [10.0, 20.0]) == [0]


def test_a_trade_off_keeps_both_by_ascending_asr():
    clean = [95.0, 70.0, 85.0]
    asr = [60.0, 5.0, 20.0]
    assert pareto_front(clean, asr) == [1, 2, 0]


def test_same_clean_lower_asr_wins():
    assert pareto_front([90.0, 90.0], [30.0, 10.0]) == [1]


def test_same_asr_higher_clean_wins():
    assert pareto_front([80.0, 90.0], [10.0, 10.0]) == [1]


def test_exact_duplicates_are_both_kept():
    assert sorted(pareto_front([90.0, 90.0, 70.0], [10.0, 10.0, 50.0])) == [0, 1]


def test_nan_points_are_never_on_the_front_and_dominate_nothing():
    clean = [99.0, 80.0, NAN, 85.0]
    asr = [NAN, 20.0, 1.0, 30.0]
    assert pareto_front(clean, asr) == [1, 3]


def test_order_is_ascending_asr_for_a_long_front():
    asr = [50.0, 10.0, 40.0, 20.0, 30.0]
    clean = [99.0, 70.0, 95.0, 80.0, 90.0]
    front = pareto_front(clean, asr)
    assert front == [1, 3, 4, 2, 0]
    assert [asr[i] for i in front] == sorted(asr)


def test_dominated_points_inside_a_front_are_dropped():
    clean = [70.0, 90.0, 75.0, 60.0]
    asr = [5.0, 50.0, 60.0, 10.0]
    assert pareto_front(clean, asr) == [0, 1]


def test_empty_and_all_nan_inputs_give_an_empty_front():
    assert pareto_front([], []) == []
    assert pareto_front([NAN, 90.0], [10.0, NAN]) == []
