"""Plot arithmetic without Qt (workbench.core.plotting): tick choice, label spreading, view ranges, step names."""
import math

import numpy as np
import pytest

from workbench.core.plotting import (UNEVEN, choose_ticks, format_tick, spread_labels, step_name, step_names,
                                     view_range)

LINE = 11.0  # a label's height on a vertical axis (px)


def width(label: str) -> float:
    return 7.0 * len(label)  # a label's width on a horizontal axis (px): 7 px a character


def assert_readable(ticks, lo, hi, length, extent, gap):
    """Distinct labels inside the axis, none overlapping its neighbour."""
    assert len(ticks.major) == len(ticks.labels) and len(set(ticks.labels)) == len(ticks.labels)
    px = [(p - lo) / (hi - lo) * length for p in ticks.major]
    sizes = [extent(t) for t in ticks.labels]
    assert px == sorted(px)
    for x, e in zip(px, sizes):
        assert e / 2 <= x + 0.5 and x + e / 2 <= length + 0.5, "a label runs past an end of the axis"
    for i in range(len(px) - 1):
        assert px[i + 1] - px[i] >= (sizes[i] + sizes[i + 1]) / 2 + gap, ticks.labels


@pytest.mark.parametrize("lo_value, hi_value", [(0.1, 10.0), (0.01, 10.0), (0.5, 1.5), (0.55, 0.62), (0.9, 1.1),
                                                (1e-6, 1e2), (0.3, 0.9), (2.2, 3.9)])
@pytest.mark.parametrize("length", [120.0, 300.0, 700.0])
def test_a_log_axis_gets_a_few_distinct_labels_that_do_not_pile_up(lo_value, hi_value, length):
    lo, hi = math.log10(lo_value), math.log10(hi_value)
    t = choose_ticks(lo, hi, length, lambda s: LINE, 6.0, log=True, every_px=70)
    assert 2 <= len(t.major) <= max(3, length / (LINE + 6))
    assert_readable(t, lo, hi, length, lambda s: LINE, 6.0)
    values = [float(s) for s in t.labels]
    np.testing.assert_allclose(np.log10(values), t.major, atol=1e-9)  # each label says its tick's value
    gaps = np.diff(t.major)
    assert gaps.max() <= UNEVEN * gaps.min() + 1e-9  # no 0.6 0.7 0.8 0.9 squeezed under 1


def test_the_0_6_to_0_9_pile_of_a_narrow_log_range_is_gone():
    lo, hi = math.log10(0.55), math.log10(2.3)  # the range the finding was seen on: labels 0.6 .. 0.9 under 1
    t = choose_ticks(lo, hi, 250, lambda s: LINE, 6.0, log=True, every_px=70)
    assert not {"0.7", "0.8", "0.9"} <= set(t.labels)
    assert 3 <= len(t.labels) <= 5


@pytest.mark.parametrize("lo, hi, length", [(0, 3, 1400), (-0.12, 3.12, 500), (-0.5, 0.5, 300), (0, 1000, 900),
                                            (-0.5, 9.5, 160), (1, 1_000_000, 1200), (0.2, 0.8, 400)])
def test_an_integer_axis_shows_only_whole_numbers(lo, hi, length):
    t = choose_ticks(lo, hi, length, width, 10.0, integer=True)
    assert all(float(p).is_integer() for p in t.major + t.minor)
    assert all(float(s) == int(float(s)) for s in t.labels)
    assert_readable(t, lo, hi, length, width, 10.0)
    if (lo, hi) == (-0.12, 3.12):
        assert t.labels == ["0", "1", "2", "3"]  # a 3-iteration run: every iteration, no 0.5
    if (lo, hi) == (0.2, 0.8):
        assert t.major == []  # no whole number in the range: no tick at all, not 0.5


def test_a_linear_axis_picks_round_steps_and_formats_them_alike():
    t = choose_ticks(-2.0, 1.0, 400, lambda s: LINE, 6.0, every_px=70)
    assert t.labels == ["-1.5", "-1.0", "-0.5", "0", "0.5"]  # -2 and 1 would run past the ends
    t = choose_ticks(0.5, 0.66, 900, width, 10.0)
    assert_readable(t, 0.5, 0.66, 900, width, 10.0)
    assert len({len(s) for s in t.labels}) == 1  # 0.50 0.55 0.60 ..., not 0.5 0.55 0.6


def test_nothing_sensible_gives_no_ticks():
    assert choose_ticks(1.0, 1.0, 300, width, 10).major == []
    assert choose_ticks(0.0, float("nan"), 300, width, 10).major == []
    assert choose_ticks(0.0, 1.0, 0, width, 10).major == []


def test_format_tick():
    assert format_tick(-0.0001, 1) == "0"  # never "-0.0"
    assert format_tick(2e-5, 5) == "2e-5" and format_tick(1e6, 0) == "1e6"
    assert format_tick(0.25, 2) == "0.25" and format_tick(3.0, 0) == "3"


def test_spread_labels_never_overlap_and_move_as_little_as_they_must():
    assert spread_labels([50.0, 200.0], 14, 0, 300) == [50.0, 200.0]  # apart already: unmoved
    a, b = spread_labels([100.0, 104.0], 14, 0, 300)  # UCB1 and Thompson sampling, 4 px apart
    assert b - a == pytest.approx(14) and (a + b) / 2 == pytest.approx(102)  # centred on their wishes
    wanted = [100.0, 105.0, 300.0, 98.0, 2.0, 299.0]
    got = spread_labels(wanted, 14, 0, 310)
    order = np.argsort(got)
    assert np.all(np.diff(np.asarray(got)[order]) >= 14 - 1e-9)
    assert min(got) >= 7 and max(got) <= 303  # within the bounds
    assert np.argsort(wanted, kind="stable").tolist() == order.tolist()  # the order of the lines is kept
    assert spread_labels([], 14, 0, 100) == []


def test_view_range():
    assert view_range(np.array([0.0, 1.0, 2.0]), [np.array([1.0, np.nan, 3.0])], False) == ((0.0, 2.0), (1.0, 3.0))
    (x0, x1), (y0, y1) = view_range(np.array([5.0]), [np.array([-1.0, 10.0, 100.0])], True)
    assert (x0, x1) == (4.5, 5.5) and (y0, y1) == (1.0, 2.0)  # a single step widened; log ignores -1
    assert view_range(np.array([]), [np.array([1.0])], False) is None
    assert view_range(np.array([1.0]), [np.array([-1.0])], True) is None


def test_step_names_use_the_algorithms_words():
    assert step_names([0, 1, 3]) == ["before adaptation", "after 1 step", "after 3 steps"]
    pearl = ["no context (prior)", "after 1 episode of context", "after 2 episodes of context"]
    assert step_names([0, 1, 2], pearl) == pearl
    assert step_names([0, 1], ["only one name"]) == ["before adaptation", "after 1 step"]  # not one per step
    assert step_name(0) == "before adaptation"
