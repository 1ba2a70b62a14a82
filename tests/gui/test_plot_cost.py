"""A live frame of the meta-loss plot must not cost more as the run grows: what the items are handed is
bounded, peaks are kept, the log scale and the CSV export still show every value.  (Behaviour, not timing:
benchmarks/gui_responsiveness.py --plot-cost measures the time.)"""
import numpy as np
import pytest

from workbench.core.stats import ema_continue
from workbench.gui.plots import meta_loss
from workbench.gui.plots import CURVE_BUCKETS, MARKER_BUCKETS, MetaLossPlot, PeakEnvelope

CURVE_MAX = 2 * CURVE_BUCKETS + 1
MARKER_MAX = 2 * MARKER_BUCKETS + 1


class _RecordingNumpy:
    """numpy, but the lengths of the arrays log10 is called on are recorded."""

    def __init__(self):
        self.log10_sizes = []

    def __getattr__(self, name):
        return getattr(np, name)

    def log10(self, a, *args, **kwargs):
        self.log10_sizes.append(np.size(a))
        return np.log10(a, *args, **kwargs)


def _loss(start, stop, rng):
    x = np.arange(start, stop, dtype=np.float64)
    return x, (0.05 + 2.0 / (1.0 + x / 2e4)) * np.exp(0.4 * rng.standard_normal(len(x)))


@pytest.fixture
def plot(qtbot):
    w = MetaLossPlot()
    qtbot.addWidget(w)
    w.resize(900, 450)
    w.show()
    return w


def _record_set_data(monkeypatch, item):
    sizes = []
    original = item.setData

    def set_data(*args, **kwargs):
        sizes.append(len(args[0]) if args else 0)
        return original(*args, **kwargs)

    monkeypatch.setattr(item, "setData", set_data)
    return sizes


def test_a_frame_after_a_million_iterations_hands_the_items_a_bounded_number_of_points(plot, qtbot, monkeypatch):
    rng = np.random.default_rng(1)
    n = 0
    for size in (5, 1000, 3, 250_000, 17, 250_000, 498_975):  # drain-sized and history-sized batches
        plot.add_iterations(*_loss(n + 1, n + 1 + size, rng))
        n += size
    assert n == 1_000_000
    for e in range(0, n, 200):  # an evaluation every 200 iterations: 5000 of them
        plot.add_evaluation(e, 1.0 + e / n, 0.5)
    rec = _RecordingNumpy()
    monkeypatch.setattr(meta_loss, "np", rec)
    raw, smooth = _record_set_data(monkeypatch, plot.raw), _record_set_data(monkeypatch, plot.smooth)
    before = _record_set_data(monkeypatch, plot.before)
    for _ in range(3):
        plot.add_iterations(*_loss(n + 1, n + 31, rng))
        n += 30
        plot.redraw(force_range=True)
        qtbot.wait(1)
    assert len(raw) == len(smooth) == 3 and len(before) == 3
    assert 0 < max(raw + smooth) <= CURVE_MAX
    assert 0 < max(before) <= MARKER_MAX
    assert rec.log10_sizes and max(rec.log10_sizes) <= CURVE_MAX  # never the whole series
    assert len(plot.x.data) == len(plot.y.data) == len(plot.y_smooth.data) == n  # kept for the export


def _reference_buckets(y, width):
    """Each bucket's min and max (finite values), brute force."""
    k = -(-len(y) // width)
    return [(np.nanmin(y[j * width:(j + 1) * width]), np.nanmax(y[j * width:(j + 1) * width])) for j in range(k)]


def test_the_envelope_keeps_every_buckets_peaks_at_their_own_x():
    rng = np.random.default_rng(2)
    n = 123_457
    x = np.arange(n, dtype=np.float64) * 3 + 7
    y = rng.standard_normal(n)
    y[rng.integers(0, n, 40)] = rng.choice([-50.0, 50.0], 40)  # isolated spikes and dips
    y[500:520] = np.nan
    env = PeakEnvelope(64)
    i = 0
    while i < n:  # batches of every size, some spanning many merges
        m = int(rng.choice([1, 2, 7, 100, 3000, 40_000]))
        env.extend(x[i:i + m], y[i:i + m])
        i += m
    assert env.n == n and env.nb <= 64 and env.x_max == x[-1]
    px, py = env.points()
    assert len(px) <= 2 * 64 + 1
    assert np.all(np.diff(px) >= 0)  # in x order: a curve, not a scribble
    np.testing.assert_array_equal(py, y[((px - 7) / 3).astype(int)])  # every point drawn is a real sample
    assert py.min() == np.nanmin(y) and py.max() == np.nanmax(y)
    assert env.bounds() == (np.nanmin(y), np.nanmax(y))
    assert px[-1] == x[-1]  # the curve reaches the newest sample
    # bucket by bucket, the same extremes as a brute-force pass
    got = [(min(py[(px >= x[j * env.width]) & (px <= x[min(n, (j + 1) * env.width) - 1])]),
            max(py[(px >= x[j * env.width]) & (px <= x[min(n, (j + 1) * env.width) - 1])])) for j in range(env.nb)]
    assert got == _reference_buckets(y, env.width)


def test_the_log_envelope_keeps_the_lowest_positive_value():
    y = np.array([-1.0, 0.0, 1e-3, 5.0, -2.0, 0.5, 2.0, 0.0] * 1000)
    y[4321] = 1e-7
    env = PeakEnvelope(16)
    env.extend(np.arange(len(y), dtype=np.float64), y)
    px, py = env.points(log=True)
    assert (py > 0).all() and py.min() == 1e-7 and py.max() == 5.0
    assert env.bounds(log=True) == (1e-7, 5.0)
    assert env.bounds() == (-2.0, 5.0)
    nothing = PeakEnvelope(4)
    nothing.extend([1.0, 2.0], [-1.0, np.nan])
    assert nothing.bounds(log=True) is None and len(nothing.points(log=True)[0]) == 0


def test_log_mode_shows_log10_of_the_samples_and_linear_mode_the_samples(plot):
    rng = np.random.default_rng(3)
    x, y = _loss(1, 60_001, rng)
    y[30_000] = 1e3
    y[40_000] = -1.0  # not drawn on a log scale
    plot.add_iterations(x, y)
    plot.log.setChecked(True)
    plot.redraw(force_range=True)
    cx, cy = plot.raw.getData()
    assert len(cx) <= CURVE_MAX
    np.testing.assert_allclose(cy, np.log10(y[cx.astype(int) - 1]))
    assert cy.max() == pytest.approx(3.0)
    assert cy.min() == pytest.approx(np.log10(y[y > 0].min()))
    (_, _), (y0, y1) = plot.plot.getPlotItem().viewRange()
    assert y0 <= np.log10(y[y > 0].min()) and y1 >= 3.0
    plot.log.setChecked(False)
    cx, cy = plot.raw.getData()
    np.testing.assert_array_equal(cy, y[cx.astype(int) - 1])
    assert cy.min() == -1.0 and cy.max() == 1e3


def test_smoothing_is_the_ema_of_every_iteration_and_follows_the_weight(plot):
    rng = np.random.default_rng(4)
    x, y = _loss(1, 20_001, rng)
    for i in range(0, len(x), 333):
        plot.add_iterations(x[i:i + 333], y[i:i + 333])
    plot.log.setChecked(False)
    for weight in (0.9, 0.5, 0.0):
        plot.ema.setValue(weight)
        expected = ema_continue(y, weight, 0.0, 0)[0]
        np.testing.assert_allclose(plot.y_smooth.data, expected)
        sx, sy = plot.smooth.getData()
        assert len(sx) <= CURVE_MAX
        np.testing.assert_allclose(sy, expected[sx.astype(int) - 1])
        assert sy.min() == pytest.approx(expected.min()) and sy.max() == pytest.approx(expected.max())
    np.testing.assert_array_equal(plot.smooth.getData()[1], plot.raw.getData()[1])  # weight 0: no smoothing


def test_evaluation_markers_are_bounded_and_keep_the_extremes(plot):
    for e in range(3000):
        plot.add_evaluation(200 * e, 1.0 + (e % 7) / 10, 0.5 if e != 1234 else 0.01)
    plot.redraw(force_range=True)
    bx, by = plot.before.getData()
    ax, ay = plot.after.getData()
    assert 0 < len(bx) <= MARKER_MAX and 0 < len(ax) <= MARKER_MAX
    assert by.max() == pytest.approx(np.log10(1.6)) and ay.min() == pytest.approx(-2.0)  # log scale
    assert 200 * 1234 in ax


def test_csv_export_still_has_every_iteration(plot):
    rng = np.random.default_rng(5)
    x, y = _loss(1, 50_001, rng)
    plot.add_iterations(x, y)
    plot.add_evaluation(25_000, 0.3, 0.2)
    plot.redraw(force_range=True)
    assert len(plot.raw.getData()[0]) <= CURVE_MAX
    lines = plot.to_csv().splitlines()
    assert len(lines) == 1 + 50_000
    row = lines[1 + 24_999].split(",")
    assert row[0] == "25000" and float(row[1]) == y[24_999] and row[3:] == ["0.3", "0.2"]
    np.testing.assert_array_equal([float(r.split(",")[1]) for r in lines[1:]], y)


def test_clear_forgets_the_summaries(plot):
    plot.add_iterations(*_loss(1, 5000, np.random.default_rng(6)))
    plot.add_evaluation(100, 1.0, 0.5)
    plot.redraw(force_range=True)
    plot.clear()
    assert len(plot.raw.getData()[0] if plot.raw.getData()[0] is not None else []) == 0
    assert plot.env_raw.n == plot.env_smooth.n == plot.env_before.n == 0
    plot.add_iterations(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    plot.redraw(force_range=True)
    np.testing.assert_array_equal(plot.raw.getData()[0], [1.0, 2.0])
