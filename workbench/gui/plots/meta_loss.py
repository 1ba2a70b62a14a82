"""The meta-loss view: the training metric per meta-iteration (raw and EMA-smoothed) and the held-out metric
before / after adaptation at each evaluation."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from workbench.core.plotting import GrowingSeries, PeakEnvelope
from workbench.core.stats import ema_continue

from .common import PALETTE, cache_static_parts, make_plot

RANGE_EVERY = 0.5  # seconds between view-range updates
CURVE_BUCKETS = 1024  # a live curve draws at most 2 * CURVE_BUCKETS + 1 points, however long the run
MARKER_BUCKETS = 256  # the held-out markers: at most 2 * MARKER_BUCKETS + 1 evaluations drawn


class MetaLossPlot(QWidget):
    """Outer training loss per iteration (raw and EMA-smoothed) and held-out loss before / after adaptation.

    Every emitted value is kept (``x``, ``y``, ``y_smooth``, ``ex``, ``eb``, ``ea``: for :meth:`to_csv` and a
    change of smoothing), but a frame only reads their :class:`PeakEnvelope` summaries, updated as values
    arrive: what a frame costs does not grow with the run's length.  The x axis shows whole iterations only;
    the legend is a row under the plot."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot("metaLossPlot", "meta-iteration", "loss", integer_x=True)
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
        p.setRange(xRange=(0, 1000), yRange=(-1.15, 1.15), padding=0)  # until data arrives: 0.1 to 10, labelled

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
            if label is not None and label.text != f"{what}, {when} adaptation":
                label.setText(f"{what}, {when} adaptation")
        legend.updateSize()

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
        # a flat series (one iteration, a constant) still gets a readable range: 0.2 decades, or ±5%
        span = max(hi - lo, 0.2 if log else 0.1 * max(abs(lo), abs(hi), 1e-3))
        inside = x1 <= vx1 and lo >= vy0 and hi <= vy1 and span > (vy1 - vy0) / 3 and vx1 <= max(2 * x1, 10)
        if force or not inside:
            target_x = max(x1, self.x_extent or 0) if self.x_extent else x1 * 1.25
            mid, x1 = (lo + hi) / 2, max(target_x, 1)
            # 2% either side: the first and last iterations' ticks, labels and markers are not cut at the edge
            self.plot.getPlotItem().setRange(xRange=(-0.02 * x1, 1.02 * x1),
                                             yRange=(mid - 0.6 * span, mid + 0.6 * span), padding=0)
