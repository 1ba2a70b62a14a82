"""The adaptation view: each held-out task's metric against the adaptation step, their mean and 95% CI, and
reference methods' values as labelled dashed lines, for one evaluation at a time (a slider looks back)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from workbench.core.plotting import view_range

from .common import PALETTE, LineLabels, cache_static_parts, make_plot

PERCENT = 100.0  # accuracy (a fraction) is shown in %
EMPTY_Y = {"accuracy": (0.0, 100.0), "return": (-1.0, 1.0)}  # an empty plot's y range (a loss: 0.01 to 10)


def heldout_label(metric: str) -> str:
    """The adaptation plot's axis label for a held-out metric."""
    return {"return": "held-out return", "accuracy": "held-out accuracy (%)"}.get(metric, f"held-out {metric}")


def _set_range(plot: pg.PlotItem, x: np.ndarray, ys: list[np.ndarray], log_y: bool) -> None:
    r = view_range(x, ys, log_y)
    if r is not None:
        plot.setRange(xRange=r[0], yRange=r[1], padding=0.04)


class AdaptationPlot(QWidget):
    """Adaptation curves of the held-out tasks (loss or return vs inner step) for one evaluation.

    The x axis counts steps in whatever the algorithm adapts by (its ``step_label``: inner steps, episodes
    of context, episodes of the trial) with whole-number ticks; reference methods (UCB1, Thompson sampling,
    an oracle) are dashed lines named at the right edge, their names never on top of each other."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot("adaptationPlot", "inner step", "held-out loss", integer_x=True)
        p = self.plot.getPlotItem()
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
        self.references = LineLabels(p)
        self._references_key = None
        self._axis_label = None
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
        self._metric: str | None = None
        self._steps: int | None = None
        self.slider.valueChanged.connect(self._on_slider)
        self.log.toggled.connect(self._on_log)
        p.setLogMode(y=True)
        p.setRange(xRange=(0, 10), yRange=(-2, 1), padding=0)  # until data arrives

    @property
    def reference_lines(self) -> list:
        """The reference methods' lines now shown."""
        return self.references.lines

    def clear(self) -> None:
        self.evaluations = []
        self._follow = True
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        for item in (self.tasks, self.upper, self.lower, self.mean):
            item.setData([], [])
        self.references.set([])
        self._references_key = None
        self.label.setText("no evaluation yet")
        if self._metric is not None:
            self._show_empty()

    def set_metric(self, metric: str, steps: int | None = None, step_label: str | None = None) -> None:
        """Label an empty plot for what the run will show: its held-out metric on the y axis, the whole steps
        0..``steps`` on the x axis, named ``step_label`` when the algorithm's steps are not inner steps."""
        self._metric, self._steps = metric, steps
        p = self.plot.getPlotItem()
        if p.getAxis("left").labelText != heldout_label(metric):
            p.setLabel("left", heldout_label(metric))
        if step_label is not None:
            self._set_step_label(step_label)
        if not self.evaluations:
            self._show_empty()

    def _show_empty(self) -> None:
        """The empty plot's range: the run's steps, and a span typical of its metric."""
        p = self.plot.getPlotItem()
        y = EMPTY_Y.get(self._metric, (-2.0, 1.0))
        if self.log.isChecked():
            y = (-2.0, 1.0) if self._metric not in EMPTY_Y else (0.0, 2.0)
        steps = self._steps if self._steps is not None else 10
        x = (-0.5, 0.5) if steps <= 0 else (0, steps)
        p.setRange(xRange=x, yRange=y, padding=0.04 if steps > 0 else 0)

    def _set_step_label(self, text: str) -> None:
        if text != self._axis_label:  # relabelling an axis re-lays the plot out: only when it changes
            self._axis_label = text
            self.plot.getPlotItem().setLabel("bottom", text)

    def _on_log(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=on)
        self._references_key = None
        if self.evaluations:
            self.show_index(self.slider.value())
        elif self._metric is not None:
            self._show_empty()

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
        log = self.log.isChecked()
        if log and np.isfinite(lower).any():
            lower = np.maximum(lower, np.nanmin(per[per > 0]) if (per > 0).any() else 1e-6)
        self.upper.setData(steps, mean + ci95)
        self.lower.setData(steps, lower)
        self.mean.setData(steps, mean)
        p = self.plot.getPlotItem()
        refs = {name: float(v) * scale for name, v in e.references.items()}
        key = (tuple(refs.items()), log)
        if key != self._references_key:
            self._references_key = key
            self.references.set([(name, v, PALETTE[4 + k % 4]) for k, (name, v) in enumerate(refs.items())], log)
        self._set_step_label(e.step_label)
        label = heldout_label(e.metric)
        if p.getAxis("left").labelText != label:
            p.setLabel("left", label)
        self._update_label(index)
        values = np.asarray(list(refs.values()), dtype=np.float64)
        _set_range(p, steps, [per[np.isfinite(per)], mean, values], log)
