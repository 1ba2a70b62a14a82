"""The live views: meta-loss, adaptation curves, rollouts.  They only draw what the trainer emitted.

Items are created once and updated with ``setData``; view ranges are set by hand at most a few times a
second (auto-ranging on every update is most of the cost of a live plot).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QStackedWidget,
                               QVBoxLayout, QWidget)

from workbench.core.payloads import (BanditArms, Frames, RegressionCurves, RenderPayload, StateVisitation,
                                     Trajectories2D)
from workbench.core.stats import ema_continue

from .classification_view import ClassificationRenderer

PERCENT = 100.0  # accuracy (a fraction) is shown in %
pg.setConfigOptions(antialias=False, imageAxisOrder="row-major", background="#1e1f24", foreground="#d0d0d0")

PALETTE = ["#4e9af1", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7"]
RANGE_EVERY = 0.5  # seconds between view-range updates
CURVE_BUCKETS = 1024  # a live curve draws at most 2 * CURVE_BUCKETS + 1 points, however long the run
MARKER_BUCKETS = 256  # the held-out markers: at most 2 * MARKER_BUCKETS + 1 evaluations drawn


class GrowingSeries:
    """An append-only float64 series with amortised O(1) appends and no copies for reading."""

    def __init__(self, capacity: int = 4096):
        self._a = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self.n + len(values)
        if need > len(self._a):
            grown = np.empty(max(need, 2 * len(self._a)), dtype=np.float64)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n: need] = values
        self.n = need

    @property
    def data(self) -> np.ndarray:
        return self._a[: self.n]

    def clear(self) -> None:
        self.n = 0


def cache_static_parts(plot: pg.PlotItem) -> None:
    """Blit axes, grid and legend from pixmap caches: redrawn only when the view range changes.
    (Replaying the grid's picture was two thirds of the cost of a live frame.)"""
    from PySide6.QtWidgets import QGraphicsItem

    for axis in plot.axes.values():
        axis["item"].setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    if plot.legend is not None:
        plot.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


# rows of PeakEnvelope._b: each bucket's lowest, highest and lowest positive finite sample (x and y)
_LOX, _LOY, _HIX, _HIY, _POSX, _POSY = range(6)
_EMPTY = np.array([np.nan, np.inf, np.nan, -np.inf, np.nan, np.inf])  # a bucket without finite samples


def _peak_buckets(x: np.ndarray, y: np.ndarray, width: int) -> np.ndarray:
    """(6, ceil(len / width)) buckets of ``width`` consecutive samples (the last one may hold fewer)."""
    m = len(y)
    k = -(-m // width)
    finite = np.isfinite(y)
    rows = np.empty((3, k * width))
    rows[:, m:] = _EMPTY[[_LOY, _HIY, _POSY], None]
    rows[0, :m] = np.where(finite, y, np.inf)
    rows[1, :m] = np.where(finite, y, -np.inf)
    with np.errstate(invalid="ignore"):
        rows[2, :m] = np.where(finite & (y > 0), y, np.inf)
    xs = np.full(k * width, np.nan)
    xs[:m] = x
    rows, xs = rows.reshape(3, k, width), xs.reshape(k, width)
    at = (rows[0].argmin(1), rows[1].argmax(1), rows[2].argmin(1))
    r = np.arange(k)
    out = np.empty((6, k))
    for j, i in enumerate(at):
        out[2 * j] = xs[r, i]
        out[2 * j + 1] = rows[j, r, i]
    return out


def _merge_buckets(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Buckets a[:, i] and b[:, i] as one (b's samples follow a's; a wins ties: the first extreme)."""
    out = a.copy()
    for x, y, take in ((_LOX, _LOY, b[_LOY] < a[_LOY]), (_HIX, _HIY, b[_HIY] > a[_HIY]),
                       (_POSX, _POSY, b[_POSY] < a[_POSY])):
        out[x] = np.where(take, b[x], a[x])
        out[y] = np.where(take, b[y], a[y])
    return out


class PeakEnvelope:
    """A bounded min / max ('peak') summary of an append-only series, kept up to date as samples arrive.

    At most ``buckets`` buckets of ``width`` consecutive samples each; each keeps its lowest, highest and
    lowest positive finite sample (the last for a log scale, where the others are not drawn).  When the
    buckets are full, neighbours are merged pairwise and ``width`` doubles: a new sample costs amortised
    O(1), and what a frame draws (:meth:`points`) and its range (:meth:`bounds`) cost O(buckets) whatever the
    run's length.  Every point drawn is a real sample at its own x; each bucket's extremes are never lost."""

    def __init__(self, buckets: int = 1024):
        if buckets < 2 or buckets % 2:
            raise ValueError("buckets must be an even number >= 2")
        self.capacity = buckets
        self._b = np.empty((6, buckets))
        self.clear()

    def clear(self) -> None:
        self.width = 1  # samples per bucket
        self.nb = 0  # buckets in use; all but the last hold ``width`` samples
        self.last_count = 0  # samples in the last bucket
        self.n = 0
        self.x_max = -np.inf
        self.last = (np.nan, np.nan)  # the newest sample: the curve ends there

    def extend(self, x, y) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        m = len(y)
        if not m:
            return
        i = 0
        while i < m:
            if self.nb and self.last_count < self.width:  # top up the last bucket
                t = min(self.width - self.last_count, m - i)
                last = self._b[:, self.nb - 1: self.nb]
                self._b[:, self.nb - 1] = _merge_buckets(last, _peak_buckets(x[i: i + t], y[i: i + t], t))[:, 0]
                self.last_count += t
                i += t
                continue
            if self.nb == self.capacity:  # all full: merge neighbours, twice as wide
                half = self.capacity // 2
                self._b[:, :half] = _merge_buckets(self._b[:, 0::2], self._b[:, 1::2])
                self.nb, self.width = half, 2 * self.width
                self.last_count = self.width
            t = min((self.capacity - self.nb) * self.width, m - i)
            new = _peak_buckets(x[i: i + t], y[i: i + t], self.width)
            k = new.shape[1]
            self._b[:, self.nb: self.nb + k] = new
            self.nb += k
            self.last_count = t - (k - 1) * self.width
            i += t
        self.n += m
        finite_x = x[np.isfinite(x)]
        if len(finite_x):
            self.x_max = max(self.x_max, float(finite_x.max()))
        self.last = (float(x[-1]), float(y[-1]))

    def points(self, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """x, y (in the series' units) of each bucket's extremes in x order, then the newest sample: at most
        2 * buckets + 1 points.  ``log``: the lowest positive instead of the lowest (y > 0 only)."""
        b = self._b[:, : self.nb]
        ax, ay = (b[_POSX], b[_POSY]) if log else (b[_LOX], b[_LOY])
        ok = np.isfinite(ay)  # a bucket with a (positive) finite sample has a highest one, finite (positive)
        if self.width == 1:  # one sample per bucket: it is both extremes
            xs, ys = ax[ok], ay[ok]
        else:
            ax, ay, bx, by = ax[ok], ay[ok], b[_HIX][ok], b[_HIY][ok]
            first = ax <= bx
            xs, ys = np.empty((len(ax), 2)), np.empty((len(ax), 2))
            xs[:, 0], xs[:, 1] = np.where(first, ax, bx), np.where(first, bx, ax)
            ys[:, 0], ys[:, 1] = np.where(first, ay, by), np.where(first, by, ay)
            xs, ys = xs.ravel(), ys.ravel()
        lx, ly = self.last
        if len(xs) and lx > xs[-1] and np.isfinite(ly) and (ly > 0 or not log):
            xs, ys = np.append(xs, lx), np.append(ys, ly)
        return xs, ys

    def bounds(self, log: bool = False) -> tuple[float, float] | None:
        """The lowest (lowest positive when ``log``) and highest finite y, or None when there is none."""
        b = self._b[:, : self.nb]
        if not self.nb:
            return None
        lo, hi = float((b[_POSY] if log else b[_LOY]).min()), float(b[_HIY].max())
        return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


def _set_range(plot: pg.PlotItem, x: np.ndarray, ys: list[np.ndarray], log_y: bool) -> None:
    ys = [y[np.isfinite(y)] for y in ys if len(y)]
    ys = [y[y > 0] if log_y else y for y in ys]
    ys = [y for y in ys if len(y)]
    if not len(x) or not ys:
        return
    lo = min(float(y.min()) for y in ys)
    hi = max(float(y.max()) for y in ys)
    if log_y:
        lo, hi = np.log10(lo), np.log10(hi)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = float(np.nanmin(x)), float(np.nanmax(x))
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 0.5, x1 + 0.5
    plot.setRange(xRange=(x0, x1), yRange=(lo, hi), padding=0.04)


def make_plot(name: str, xlabel: str, ylabel: str) -> pg.PlotWidget:
    """A PlotWidget with its objectName, axis labels, a light grid and a legend."""
    widget = pg.PlotWidget()
    widget.setObjectName(name)
    p = widget.getPlotItem()
    p.setLabel("bottom", xlabel)
    p.setLabel("left", ylabel)
    p.getAxis("left").enableAutoSIPrefix(False)  # "return", not "return (x0.001)"
    p.showGrid(x=True, y=True, alpha=0.2)
    p.addLegend(offset=(-10, 10))
    return widget


class MetaLossPlot(QWidget):
    """Outer training loss per iteration (raw and EMA-smoothed) and held-out loss before / after adaptation.

    Every emitted value is kept (``x``, ``y``, ``y_smooth``, ``ex``, ``eb``, ``ea``: for :meth:`to_csv` and a
    change of smoothing), but a frame only reads their :class:`PeakEnvelope` summaries, updated as values
    arrive: what a frame costs does not grow with the run's length."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot("metaLossPlot", "meta-iteration", "loss")
        p = self.plot.getPlotItem()
        p.enableAutoRange(False)
        # bare curve items: the two live curves are redrawn ~30 times a second
        self.raw = pg.PlotCurveItem(pen=pg.mkPen((120, 150, 200, 90), width=1), skipFiniteCheck=True)
        # cosmetic 1-px pens: wide pens cost the raster engine a third of a frame
        self.smooth = pg.PlotCurveItem(pen=pg.mkPen(PALETTE[0], width=1), skipFiniteCheck=True)
        for item, name in ((self.raw, "training"), (self.smooth, "training (EMA)")):
            p.addItem(item)
            p.legend.addItem(item, name)
        self.before = p.plot(name="held-out, before adaptation", pen=pg.mkPen(PALETTE[3], width=1.5),
                             symbol="o", symbolSize=6, symbolBrush=PALETTE[3], symbolPen=None)
        self.after = p.plot(name="held-out, after adaptation", pen=pg.mkPen(PALETTE[2], width=1.5),
                            symbol="s", symbolSize=6, symbolBrush=PALETTE[2], symbolPen=None)
        cache_static_parts(p)
        self.ema = QDoubleSpinBox()
        self.ema.setObjectName("emaSpin")
        self.ema.setRange(0.0, 0.999)
        self.ema.setDecimals(3)
        self.ema.setSingleStep(0.05)
        self.ema.setValue(0.9)
        self.ema.setToolTip("EMA smoothing weight (TensorBoard's debiased formula); 0 = none")
        self.log = QCheckBox("log scale")
        self.log.setObjectName("logScaleCheck")
        self.log.setChecked(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("smoothing"))
        bar.addWidget(self.ema)
        bar.addWidget(self.log)
        bar.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.plot)
        self.x, self.y, self.y_smooth = GrowingSeries(), GrowingSeries(), GrowingSeries()
        self.ex, self.eb, self.ea = GrowingSeries(64), GrowingSeries(64), GrowingSeries(64)
        self.env_raw, self.env_smooth = PeakEnvelope(CURVE_BUCKETS), PeakEnvelope(CURVE_BUCKETS)
        self.env_before, self.env_after = PeakEnvelope(MARKER_BUCKETS), PeakEnvelope(MARKER_BUCKETS)
        self._ema_state = (0.0, 0)
        self._last_range = 0.0
        self.heldout_error = False  # see set_heldout
        self.x_extent: int | None = None  # the run's total iterations, when known
        self._dirty = False
        self._evals_dirty = False
        self.ema.valueChanged.connect(self._resmooth)
        self.log.toggled.connect(self._set_log)
        p.setLogMode(y=True)
        p.setRange(xRange=(0, 1000), yRange=(-1, 1), padding=0)  # until data arrives

    def set_metric(self, name: str) -> None:
        """'loss' (log scale) or 'return' (linear: returns are often negative)."""
        p = self.plot.getPlotItem()
        p.setLabel("left", name)
        self.log.setChecked(name == "loss")
        self._dirty = True

    def clear(self) -> None:
        for s in (self.x, self.y, self.y_smooth, self.ex, self.eb, self.ea, self.env_raw, self.env_smooth,
                  self.env_before, self.env_after):
            s.clear()
        self._ema_state = (0.0, 0)
        self._dirty = self._evals_dirty = True
        self.redraw(force_range=True)

    def add_iterations(self, iterations: np.ndarray, losses: np.ndarray) -> None:
        if not len(iterations):
            return
        self.x.extend(iterations)
        self.y.extend(losses)
        smoothed, last, n = ema_continue(losses, self.ema.value(), *self._ema_state)
        self._ema_state = (last, n)
        self.y_smooth.extend(smoothed)
        self.env_raw.extend(iterations, losses)
        self.env_smooth.extend(iterations, smoothed)
        self._dirty = True

    def set_heldout(self, metric: str) -> None:
        """What the held-out markers show: the evaluation's metric, or for accuracy the error rate
        1 − accuracy, which goes down with the training loss on the same (log) axis."""
        self.heldout_error = metric == "accuracy"
        what = "held-out error (1 − accuracy)" if self.heldout_error else "held-out"
        legend = self.plot.getPlotItem().legend
        for item, when in ((self.before, "before"), (self.after, "after")):
            label = legend.getLabel(item)
            if label is not None:
                label.setText(f"{what}, {when} adaptation")

    def add_evaluation(self, iteration: int, before: float, after: float) -> None:
        if self.heldout_error:
            before, after = 1.0 - before, 1.0 - after
        self.ex.extend([iteration])
        self.eb.extend([before])
        self.ea.extend([after])
        self.env_before.extend([iteration], [before])
        self.env_after.extend([iteration], [after])
        self._dirty = self._evals_dirty = True

    def to_csv(self) -> str:
        """Every iteration's training metric (raw and smoothed) and each evaluation's held-out values."""
        rows: dict[float, list] = {}
        for x, y, s in zip(self.x.data, self.y.data, self.y_smooth.data):
            rows[x] = [repr(float(y)), repr(float(s)), "", ""]
        for x, b, a in zip(self.ex.data, self.eb.data, self.ea.data):
            rows.setdefault(x, ["", "", "", ""])[2:] = [repr(float(b)), repr(float(a))]
        name = self.plot.getPlotItem().getAxis("left").labelText or "metric"
        lines = [f"iteration,train_{name},train_{name}_ema,heldout_before,heldout_after"]
        lines += [f"{int(x)},{','.join(v)}" for x, v in sorted(rows.items())]
        return "\n".join(lines) + "\n"

    def _resmooth(self) -> None:
        """A new smoothing weight: the whole series again (a user's action, not a frame's)."""
        smoothed, last, n = ema_continue(self.y.data, self.ema.value(), 0.0, 0)
        self._ema_state = (last, n)
        self.y_smooth.clear()
        self.y_smooth.extend(smoothed)
        self.env_smooth.clear()
        self.env_smooth.extend(self.x.data, smoothed)
        self._dirty = True
        self.redraw()

    def _set_log(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=on)
        self._dirty = True
        self.redraw(force_range=True)

    def redraw(self, force_range: bool = False) -> bool:
        """Push new data to the items; returns whether anything was drawn."""
        if not self._dirty and not force_range:
            return False
        self._dirty = False
        log = self.log.isChecked()
        for item, env in ((self.raw, self.env_raw), (self.smooth, self.env_smooth)):
            x, y = env.points(log)  # bounded: at most 2 * CURVE_BUCKETS + 1 points
            item.setData(x, np.log10(y) if log else y)  # bare curves get no log transform from the plot
        if self._evals_dirty or force_range:
            self._evals_dirty = False  # the markers' items apply the plot's log mode themselves
            self.before.setData(*self.env_before.points(log))
            self.after.setData(*self.env_after.points(log))
        now = time.monotonic()
        if force_range or now - self._last_range > RANGE_EVERY:
            self._last_range = now
            self._update_range(force_range)
        return True

    def _update_range(self, force: bool) -> None:
        """Change the view only when the data leaves it (or fills under a third of it): a new range
        re-lays the axes and the grid out, the costliest frame of a live plot."""
        log = self.log.isChecked()
        envs = (self.env_raw, self.env_before, self.env_after)
        bounds = [b for b in (e.bounds(log) for e in envs) if b is not None]  # O(buckets), not O(run)
        x1 = max(e.x_max for e in envs)
        if not np.isfinite(x1) or not bounds:
            return
        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
        if log:
            lo, hi = np.log10(lo), np.log10(hi)
        (vx0, vx1), (vy0, vy1) = self.plot.getPlotItem().viewRange()
        span = max(hi - lo, 1e-6)
        inside = x1 <= vx1 and lo >= vy0 and hi <= vy1 and span > (vy1 - vy0) / 3 and vx1 <= max(2 * x1, 10)
        if force or not inside:
            target_x = max(x1, self.x_extent or 0) if self.x_extent else x1 * 1.25
            self.plot.getPlotItem().setRange(xRange=(0, max(target_x, 1)), yRange=(lo - 0.1 * span, hi + 0.1 * span),
                                             padding=0)


def heldout_label(metric: str) -> str:
    """The adaptation plot's axis label for a held-out metric."""
    return {"return": "held-out return", "accuracy": "held-out accuracy (%)"}.get(metric, f"held-out {metric}")


class AdaptationPlot(QWidget):
    """Adaptation curves of the held-out tasks (loss or return vs inner step) for one evaluation."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot("adaptationPlot", "inner step", "held-out loss")
        p = self.plot.getPlotItem()
        p.getAxis("bottom").enableAutoSIPrefix(False)  # steps are counts: never "(x0.001)" on a one-point curve
        self.tasks = p.plot(name="each held-out task", pen=pg.mkPen((160, 160, 170, 45), width=1), connect="finite")
        self.upper = pg.PlotDataItem(pen=pg.mkPen(None), connect="finite")
        self.lower = pg.PlotDataItem(pen=pg.mkPen(None), connect="finite")
        self.band = pg.FillBetweenItem(self.lower, self.upper, brush=pg.mkBrush(78, 154, 241, 70))
        p.addItem(self.band)
        # a step where some task diverged has no mean (stats.mean_ci95): a gap in the line, named in the label
        self.mean = p.plot(name="mean ± 95% CI", pen=pg.mkPen(PALETTE[0], width=2.5), symbol="o", symbolSize=5,
                           symbolBrush=PALETTE[0], symbolPen=None, connect="finite")
        p.addItem(self.upper)
        p.addItem(self.lower)
        cache_static_parts(p)
        self.reference_lines: list = []
        self._axis_key = None
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("evaluationSlider")
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Look back at earlier evaluations")
        self.label = QLabel("no evaluation yet")
        self.label.setObjectName("evaluationLabel")
        self.log = QCheckBox("log scale")
        self.log.setObjectName("adaptationLogCheck")
        self.log.setChecked(True)
        bar = QHBoxLayout()
        bar.addWidget(self.label)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.log)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.plot)
        self.evaluations: list = []
        self._follow = True
        self.slider.valueChanged.connect(self._on_slider)
        self.log.toggled.connect(lambda on: (p.setLogMode(y=on), self.show_index(self.slider.value())))
        p.setLogMode(y=True)
        p.setRange(xRange=(0, 10), yRange=(-2, 1), padding=0)  # until data arrives

    def clear(self) -> None:
        self.evaluations = []
        self._follow = True
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        for item in (self.tasks, self.upper, self.lower, self.mean):
            item.setData([], [])
        self.label.setText("no evaluation yet")

    def set_metric(self, metric: str, steps: int | None = None) -> None:
        """Label an empty plot for what the run will show: its held-out metric, steps 0..``steps``."""
        p = self.plot.getPlotItem()
        if p.getAxis("left").labelText != heldout_label(metric):
            p.setLabel("left", heldout_label(metric))
        if steps is not None and not self.evaluations:
            p.setXRange(0, max(1, steps), padding=0.04)

    def add_evaluation(self, evaluation) -> None:
        self.evaluations.append(evaluation)
        n = len(self.evaluations)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        if self._follow:
            self.slider.setValue(n - 1)
        self.slider.blockSignals(False)
        if self._follow:
            self.show_index(n - 1)
        else:
            self._update_label(self.slider.value())

    def to_csv(self) -> str:
        """The shown evaluation: each step's mean, its 95% CI and every held-out task's value."""
        if not self.evaluations:
            return "step,mean,ci95_low,ci95_high\n"
        e = self.evaluations[max(0, min(self.slider.value(), len(self.evaluations) - 1))]
        head = ["step", "mean", "ci95_low", "ci95_high"] + [f"task_{t}" for t in range(e.per_task.shape[0])]
        lines = [f"# {e.metric} at iteration {e.iteration}; steps: {e.step_label}", ",".join(head)]
        for k, s in enumerate(e.steps):
            vals = [e.mean[k], e.mean[k] - e.ci95[k], e.mean[k] + e.ci95[k], *e.per_task[:, k]]
            lines.append(",".join([str(s)] + [repr(float(v)) for v in vals]))
        return "\n".join(lines) + "\n"

    def _on_slider(self, index: int) -> None:
        self._follow = index == len(self.evaluations) - 1
        self.show_index(index)

    def _update_label(self, index: int) -> None:
        e = self.evaluations[index]
        text = f"iteration {e.iteration}  ({index + 1} of {len(self.evaluations)})"
        diverged = e.diverged
        if diverged:
            from workbench.core.stats import describe_divergence

            text += f"  — {len(diverged)} of {e.per_task.shape[0]} tasks diverged from step {min(diverged.values())}"
            self.label.setToolTip(describe_divergence(diverged, e.per_task.shape[0], shown=20))
        else:
            self.label.setToolTip("")
        self.label.setText(text)

    def show_index(self, index: int) -> None:
        if not self.evaluations:
            return
        index = max(0, min(index, len(self.evaluations) - 1))
        e = self.evaluations[index]
        scale = PERCENT if e.metric == "accuracy" else 1.0  # accuracy is shown in %
        steps = np.asarray(e.steps, dtype=np.float64)
        per = np.asarray(e.per_task, dtype=np.float64) * scale
        mean, ci95 = np.asarray(e.mean) * scale, np.asarray(e.ci95) * scale
        xs = np.concatenate([np.append(steps, np.nan)] * per.shape[0])
        ys = np.concatenate([np.append(row, np.nan) for row in per])
        self.tasks.setData(xs, ys)
        lower = mean - ci95
        if self.log.isChecked() and np.isfinite(lower).any():
            lower = np.maximum(lower, np.nanmin(per[per > 0]) if (per > 0).any() else 1e-6)
        self.upper.setData(steps, mean + ci95)
        self.lower.setData(steps, lower)
        self.mean.setData(steps, mean)
        p = self.plot.getPlotItem()
        if [ln.value() for ln in self.reference_lines] != list(e.references.values()):
            self._set_references(p, e.references)
        key = (e.step_label, tuple(e.steps))
        if key != self._axis_key:  # relabelling an axis re-lays the plot out: only when it changes
            self._axis_key = key
            p.setLabel("bottom", e.step_label)
            p.getAxis("bottom").setTicks([[(float(s), str(int(s))) for s in steps]] if len(steps) <= 25 else None)
        label = heldout_label(e.metric)
        if p.getAxis("left").labelText != label:
            p.setLabel("left", label)
        self._update_label(index)
        refs = np.asarray(list(e.references.values()), dtype=np.float64) * scale
        _set_range(self.plot.getPlotItem(), steps, [per[np.isfinite(per)], mean, refs], self.log.isChecked())

    def _set_references(self, p, references: dict) -> None:
        for line in self.reference_lines:
            p.removeItem(line)
        self.reference_lines = []
        for k, (name, value) in enumerate(references.items()):
            line = pg.InfiniteLine(value, angle=0, pen=pg.mkPen(PALETTE[4 + k % 4], style=Qt.PenStyle.DashLine),
                                   label=name, labelOpts={"position": 0.85, "color": PALETTE[4 + k % 4]})
            p.addItem(line)
            self.reference_lines.append(line)


# -- rollouts: one renderer per payload view --------------------------------------------------------------
class RegressionRenderer(pg.GraphicsLayoutWidget):
    """'regression-1d': the true function, the support points and the prediction after each inner step."""

    view = RegressionCurves.view

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[dict] = []
        self._n = 0
        self._pool: list[pg.PlotItem] = []  # every panel made so far, reused

    def _ensure(self, n: int, steps: int) -> None:
        if n == self._n and all(len(p["steps"]) == steps for p in self.panels):
            return
        for panel in self.panels:  # plot items are kept and reused (see _PanelRenderer._grid)
            self.ci.removeItem(panel["plot"])
            panel["plot"].hide()
        while len(self._pool) < n:
            plot = pg.PlotItem()
            plot.showGrid(x=True, y=True, alpha=0.15)
            cache_static_parts(plot)
            self._pool.append(plot)
        self.panels = []
        cols = 2 if n > 1 else 1
        for i in range(n):
            plot = self._pool[i]
            plot.clear()
            self.ci.addItem(plot, row=i // cols, col=i % cols)
            plot.show()
            truth = pg.PlotCurveItem(pen=pg.mkPen("#e8e8e8", width=2, style=Qt.PenStyle.DashLine))
            plot.addItem(truth)
            step_items = []
            for s in range(steps):
                frac = s / max(1, steps - 1)
                color = pg.mkColor(PALETTE[3]) if s == 0 else pg.mkColor(
                    int(90 + 0 * frac), int(140 + 80 * frac), int(90 + 20 * frac), int(90 + 165 * frac))
                width = 2.5 if s in (0, steps - 1) else 1
                item = pg.PlotCurveItem(pen=pg.mkPen(color, width=width), skipFiniteCheck=True)
                plot.addItem(item)
                step_items.append(item)
            support = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("#edc948"), pen=pg.mkPen("#202020"))
            plot.addItem(support)
            self.panels.append({"plot": plot, "truth": truth, "steps": step_items, "support": support, "title": ""})
        self._n = n

    def show_payload(self, payload: RegressionCurves) -> None:
        pred = payload.pred
        n, steps = pred.shape[0], pred.shape[1]
        self._ensure(n, steps)
        x = payload.x
        names = payload.task_param_names
        for i, panel in enumerate(self.panels):
            panel["truth"].setData(x, payload.y_true[i])
            for s, item in enumerate(panel["steps"]):
                item.setData(x, pred[i, s])
            panel["support"].setData(payload.x_support[i], payload.y_support[i])
            params = payload.task_params
            if params is not None and len(names):
                title = "  ".join(f"{k} {v:.2f}" for k, v in zip(names, params[i]))
                if title != panel["title"]:
                    panel["title"] = title
                    panel["plot"].setTitle(title, size="9pt")

    def plot_items(self) -> list:
        return [p["plot"] for p in self.panels]


class _PanelRenderer(pg.GraphicsLayoutWidget):
    """A grid of one plot per task, rebuilt only when the number of tasks or steps changes."""

    view = ""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[pg.PlotItem] = []
        self._pool: list[pg.PlotItem] = []  # every panel made so far (see _grid)
        self._shape = None

    @staticmethod
    def _reset(plot: pg.PlotItem, legend: bool = False) -> None:
        """Empty a panel for a new payload: its legend's entries first (an entry whose item is gone paints a
        deleted object: the app aborted on the third redraw of a visible grid), then its items; the legend
        itself is made once and kept."""
        if plot.legend is not None:
            plot.legend.clear()
        plot.clear()
        if legend and plot.legend is None:
            plot.addLegend(offset=(5, 5), labelTextSize="8pt")

    def _grid(self, n: int) -> list[pg.PlotItem]:
        """``n`` panels in two columns.  Panels are made once and kept (taken out of the layout when fewer are
        shown): deleting the plot items of a grid on screen crashed the app on a later redraw."""
        if self._shape != n:
            for plot in self.panels:
                self.ci.removeItem(plot)
                plot.hide()
            while len(self._pool) < n:
                plot = pg.PlotItem()
                plot.showGrid(x=True, y=True, alpha=0.15)
                self._pool.append(plot)
            cols = 2 if n > 1 else 1
            self.panels = self._pool[:n]
            for i, plot in enumerate(self.panels):
                self.ci.addItem(plot, row=i // cols, col=i % cols)
                plot.show()
            self._shape = n
        return self.panels

    def plot_items(self) -> list:
        return list(self.panels)


def _step_color(s: int, steps: int):
    if s == 0:
        return pg.mkColor(PALETTE[3])
    frac = s / max(1, steps - 1)
    return pg.mkColor(90, int(140 + 80 * frac), 110, int(110 + 145 * frac))


def _step_name(s: int) -> str:
    return "before adaptation" if s == 0 else f"after {s} step{'s' if s > 1 else ''}"


class TrajectoryRenderer(_PanelRenderer):
    """'trajectories-2d': paths from the origin before and after each adaptation step, and the goal."""

    view = Trajectories2D.view

    def show_payload(self, payload: Trajectories2D) -> None:
        paths, goals = payload.paths, payload.goals  # (T, S+1, n, H+1, 2), (T, 2)
        lo, hi = payload.bounds
        for i, plot in enumerate(self._grid(paths.shape[0])):
            self._reset(plot, legend=i == 0)
            for s in range(paths.shape[1]):
                xs = np.concatenate([np.append(p[:, 0], np.nan) for p in paths[i, s]])
                ys = np.concatenate([np.append(p[:, 1], np.nan) for p in paths[i, s]])
                plot.plot(xs, ys, pen=pg.mkPen(_step_color(s, paths.shape[1]), width=1.5), connect="finite",
                          name=_step_name(s) if i == 0 and s in (0, paths.shape[1] - 1) else None)
            plot.plot([goals[i, 0]], [goals[i, 1]], pen=None, symbol="star", symbolSize=16,
                      symbolBrush="#edc948", name="goal" if i == 0 else None)
            plot.plot([0], [0], pen=None, symbol="o", symbolSize=7, symbolBrush="#d0d0d0")
            ret = payload.returns[i]
            plot.setTitle(f"return {ret[0]:.1f} → {ret[-1]:.1f}", size="9pt")
            plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0)
            plot.setAspectLocked(True)


class BanditRenderer(_PanelRenderer):
    """'bandit-arms': how often each arm is pulled before and after adaptation, against the arm means."""

    view = BanditArms.view

    def show_payload(self, payload: BanditArms) -> None:
        frac, means = payload.pull_fraction, payload.means  # (T, S+1, k), (T, k)
        k = means.shape[1]
        for i, plot in enumerate(self._grid(frac.shape[0])):
            self._reset(plot, legend=i == 0)
            last = frac.shape[1] - 1
            width = 0.8 / 2
            plot.addItem(pg.BarGraphItem(x=np.arange(k) - width / 2, height=frac[i, 0], width=width,
                                         brush=PALETTE[3], name="pulls before adaptation" if i == 0 else None))
            plot.addItem(pg.BarGraphItem(x=np.arange(k) + width / 2, height=frac[i, last], width=width,
                                         brush=PALETTE[2], name=f"pulls {_step_name(last)}" if i == 0 else None))
            plot.plot(np.arange(k), means[i], pen=None, symbol="d", symbolSize=10, symbolBrush="#edc948",
                      name="arm mean" if i == 0 else None)
            plot.setRange(xRange=(-0.6, k - 0.4), yRange=(0, 1.05), padding=0)
            plot.setTitle(f"best arm {int(np.argmax(means[i]))}; return {payload.returns[i][0]:.1f} → "
                          f"{payload.returns[i][-1]:.1f}", size="9pt")


class VisitationRenderer(_PanelRenderer):
    """'state-visitation': the fraction of time spent in each state, before and after adaptation."""

    view = StateVisitation.view

    def show_payload(self, payload: StateVisitation) -> None:
        visits = payload.visits  # (T, S+1, states)
        n = visits.shape[2]
        for i, plot in enumerate(self._grid(visits.shape[0])):
            self._reset(plot)
            last = visits.shape[1] - 1
            img = pg.ImageItem(np.stack([visits[i, 0], visits[i, last]]).T)
            img.setColorMap(pg.colormap.get("viridis"))
            plot.addItem(img)
            plot.getAxis("bottom").setTicks([[(0.5, "before"), (1.5, _step_name(last))]])
            plot.setLabel("left", "state")
            plot.setRange(xRange=(0, 2), yRange=(0, n), padding=0)
            plot.setTitle(f"return {payload.returns[i][0]:.1f} → {payload.returns[i][-1]:.1f}", size="9pt")


class FramesRenderer(pg.GraphicsLayoutWidget):
    """'frames': rendered frames of one episode before adaptation (left) and after the last step (right),
    played side by side at the payload's frame rate.  The timer only runs while the view is visible; each
    tick sets two small images (no re-layout, no auto-range)."""

    view = Frames.view

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        for col in range(2):
            p = self.addPlot(row=0, col=col)
            p.hideAxis("left")
            p.hideAxis("bottom")
            p.setMenuEnabled(False)
            p.setMouseEnabled(False, False)
            p.getViewBox().invertY(True)
            p.getViewBox().setAspectLocked(True)
            img = pg.ImageItem(axisOrder="row-major")
            p.addItem(img)
            self.panels.append(p)
            self.images.append(img)
        self.frames = None  # (S+1, F, H, W, 3) uint8
        self.index = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.advance)

    def show_payload(self, payload: Frames) -> None:
        frames = np.asarray(payload.frames)
        if frames.ndim != 5 or frames.shape[0] < 1 or frames.shape[1] < 1:
            return
        first_time = self.frames is None or self.frames.shape[2:] != frames.shape[2:]
        self.frames, self.index = frames, 0
        returns = np.asarray(payload.returns)
        steps = list(payload.frame_steps)
        all_names = payload.step_names  # algorithms that adapt in context name their steps
        if all_names:
            index = list(payload.steps)
            names = [all_names[index.index(steps[0])], all_names[index.index(steps[-1])]]
        else:
            names = [_step_name(steps[0]), _step_name(steps[-1])]
        for p, name, ret in zip(self.panels, names, (returns[0][0], returns[0][-1])):
            p.setTitle(f"{name}: return {ret:.1f}", size="9pt")
        self.advance()
        if first_time:
            h, w = frames.shape[2:4]
            for p in self.panels:
                p.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        self.timer.start(int(1000 / max(15, min(60, int(payload.fps)))))

    def advance(self) -> None:
        if self.frames is None:
            return
        f = self.frames
        i = self.index % f.shape[1]
        for img, s in zip(self.images, (0, f.shape[0] - 1)):
            img.setImage(f[s, i], autoLevels=False, levels=(0, 255))
        self.index += 1

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.frames is not None and not self.timer.isActive():
            self.timer.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def plot_items(self) -> list:
        return list(self.panels)


RENDERERS: dict[str, type] = {r.view: r for r in (RegressionRenderer, TrajectoryRenderer, BanditRenderer,
                                                  VisitationRenderer, FramesRenderer,
                                                  ClassificationRenderer)}  # payload view -> renderer


class RolloutView(QWidget):
    """Shows the family's render payload with the renderer registered for its ``view``."""

    payloadShown = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("rolloutView")
        self.stack = QStackedWidget()
        self.empty = QLabel("Rollouts appear here at the first evaluation:\nthe true task, the support points,\n"
                            "and the prediction before and after each inner step.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.empty)
        self.caption = QLabel("")
        self.caption.setObjectName("rolloutCaption")
        self.caption.setWordWrap(True)
        self.iteration_label = QLabel("")
        self.iteration_label.setObjectName("rolloutIterationLabel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.iteration_label)
        lay.addWidget(self.caption)
        lay.addWidget(self.stack)
        self.renderers: dict[str, QWidget] = {}
        self.payload: RenderPayload | None = None
        self.iteration: int | None = None

    def clear(self) -> None:
        self.payload = None
        self.caption.setText("")
        self.iteration_label.setText("")
        self.stack.setCurrentWidget(self.empty)

    def show_render(self, iteration: int, payload: RenderPayload) -> None:
        view = payload.view
        renderer = self.renderers.get(view)
        if renderer is None:
            cls = RENDERERS.get(view)
            if cls is None:
                self.empty.setText(f"No view for rollouts of kind {view!r}.")
                self.stack.setCurrentWidget(self.empty)
                return
            renderer = self.renderers[view] = cls()
            self.stack.addWidget(renderer)
        renderer.show_payload(payload)
        self.stack.setCurrentWidget(renderer)
        self.payload, self.iteration = payload, iteration
        extra = {"regression-1d": "; dashed: the true function; yellow: the support points",
                 "trajectories-2d": "; star: the goal", "bandit-arms": "; diamonds: the arm means"}.get(view, "")
        text = f"before adaptation (red), after adaptation (green, brighter = more steps){extra}"
        if isinstance(payload, Frames):
            text = (f"{payload.title or 'one episode of the first held-out task'}: before adaptation (left) and "
                    f"after adaptation (right)")
        elif view == ClassificationRenderer.view:
            when = " before → after adaptation" if len(payload.steps) > 1 else " with the predicted label"
            text = f"a row per class: support, then query images labelled{when} (green: right, red: wrong)"
        if self.caption.text() != text:  # a wrapped label re-lays the dock out: only when the kind changes
            self.caption.setText(text)
        self.iteration_label.setText(f"held-out tasks at iteration {iteration}")
        self.payloadShown.emit(view)

    def plot_items(self) -> list:
        r = self.stack.currentWidget()
        return r.plot_items() if hasattr(r, "plot_items") else []


def export_plot_item(item: pg.PlotItem, png: Path, csv: Path | None) -> None:
    """Write a PlotItem to PNG (and its curves to CSV) with pyqtgraph's exporters; each file appears whole
    or not at all (written next to it, then renamed into place).  OSError when one cannot be written."""
    import os

    from pyqtgraph.exporters import CSVExporter, ImageExporter

    png = Path(png)
    tmp = png.with_name(f".{png.stem}.tmp{os.getpid()}.png")
    try:
        image = ImageExporter(item).export(toBytes=True)
        if image is None or image.isNull() or not image.save(str(tmp), "PNG"):
            raise OSError(f"{png}: cannot write the image")
        os.replace(tmp, png)
    finally:
        if tmp.exists():
            tmp.unlink()
    if csv is not None:
        csv = Path(csv)
        tmp = csv.with_name(f".{csv.stem}.tmp{os.getpid()}.csv")
        try:
            CSVExporter(item).export(str(tmp))
            os.replace(tmp, csv)
        finally:
            if tmp.exists():
                tmp.unlink()


def scrolling_column(widget, width: int):
    """``widget`` (a column of controls ``width`` px wide) in a scroll area: it scrolls rather than squashes
    when a dock is small."""
    from PySide6.QtWidgets import QScrollArea

    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFixedWidth(width + scroll.verticalScrollBar().sizeHint().width() + 4)
    return scroll


def fixed_plot(plot: pg.PlotItem, legend_alpha: int = 200) -> None:
    """A plot the user does not pan or zoom (its range is set by the page), with a compact dark legend."""
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.enableAutoRange(False)
    if plot.legend is not None:
        plot.legend.setBrush(pg.mkBrush(30, 31, 36, legend_alpha))
        plot.legend.setLabelTextSize("8pt")
