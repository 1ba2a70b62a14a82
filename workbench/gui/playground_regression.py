"""The sinusoid playground page: place support points, adapt, and watch the prediction step by step.

Left plot: the model (the current run's or an opened bundle) adapting to the support points; right plot:
the same adaptation from the baseline (usually the pretrained bundle), each with the inner rule it was
trained with; below: support (and, when the true function is known, query) loss per step.

The adaptation itself runs in :mod:`workbench.services.playground_regression` on a worker thread that only
puts :class:`StepResult` objects into a queue; a QTimer on the GUI thread drains it, showing a new step at
most every 60 ms so the steps animate.  Cancel sets an Event the worker checks between steps.
"""
from __future__ import annotations

import math
import queue
import threading
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QSlider,
                               QSpinBox, QVBoxLayout, QWidget)

from workbench.services.playground_regression import PlaygroundError, RegressionSession, describe_rule

from .forms import button
from .plots import PALETTE, fixed_plot, make_plot, scrolling_column

STEP_INTERVAL = 0.06  # seconds: the slowest pace at which new steps appear
ANIMATION = 2.0  # seconds: a long adaptation is shown faster, so that it takes about this long
DRAIN_MS = 33
SLIDER_TICKS = 200
MAX_STEPS = 100
PICK_PIXELS = 25  # a right-click this close to a point removes it

LOSS_NAMES = {"support_loss": "support (model)", "query_loss": "query (model)",
              "baseline_support_loss": "support (baseline, dashed)", "baseline_query_loss": "query (baseline, dashed)"}
SUPPORT_BRUSH = "#edc948"
BEFORE_COLOR = PALETTE[3]
LATEST_COLOR = "#7ee07a"


def _ramp(s: int, total: int):
    """The colour of intermediate step ``s`` of ``total``: like the training view's rollouts, brighter later."""
    frac = s / max(1, total)
    return pg.mkColor(90, int(140 + 80 * frac), 110, int(70 + 150 * frac))


def log_ticks(lo: float, hi: float) -> list:
    """Ticks of a log axis over log10 values lo..hi: labelled decades, and 2 and 5 between them labelled
    only when the axis spans under 2.5 decades (pyqtgraph's own labels every minor tick and they overlap)."""
    label_minor = hi - lo < 2.5
    major = [(float(k), f"{10.0 ** k:g}") for k in range(math.floor(lo), math.ceil(hi) + 1) if lo <= k <= hi]
    minor = []
    for k in range(math.floor(lo) - 1, math.ceil(hi) + 1):
        for m in ((2, 5) if label_minor else (2, 3, 4, 5, 6, 7, 8, 9)):
            v = math.log10(m) + k
            if lo <= v <= hi:
                minor.append((v, f"{m * 10.0 ** k:g}" if label_minor else ""))
    return [major, minor]


class _Panel:
    """The items of one adaptation plot: true function, steps, support points; created once."""

    def __init__(self, widget: pg.PlotWidget):
        self.widget = widget
        p = self.plot = widget.getPlotItem()
        fixed_plot(p)
        p.legend.setColumnCount(2)  # two short rows in the margin above the family's amplitude
        p.legend.setOffset((-6, 2))
        self.truth = pg.PlotCurveItem(pen=pg.mkPen("#e8e8e8", width=2, style=Qt.PenStyle.DashLine))
        self.before = pg.PlotCurveItem(pen=pg.mkPen(BEFORE_COLOR, width=2), skipFiniteCheck=True)
        self.latest = pg.PlotCurveItem(pen=pg.mkPen(LATEST_COLOR, width=3), skipFiniteCheck=True)
        self.support = pg.ScatterPlotItem(size=13, brush=pg.mkBrush(SUPPORT_BRUSH), pen=pg.mkPen("#202020", width=1.5))
        for z, item in enumerate((self.truth, self.before, self.latest, self.support)):
            item.setZValue(10 + 10 * z)
            p.addItem(item)
        p.legend.addItem(self.support, "support points")
        p.legend.addItem(self.truth, "true function")
        p.legend.addItem(self.before, "before adaptation")
        p.legend.addItem(self.latest, "after adaptation")
        self.steps: list[pg.PlotCurveItem] = []  # intermediate steps 1..n-1
        self.note = pg.TextItem("", color="#d8d8d8", anchor=(0.5, 0.5), fill=pg.mkBrush(37, 38, 43, 235),
                                border=pg.mkPen("#4a4d56"))
        self.note.setZValue(100)
        p.addItem(self.note, ignoreBounds=True)
        self.total = 0

    def set_range(self, x_range, y_range) -> None:
        self.plot.setRange(xRange=x_range, yRange=y_range, padding=0.03)
        self.note.setPos((x_range[0] + x_range[1]) / 2, (y_range[0] + y_range[1]) / 2)

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def clear_steps(self) -> None:
        self.before.setData([], [])
        self.latest.setData([], [])
        for item in self.steps:
            item.setData([], [])
        self.set_latest_label(None)

    def set_latest_label(self, step: int | None) -> None:
        label = self.plot.legend.getLabel(self.latest)
        text = "after adaptation" if step is None else f"after {step} step{'s' if step != 1 else ''} (newest)"
        if label is not None and label.text != text:
            label.setText(text)

    def show(self, results: list, first_new: int, field: str, total: int) -> None:
        """Draw ``results[first_new:]`` (already drawn: the ones before); ``total``: steps planned."""
        if not results:
            return
        if total != self.total:
            self.total = total
            for s, item in enumerate(self.steps, start=1):
                item.setPen(pg.mkPen(_ramp(s, total), width=1))
        for i in range(max(first_new, 0), len(results)):
            r = results[i]
            y = getattr(r, field)
            if y is None:
                continue
            if r.step == 0:
                self.before.setData(r.grid_x, y)
                continue
            prev = results[i - 1] if i > 0 else None
            if prev is not None and prev.step >= 1:  # the newest so far becomes an intermediate step
                self._intermediate(prev.step).setData(prev.grid_x, getattr(prev, field))
        last = results[-1]
        y = getattr(last, field)
        if last.step >= 1 and y is not None:
            self.latest.setData(last.grid_x, y)
            self.set_latest_label(last.step)

    def _intermediate(self, s: int) -> pg.PlotCurveItem:
        while len(self.steps) < s:
            k = len(self.steps) + 1
            item = pg.PlotCurveItem(pen=pg.mkPen(_ramp(k, max(self.total, k)), width=1), skipFiniteCheck=True)
            item.setZValue(15)
            self.plot.addItem(item)
            self.steps.append(item)
        return self.steps[s - 1]


def _slider(name: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setObjectName(name)
    s.setRange(0, SLIDER_TICKS)
    s.setValue(SLIDER_TICKS // 2)
    return s


class RegressionPlayground(QWidget):
    """The sinusoid playground: works on any supervised 1-D regression model with a known true function."""

    message = Signal(str, bool)  # text, is_error
    adaptationFinished = Signal()  # the last adaptation (or step) is fully shown, cancelled or failed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("sinusoidPlayground")
        self.session: RegressionSession | None = None
        self.results: list = []  # StepResult of the last adaptation, as shown
        self.points_x: list[float] = []
        self.points_y: list[float] = []
        self.true: tuple[float, float] | None = None  # (amplitude, phase) when the points are its samples
        self._seed = 0
        self._adaptation = None  # core Adaptation, kept for Step
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._last_thread: threading.Thread | None = None  # may still be finishing a step after a cancel
        self._pending: list = []
        self._worker_done = True
        self._planned = 0
        self._interval = STEP_INTERVAL
        self._anim_start = 0.0
        self._anim_shown = 0
        self._loss_view = None  # (steps, log10 low, log10 high) of the loss chart's view
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self._drain)
        self._update_controls()
        self._redraw_points()

    # -- construction ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.plot = make_plot("playgroundSinusoidPlot", "x", "y")
        self.baseline_plot = make_plot("playgroundBaselinePlot", "x", "y")
        self.loss_plot = make_plot("playgroundLossPlot", "inner step", "MSE")
        self.panel = _Panel(self.plot)
        self.base_panel = _Panel(self.baseline_plot)
        self.plot.setCursor(Qt.CursorShape.CrossCursor)
        self.plot.setToolTip("Left-click: place a support point; right-click on a point: remove it")
        self.plot.scene().sigMouseClicked.connect(self._on_scene_click)

        lp = self.loss_plot.getPlotItem()
        lp.setLogMode(y=True)
        fixed_plot(lp, 210)
        lp.setRange(xRange=(0, 10), yRange=(-3, 1), padding=0)
        lp.getAxis("left").setTicks(log_ticks(-3, 1))
        dash = Qt.PenStyle.DashLine
        self.loss_items = {
            "support_loss": lp.plot(pen=pg.mkPen(PALETTE[0], width=2), symbol="o",
                                    symbolSize=5, symbolBrush=PALETTE[0], symbolPen=None),
            "query_loss": lp.plot(pen=pg.mkPen(PALETTE[1], width=2), symbol="s",
                                  symbolSize=5, symbolBrush=PALETTE[1], symbolPen=None),
            "baseline_support_loss": lp.plot(pen=pg.mkPen(PALETTE[0], width=1.5, style=dash)),
            "baseline_query_loss": lp.plot(pen=pg.mkPen(PALETTE[1], width=1.5, style=dash)),
        }

        # controls
        self.shots = QSpinBox()
        self.shots.setObjectName("playgroundShotsSpin")
        self.shots.setRange(1, 200)
        self.shots.setValue(10)
        self.shots.setToolTip("K: how many support points 'Sample K points' (and the sliders) draw")
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("playgroundStepsSpin")
        self.steps_spin.setRange(1, MAX_STEPS)
        self.steps_spin.setValue(10)
        self.steps_spin.setToolTip("Inner steps that Adapt takes")
        self.amp = _slider("playgroundAmplitudeSlider")
        self.phase = _slider("playgroundPhaseSlider")
        self.amp_label = QLabel("")
        self.amp_label.setObjectName("playgroundAmplitudeLabel")
        self.phase_label = QLabel("")
        self.phase_label.setObjectName("playgroundPhaseLabel")
        for label in (self.amp_label, self.phase_label):
            label.setMinimumWidth(44)
        self.amp.setToolTip("Amplitude A of the true function A sin(x − φ); moving it samples K points")
        self.phase.setToolTip("Phase φ of the true function A sin(x − φ); moving it samples K points")
        self.sample_button = button("Sample K points", "playgroundSampleButton",
                                     "Replace the points by K samples of A sin(x − φ) (the true function is then known)")
        self.clear_button = button("Clear points", "playgroundClearButton", "Remove every support point")
        self.adapt_button = button("Adapt", "playgroundAdaptButton", "Adapt from the meta-learned start, all steps")
        self.step_button = button("Step", "playgroundStepButton", "One more inner step from the current state")
        self.cancel_button = button("Cancel", "playgroundCancelButton", "Stop the running adaptation")
        self.reset_button = button("Reset", "playgroundResetButton",
                                    "Forget the adaptation (keep the points): back to the meta-learned start")
        self.adapt_button.setDefault(True)

        points_box = QGroupBox("Support points")
        pl = QVBoxLayout(points_box)
        hint = QLabel("Left-click the left plot to place a point, right-click a point to remove it.")
        hint.setWordWrap(True)
        self.points_label = QLabel("")
        self.points_label.setObjectName("playgroundPointsLabel")
        self.points_label.setWordWrap(True)
        pl.addWidget(hint)
        pl.addWidget(self.points_label)
        pl.addWidget(self.clear_button)

        task_box = QGroupBox("Task A sin(x − φ)")
        tf = QFormLayout(task_box)
        tf.addRow("K", self.shots)
        for text, slider, label in (("A", self.amp, self.amp_label), ("φ", self.phase, self.phase_label)):
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(label)
            tf.addRow(text, row)
        tf.addRow(self.sample_button)

        adapt_box = QGroupBox("Adaptation")
        af = QFormLayout(adapt_box)
        af.addRow("steps", self.steps_spin)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.adapt_button)
        row1.addWidget(self.step_button)
        row2.addWidget(self.cancel_button)
        row2.addWidget(self.reset_button)
        af.addRow(row1)
        af.addRow(row2)

        self.info = QLabel("no model")
        self.info.setObjectName("playgroundModelInfo")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("font-size: 8pt;")
        self.message_label = QLabel("")
        self.message_label.setObjectName("playgroundRegressionMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        side = QVBoxLayout()
        for w in (points_box, task_box, adapt_box, self.info):
            side.addWidget(w)
        side.addWidget(self.message_label)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(280)
        side.setContentsMargins(0, 0, 0, 0)

        plots = QHBoxLayout()
        plots.addWidget(self.plot, 1)
        plots.addWidget(self.baseline_plot, 1)
        right = QVBoxLayout()
        right.addLayout(plots, 3)
        right.addWidget(self.loss_plot, 2)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(scrolling_column(side_widget, 280))
        lay.addLayout(right, 1)
        for w in (self.plot, self.baseline_plot, self.loss_plot):
            w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            w.setMinimumSize(200, 160)

        self.shots.valueChanged.connect(self._on_shots)
        self.amp.valueChanged.connect(self._on_slider)
        self.phase.valueChanged.connect(self._on_slider)
        self.sample_button.clicked.connect(self.sample)
        self.clear_button.clicked.connect(self.clear_points)
        self.adapt_button.clicked.connect(self.adapt)
        self.step_button.clicked.connect(self.step)
        self.cancel_button.clicked.connect(self.cancel)
        self.reset_button.clicked.connect(self.reset)

    # -- public API --------------------------------------------------------------------------------------
    @staticmethod
    def supports(model) -> bool:
        return RegressionSession.supports(model)

    @staticmethod
    def why_not(model) -> str:
        return RegressionSession.why_not(model)

    def set_models(self, model, baseline=None) -> None:
        """Work on ``model``, with ``baseline`` (a model of the same family, usually pretrained) beside it."""
        self._stop_worker()
        self._clear_results()
        note = ""
        try:
            self.session = RegressionSession(model, baseline)
        except PlaygroundError as e:
            if baseline is not None and self.supports(model):  # the model is fine, the baseline is not
                self.session = RegressionSession(model)
                note = f"baseline not used: {e}"
            else:
                self.session = None
                self._show_message(str(e), True)
        s = self.session
        if s is not None:
            for panel in (self.panel, self.base_panel):
                panel.set_range(s.x_range, s.y_range)
            self.shots.blockSignals(True)
            self.shots.setValue(s.shots)
            self.shots.blockSignals(False)
            self.steps_spin.setValue(min(MAX_STEPS, max(10, s.model.rule.steps)))
            # keep points that fit the new family (to compare models on the same points)
            keep = [(x, y) for x, y in zip(self.points_x, self.points_y) if self._fits(x, y)]
            self.points_x = [x for x, _ in keep]
            self.points_y = [y for _, y in keep]
            if self.true is not None:
                (alo, ahi), (plo, phi) = s.amp_range, s.phase_range
                if len(keep) < len(self.points_x) or not (alo <= self.true[0] <= ahi and plo <= self.true[1] <= phi):
                    self.true = None
            self._sync_sliders()
            self.plot.getPlotItem().setTitle(f"{s.model.algorithm} (this model)", size="10pt")
            if s.baseline is not None:
                self.baseline_plot.getPlotItem().setTitle(f"{s.baseline.algorithm} (baseline)", size="10pt")
                self.base_panel.set_note("")
            else:
                self.baseline_plot.getPlotItem().setTitle("baseline", size="10pt")
                self.base_panel.set_note("no pretrained baseline: open one\n"
                                         "(a pretrained bundle of the same family)")
            lines = [f"model — {describe_rule(s.model)}"]
            lines.append(f"baseline — {describe_rule(s.baseline)}" if s.baseline is not None else "baseline — none")
            self.info.setText("\n".join(lines))
            self._show_message(note or "Place support points (or sample K), then press Adapt.", bool(note))
        else:
            self.info.setText("no model")
            self.plot.getPlotItem().setTitle("", size="10pt")
            self.baseline_plot.getPlotItem().setTitle("", size="10pt")
            self.base_panel.set_note("")
        self._redraw_points()
        self._update_controls()

    def busy(self) -> bool:
        return self._thread is not None

    def cancel(self) -> None:
        """Stop the running adaptation: the steps shown so far stay; the controls come back at once."""
        if self._thread is None:
            return
        self._cancel.set()
        self._pending.clear()
        self._finish(cancelled=True)

    def set_points(self, x, y, true: tuple[float, float] | None = None) -> None:
        """Replace the support points (unchecked: Adapt checks them); ``true`` = (A, φ) when known."""
        if self.busy():
            return
        self.points_x = [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
        self.points_y = [float(v) for v in np.asarray(y, dtype=np.float64).reshape(-1)]
        self.true = None if true is None else (float(true[0]), float(true[1]))
        self._points_changed()

    def add_point(self, x: float, y: float) -> bool:
        """Place one support point (as a left-click does); False, with a message, when it is refused."""
        if self.session is None:
            self._show_message("no model: train one or open a bundle", True)
            return False
        if self.busy():
            self._show_message("an adaptation is running: cancel it to change the points", True)
            return False
        try:
            self.session.check_point(float(x), float(y))
        except PlaygroundError as e:
            self._show_message(f"{e}; the point was not placed", True)
            return False
        self.points_x.append(float(x))
        self.points_y.append(float(y))
        self.true = None  # hand-placed: the true function is no longer known
        self._points_changed()
        self._show_message(f"point placed at ({x:.2f}, {y:.2f})", False)
        return True

    def remove_point(self, index: int) -> None:
        if self.busy() or not 0 <= index < len(self.points_x):
            return
        del self.points_x[index], self.points_y[index]
        self._points_changed()  # the rest are still samples of the same function if they were

    def clear_points(self) -> None:
        if self.busy():
            return
        self.points_x, self.points_y, self.true = [], [], None
        self._points_changed()

    def sample(self) -> None:
        """K fresh samples of the sliders' A sin(x − φ)."""
        self._seed += 1
        self._sample(self._seed)

    def reset(self) -> None:
        """Forget the adaptation, keep the points."""
        if self.busy():
            return
        self._clear_results()

    def adapt(self) -> None:
        """Adapt from the meta-learned start for the chosen number of steps, on a worker thread."""
        if self.busy() or not self._ready():
            return
        try:
            adaptation = self.session.start(self.points_x, self.points_y, self.true)
        except PlaygroundError as e:
            self._show_message(str(e), True)
            return
        self._clear_results()
        self._adaptation = adaptation
        n = self.steps_spin.value()
        self._launch(adaptation, n, n, skip=0)

    def step(self) -> None:
        """One more inner step from the state shown (a first press shows the start and one step)."""
        if self.busy() or not self._ready():
            return
        shown = self.results[-1].step if self.results else None
        a = self._adaptation
        worker_gone = self._last_thread is None or not self._last_thread.is_alive()
        if a is not None and shown is not None and a.step == shown and worker_gone:
            self._launch(a, 1, shown + 1, skip=0)
            return
        try:
            a = self.session.start(self.points_x, self.points_y, self.true)
        except PlaygroundError as e:
            self._show_message(str(e), True)
            return
        self._adaptation = a
        if shown is None:  # a fresh adaptation: its start, then one step
            self._clear_results()
            self._launch(a, 1, 1, skip=0)
        else:  # a cancelled run computed ahead of what was shown: redo up to the shown step silently
            self._launch(a, 1, shown + 1, skip=shown)

    # -- the worker ------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        if self.session is None:
            self._show_message("no model: train one or open a bundle", True)
            return False
        try:
            self.session.validate(self.points_x, self.points_y)
        except PlaygroundError as e:
            self._show_message(str(e), True)
            return False
        return True

    def _launch(self, adaptation, n_steps: int, planned: int, skip: int) -> None:
        self._cancel = threading.Event()
        self._queue = queue.Queue()
        self._pending = []
        self._worker_done = False
        self._planned = planned
        self._interval = min(STEP_INTERVAL, ANIMATION / max(1, n_steps))
        self._anim_start = time.monotonic()
        self._anim_shown = 0
        self._thread = threading.Thread(target=_work, name="playground-adapt", daemon=True,
                                        args=(adaptation, n_steps, skip, self._cancel, self._queue))
        self._thread.start()
        self._last_thread = self._thread
        self._update_controls()
        self._show_message(f"adapting: {n_steps} step{'s' if n_steps != 1 else ''}…", False)
        self._timer.start()

    def _drain(self) -> None:
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "step":
                self._pending.append(payload)
            elif kind == "error":
                self._pending.append(PlaygroundError(payload))
            elif kind == "done":
                self._worker_done = True
        due = int((time.monotonic() - self._anim_start) / self._interval) + 1 - self._anim_shown
        new, error = [], None
        while due > 0 and self._pending:
            item = self._pending.pop(0)
            if isinstance(item, PlaygroundError):
                error = item
                self._pending.clear()
                break
            new.append(item)
            due -= 1
        if new:
            self._anim_shown += len(new)
            first = len(self.results)
            self.results.extend(new)
            self._draw(first)
        if error is not None:
            self._finish(error=str(error))
        elif self._worker_done and not self._pending:
            self._finish()

    def _finish(self, cancelled: bool = False, error: str | None = None) -> None:
        thread, self._thread = self._thread, None
        self._timer.stop()
        if thread is not None and cancelled:
            thread.join(0.2)  # the worker stops before its next step (Step never shares a state with it)
        self._worker_done = True
        self._update_controls()
        if error is not None:
            self._show_message(error, True)
        elif cancelled:
            last = self.results[-1].step if self.results else 0
            self._show_message(f"cancelled after {last} step{'s' if last != 1 else ''}", False)
        elif self.results:
            self._show_message(self._summary(), False)
        self.adaptationFinished.emit()

    def _stop_worker(self) -> None:
        if self._thread is not None:
            self.cancel()

    # -- drawing --------------------------------------------------------------------------------------------
    def _draw(self, first_new: int) -> None:
        res = self.results
        total = max(self._planned, res[-1].step)
        self.panel.show(res, first_new, "prediction", total)
        if self.session is not None and self.session.baseline is not None:
            self.base_panel.show(res, first_new, "baseline_prediction", total)
        steps = np.array([r.step for r in res], dtype=np.float64)
        values = []
        for field, item in self.loss_items.items():
            y = np.array([np.nan if getattr(r, field) is None else getattr(r, field) for r in res], dtype=np.float64)
            shown = bool(np.isfinite(y).any())
            if shown:
                y = np.maximum(y, 1e-12)
                item.setData(steps, y)
                values.append(y[np.isfinite(y)])
            else:
                item.setData([], [])
            self._loss_legend(field, shown)
        self._loss_range(total, values)
        last = res[-1]
        self._title(self.plot, self.session.model.algorithm, "this model", last.step, last.support_loss,
                    last.query_loss)
        if last.baseline_support_loss is not None:
            self._title(self.baseline_plot, self.session.baseline.algorithm, "baseline", last.step,
                        last.baseline_support_loss, last.baseline_query_loss)

    @staticmethod
    def _title(widget, algorithm: str, role: str, step: int, support: float, query: float | None) -> None:
        text = f"{algorithm} ({role}), step {step}: support MSE {support:.3g}"
        if query is not None:
            text += f", query MSE {query:.3g}"
        widget.getPlotItem().setTitle(text, size="10pt")

    def _loss_legend(self, field: str, on: bool) -> None:
        """List a loss curve in the legend only while it has data (no 'query' entry without a true function)."""
        legend = self.loss_plot.getPlotItem().legend
        item = self.loss_items[field]
        listed = legend.getLabel(item) is not None
        if on and not listed:
            legend.addItem(item, LOSS_NAMES[field])
        elif listed and not on:
            legend.removeItem(item)

    def _loss_range(self, total: int, values: list) -> None:
        lp = self.loss_plot.getPlotItem()
        if not values:
            return
        v = np.concatenate(values)
        lo, hi = float(np.log10(v.min())), float(np.log10(v.max()))
        view = self._loss_view
        if view is None or view[0] != total or lo < view[1] or hi > view[2]:
            span = max(hi - lo, 0.5)
            self._loss_view = (total, lo - 0.1 * span, hi + 0.1 * span)
            lp.setRange(xRange=(0, max(total, 1)), yRange=self._loss_view[1:], padding=0.03)
            lp.getAxis("left").setTicks(log_ticks(*self._loss_view[1:]))

    def _clear_results(self) -> None:
        self.results = []
        self._adaptation = None
        for panel in (self.panel, self.base_panel):
            panel.clear_steps()
        for field, item in self.loss_items.items():
            item.setData([], [])
            self._loss_legend(field, False)
        self._loss_view = None
        s = self.session
        if s is not None:
            self.plot.getPlotItem().setTitle(f"{s.model.algorithm} (this model)", size="10pt")
            if s.baseline is not None:
                self.baseline_plot.getPlotItem().setTitle(f"{s.baseline.algorithm} (baseline)", size="10pt")

    def _redraw_points(self) -> None:
        for panel in (self.panel, self.base_panel):
            panel.support.setData(self.points_x, self.points_y)
            if self.true is not None and self.session is not None:
                panel.truth.setData(*self.session.true_curve(*self.true))
            else:
                panel.truth.setData([], [])
        if self.session is not None:
            self.panel.set_note("" if self.points_x else "click to place support points\nor press 'Sample K points'")
        n = len(self.points_x)
        if self.true is not None:
            text = (f"{n} point{'s' if n != 1 else ''} sampled from A sin(x − φ), A = {self.true[0]:.2f}, "
                    f"φ = {self.true[1]:.2f}: the true function (dashed) and query loss are known")
        elif n:
            text = f"{n} point{'s' if n != 1 else ''} placed by hand: the true function is unknown"
        else:
            text = "no points yet"
        self.points_label.setText(text)

    # -- points and sliders -------------------------------------------------------------------------------------
    def _fits(self, x: float, y: float) -> bool:
        try:
            self.session.check_point(x, y)
        except PlaygroundError:
            return False
        return True

    def _points_changed(self) -> None:
        self._clear_results()
        self._redraw_points()
        self._update_controls()

    def _slider_values(self) -> tuple[float, float]:
        s = self.session
        (alo, ahi), (plo, phi) = s.amp_range, s.phase_range
        return (alo + (ahi - alo) * self.amp.value() / SLIDER_TICKS,
                plo + (phi - plo) * self.phase.value() / SLIDER_TICKS)

    def _sync_sliders(self) -> None:
        if self.session is None:
            return
        if self.true is not None:
            (alo, ahi), (plo, phi) = self.session.amp_range, self.session.phase_range
            for slider, v, lo, hi in ((self.amp, self.true[0], alo, ahi), (self.phase, self.true[1], plo, phi)):
                slider.blockSignals(True)
                slider.setValue(round(SLIDER_TICKS * (v - lo) / (hi - lo)) if hi > lo else 0)
                slider.blockSignals(False)
        a, p = self._slider_values()
        self.amp_label.setText(f"{a:.2f}")
        self.phase_label.setText(f"{p:.2f}")

    def _sample(self, seed: int) -> None:
        if self.session is None or self.busy():
            return
        amplitude, phase = self._slider_values()
        try:
            x, y = self.session.sample_points(self.shots.value(), amplitude, phase, seed)
        except PlaygroundError as e:
            self._show_message(str(e), True)
            return
        self.points_x, self.points_y = list(map(float, x)), list(map(float, y))
        self.true = (amplitude, phase)
        self._points_changed()

    def _on_slider(self) -> None:
        if self.session is None:
            return
        a, p = self._slider_values()
        self.amp_label.setText(f"{a:.2f}")
        self.phase_label.setText(f"{p:.2f}")
        self._sample(self._seed)  # the same inputs: the points slide along as A and φ change

    def _on_shots(self) -> None:
        if self.true is not None:  # sampled points follow K
            self._sample(self._seed)

    def _on_scene_click(self, event) -> None:
        button = event.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        vb = self.plot.getPlotItem().vb
        pos = event.scenePos()
        if not vb.sceneBoundingRect().contains(pos):
            return
        event.accept()
        if button == Qt.MouseButton.LeftButton:
            p = vb.mapSceneToView(pos)
            self.add_point(p.x(), p.y())
            return
        if self.busy() or not self.points_x:
            return
        scene = [vb.mapViewToScene(pg.Point(x, y)) for x, y in zip(self.points_x, self.points_y)]
        dist = [np.hypot(q.x() - pos.x(), q.y() - pos.y()) for q in scene]
        i = int(np.argmin(dist))
        if dist[i] <= PICK_PIXELS:
            self.remove_point(i)
        else:
            self._show_message("right-click on a point to remove it (or 'Clear points')", False)

    # -- state -------------------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        have = self.session is not None
        busy = self.busy()
        for w in (self.shots, self.steps_spin, self.amp, self.phase, self.sample_button, self.clear_button,
                  self.adapt_button, self.step_button, self.reset_button):
            w.setEnabled(have and not busy)
        self.cancel_button.setEnabled(busy)

    def _summary(self) -> str:
        first, last = self.results[0], self.results[-1]
        n = last.step
        s = self.session
        text = f"{s.model.algorithm}: support MSE {first.support_loss:.3g} → {last.support_loss:.3g}"
        if last.query_loss is not None:
            text += f", query MSE {first.query_loss:.3g} → {last.query_loss:.3g}"
        text += f" after {n} step{'s' if n != 1 else ''}"
        if last.baseline_support_loss is not None:
            text += (f"; {s.baseline.algorithm}: support {first.baseline_support_loss:.3g} → "
                     f"{last.baseline_support_loss:.3g}")
            if last.baseline_query_loss is not None:
                text += f", query {first.baseline_query_loss:.3g} → {last.baseline_query_loss:.3g}"
        return text

    def _show_message(self, text: str, error: bool) -> None:
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #e15759; font-weight: bold;" if error else "")
        self.message.emit(text, error)


def _work(adaptation, n_steps: int, skip: int, cancel: threading.Event, out: queue.Queue) -> None:
    """The worker thread: step the adaptation, put each result into ``out``; never touches a widget."""
    try:
        if skip:
            adaptation.skip(skip, cancel)
        for result in adaptation.run(n_steps, cancel):
            out.put(("step", result))
    except PlaygroundError as e:
        out.put(("error", str(e)))
    except Exception as e:  # noqa: BLE001 — shown in the tab, never a crash
        out.put(("error", f"the adaptation failed: {type(e).__name__}: {e}"))
    finally:
        out.put(("done", None))
