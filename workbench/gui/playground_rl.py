"""The Playground page of the RL families: make a task by hand, watch the policy adapt to it, beside the
same adaptation from a pretrained baseline.

* 2D navigation: a left click on either plot sets the goal (the goal sliders follow) and starts the
  adaptation; the plots draw the trajectories before and after each step (red = before, greener = later)
  from the origin to the goal star.  The meta-learned model is on the left, the baseline on the right.
* CartPole / Pendulum physics, HalfCheetah: sliders for the physics or the goal velocity / direction, then
  **Adapt**; the frames of an episode before and after adaptation play side by side, model and baseline.
* RL² and PEARL adapt in their hidden state / posterior: their "steps" are the episodes of a trial or the
  episodes of context, and the views say so.

The adaptation (:class:`workbench.services.playground_rl.RLSession`) runs on a worker thread that never touches
a widget: its result goes into a queue that a QTimer drains on the GUI thread.  **Cancel** sets an event
the algorithm checks between steps / episodes; the controls come back as soon as the worker says it stopped.
"""
from __future__ import annotations

import queue
import threading
import time
import traceback

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (QFormLayout, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from workbench.core.errors import Cancelled, ConfigError, WorkbenchError
from workbench.core.payloads import Frames, Trajectories2D
from workbench.services.playground_rl import RLSession, summary

from .plots import PALETTE, FramesRenderer, _step_color, make_plot, scrolling_column

SLIDER_TICKS = 1000
DRAIN_MS = 30
MODEL_COLOR, BASELINE_COLOR = PALETTE[0], PALETTE[1]
GOAL_COLOR = "#edc948"
STYLE = """
QLabel#playgroundRLMessage[error="true"] { color: #e15759; }
QLabel#playgroundRLHeader { font-weight: bold; }
"""


def _run_session(session, values, steps, trajectories, cancel, out: queue.Queue, job: int) -> None:
    """The worker thread: adapt, and leave the outcome in ``out`` (no widget is touched here)."""
    try:
        result = session.run(values, steps, cancel, trajectories)
    except Cancelled:
        out.put(("cancelled", job, None))
    except WorkbenchError as e:
        out.put(("error", job, str(e)))
    except Exception as e:  # a bug or a broken bundle: said in the tab, never a crash
        out.put(("error", job, f"the adaptation failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"))
    else:
        out.put(("done", job, result))


def _format(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


class _ParamRow:
    """A slider with its label and value label for one TaskParam (a float range, or a choice)."""

    def __init__(self, param, on_change):
        self.param = param
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(f"playgroundParam_{param.name}")
        self.slider.setToolTip(f"{param.label}: {param.describe_range()}")
        self.value_label = QLabel("")
        self.value_label.setObjectName(f"playgroundParamValue_{param.name}")
        self.value_label.setMinimumWidth(70)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if param.kind == "choice":
            self.slider.setRange(0, len(param.choices) - 1)
            self.slider.setPageStep(1)
        else:
            self.slider.setRange(0, SLIDER_TICKS)
            self.slider.setEnabled(param.high > param.low)
        self.value = param.default
        self.set_value(param.default)
        self.slider.valueChanged.connect(lambda _=0: on_change(self))

    def slider_value(self) -> float:
        p, i = self.param, self.slider.value()
        if p.kind == "choice":
            return float(p.choices[i])
        return p.low + (p.high - p.low) * i / SLIDER_TICKS

    def set_value(self, value: float) -> None:
        """Show ``value`` (kept exactly; the slider goes to the nearest tick) without signalling."""
        p = self.param
        self.value = float(value)
        if p.kind == "choice":
            i = int(np.argmin([abs(c - value) for c in p.choices]))
        else:
            i = 0 if p.high <= p.low else int(round((value - p.low) / (p.high - p.low) * SLIDER_TICKS))
        self.slider.blockSignals(True)
        self.slider.setValue(max(self.slider.minimum(), min(self.slider.maximum(), i)))
        self.slider.blockSignals(False)
        self.update_label()

    def update_label(self) -> None:
        p = self.param
        if p.kind == "choice":
            i = int(np.argmin([abs(c - self.value) for c in p.choices]))
            name = p.choice_labels[i] if i < len(p.choice_labels) else ""
            self.value_label.setText(f"{p.choices[i]:+g} {name}".strip())
        else:
            self.value_label.setText(_format(self.value))


def _mean_path(paths: np.ndarray) -> np.ndarray:
    """The mean over trajectories of the positions at each time (a trajectory that ended holds its last
    position): (H+1, 2) from (n, H+1, 2) with NaN after each end."""
    held = paths.copy()
    for traj in held:
        finite = np.isfinite(traj).all(-1)
        if finite.any():
            last = len(finite) - 1 - int(np.argmax(finite[::-1]))
            traj[last + 1:] = traj[last]
    with np.errstate(invalid="ignore"):
        return np.nanmean(held, axis=0)


def _hex(color) -> str:
    c = pg.mkColor(color)
    return f"#{c.red():02x}{c.green():02x}{c.blue():02x}"


def legend_html(names: list[str]) -> str:
    """The navigation plots' legend (a label under them: a legend inside would hide goals)."""
    n = len(names)
    shown = [(s, name) for s, name in enumerate(names) if n <= 6 or s in (0, n - 1)]
    parts = [f'<span style="color:{_hex(_step_color(s, n))}">&#9473;&#9473;</span>&nbsp;{name}' for s, name in shown]
    parts += [f'<span style="color:{GOAL_COLOR}">&#9733;</span>&nbsp;goal',
              '<span style="color:#d0d0d0">&#9679;</span>&nbsp;start',
              '<span style="color:#9696a0">&#9476;&#9476;</span>&nbsp;goal range']
    return ("&nbsp;&nbsp;&nbsp;".join(parts) + "<br><span style='color:#9a9ca5'>thin: the sampled trajectories; "
            "thick: their mean; dots: where each trajectory ended</span>")


class _NavigationView:
    """One navigation plot: the goal range, the trajectories of each step (thin), their mean (thick) and
    their ends (dots), the goal star and the start."""

    def __init__(self, name: str):
        self.widget = make_plot(name, "x", "y")
        self.plot = self.widget.getPlotItem()
        self.plot.legend.setVisible(False)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.widget.setCursor(Qt.CursorShape.CrossCursor)
        self.range_box = pg.PlotDataItem(pen=pg.mkPen((150, 150, 160), width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.range_box)
        self.paths: list[pg.PlotDataItem] = []
        self.means: list[pg.PlotDataItem] = []
        self.ends: list[pg.ScatterPlotItem] = []
        self._names: list[str] = []
        self.start = pg.ScatterPlotItem([0.0], [0.0], size=9, brush=pg.mkBrush("#d0d0d0"), pen=pg.mkPen("#202020"))
        self.goal = pg.ScatterPlotItem(size=22, symbol="star", brush=pg.mkBrush(GOAL_COLOR), pen=pg.mkPen("#202020"))
        self.plot.addItem(self.start)
        self.plot.addItem(self.goal)
        self.goal.setZValue(10)
        self.start.setZValue(9)
        self.bounds = (-0.7, 0.7)

    def set_range(self, lo: float, hi: float, goal_lo: float, goal_hi: float) -> None:
        self.bounds = (lo, hi)
        a, b = goal_lo, goal_hi
        self.range_box.setData([a, b, b, a, a], [a, a, b, b, a])
        self.plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0)

    def set_goal(self, x: float, y: float) -> None:
        self.goal.setData([x], [y])

    def clear_paths(self) -> None:
        for item in self.paths + self.means + self.ends:
            item.setData([], [])

    def _ensure(self, names: list[str]) -> None:
        if names == self._names:
            return
        for item in self.paths + self.means + self.ends:
            self.plot.removeItem(item)
        self._names = list(names)
        self.paths, self.means, self.ends = [], [], []
        n = len(names)
        for s in range(n):
            color = _step_color(s, n)
            faint = pg.mkColor(color)
            faint.setAlpha(90)
            self.paths.append(pg.PlotDataItem(pen=pg.mkPen(faint, width=1), connect="finite"))
            self.means.append(pg.PlotDataItem(pen=pg.mkPen(color, width=3 if s in (0, n - 1) else 2), connect="finite"))
            self.ends.append(pg.ScatterPlotItem(size=8, brush=pg.mkBrush(color), pen=pg.mkPen("#202020")))
        for items, z in ((self.paths, 1), (self.means, 3), (self.ends, 4)):
            for item in items:
                item.setZValue(z)
                self.plot.addItem(item)

    def show(self, payload: Trajectories2D, names: list[str]) -> None:
        paths = np.asarray(payload.paths, dtype=np.float64)[0]  # (S+1, n, H+1, 2)
        self._ensure(names)
        for s in range(len(self.paths)):
            xs = np.concatenate([np.append(p[:, 0], np.nan) for p in paths[s]])
            ys = np.concatenate([np.append(p[:, 1], np.nan) for p in paths[s]])
            self.paths[s].setData(xs, ys)
            mean = _mean_path(paths[s])
            self.means[s].setData(mean[:, 0], mean[:, 1])
            finite = np.isfinite(paths[s]).all(-1)
            last = finite.shape[-1] - 1 - np.argmax(finite[:, ::-1], axis=-1)
            pts = paths[s][np.arange(len(last)), last]
            self.ends[s].setData(pts[:, 0], pts[:, 1])
        goal = np.asarray(payload.goals)[0]
        self.set_goal(float(goal[0]), float(goal[1]))
        self.plot.setRange(xRange=self.bounds, yRange=self.bounds, padding=0)

    def path_ends(self, step: int) -> np.ndarray:
        """The drawn final positions of the trajectories after ``step`` (for tests): (n, 2)."""
        x, y = self.ends[step].getData()
        return np.stack([x, y], 1)


class RLPlayground(QWidget):
    """The RL families' playground page.  ``set_models(model, baseline)`` then click / Adapt."""

    message = Signal(str, bool)  # text, is it an error
    adapted = Signal(object)  # the RLResult shown
    finished = Signal(str)  # "done", "cancelled" or "error": the worker is gone and the controls are back

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("rlPlayground")
        self.setStyleSheet(STYLE)
        self.session: RLSession | None = None
        self.model = self.baseline = None
        self.result = None
        self.trajectories: int | None = None  # trajectories per step (trials for RL² / PEARL); None: the model's
        self._rows: list[_ParamRow] = []
        self._values: dict[str, float] = {}
        self._queue: queue.Queue = queue.Queue()
        self._job = 0  # the id of the newest job; results of older ones are dropped
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._started = 0.0
        self._navigation = False

        # -- the controls column ------------------------------------------------------------------------
        side = QWidget()
        side.setFixedWidth(290)
        col = QVBoxLayout(side)
        col.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("Task")
        self.header.setObjectName("playgroundRLHeader")
        col.addWidget(self.header)
        self.task_hint = QLabel("")
        self.task_hint.setWordWrap(True)
        self.task_hint.setObjectName("playgroundRLHint")
        col.addWidget(self.task_hint)
        self.params_box = QWidget()
        self.params_layout = QGridLayout(self.params_box)
        self.params_layout.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.params_box)
        form = QFormLayout()
        self.steps_label = QLabel("inner steps")
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("playgroundRLStepsSpin")
        form.addRow(self.steps_label, self.steps_spin)
        col.addLayout(form)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Adapt")
        self.run_button.setObjectName("playgroundRLRunButton")
        self.run_button.setToolTip("Collect trajectories on the task, adapt, and show every step")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("playgroundRLCancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        col.addLayout(buttons)
        self.status = QLabel("")
        self.status.setObjectName("playgroundRLStatus")
        col.addWidget(self.status)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #3a3d46;")
        col.addWidget(line)
        self.summary = QLabel("")
        self.summary.setObjectName("playgroundRLSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.summary)
        self.message_label = QLabel("")
        self.message_label.setObjectName("playgroundRLMessage")
        self.message_label.setWordWrap(True)
        col.addWidget(self.message_label)
        col.addStretch(1)

        # -- the views ------------------------------------------------------------------------------------
        self.nav = _NavigationView("playgroundNavigationPlot")
        self.nav_baseline = _NavigationView("playgroundBaselineNavigationPlot")
        for view in (self.nav, self.nav_baseline):
            view.widget.scene().sigMouseClicked.connect(lambda ev, v=view: self._on_plot_click(v, ev))
        nav_page = QWidget()
        nav_lay = QGridLayout(nav_page)
        nav_lay.setContentsMargins(0, 0, 0, 0)
        nav_lay.addWidget(self.nav.widget, 0, 0)
        nav_lay.addWidget(self.nav_baseline.widget, 0, 1)
        self.nav_legend = QLabel(legend_html(["before adaptation", "after 1 step"]))
        self.nav_legend.setObjectName("playgroundNavigationLegend")
        self.nav_legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        nav_lay.addWidget(self.nav_legend, 1, 0, 1, 2)
        nav_lay.setRowStretch(0, 1)

        self.frames = FramesRenderer()
        self.frames.setObjectName("playgroundFrames")
        self.frames_baseline = FramesRenderer()
        self.frames_baseline.setObjectName("playgroundBaselineFrames")
        self.frames_caption = QLabel("")
        self.frames_caption.setObjectName("playgroundFramesCaption")
        self.frames_baseline_caption = QLabel("")
        self.frames_baseline_caption.setObjectName("playgroundBaselineFramesCaption")
        self.frames_baseline_empty = QLabel("No pretrained baseline: choose one under Baseline to compare with")
        self.frames_baseline_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.frames_baseline_empty.setWordWrap(True)
        self.frames_baseline_stack = QStackedWidget()
        self.frames_baseline_stack.addWidget(self.frames_baseline_empty)
        self.frames_baseline_stack.addWidget(self.frames_baseline)
        self.frames_title = QLabel("")
        self.frames_title.setObjectName("playgroundFramesTitle")
        self.frames_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        frames_page = QWidget()  # model above, baseline below: each plays before | after side by side
        fl = QVBoxLayout(frames_page)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.frames_title)
        fl.addWidget(self.frames_caption)
        fl.addWidget(self.frames, 1)
        fl.addWidget(self.frames_baseline_caption)
        fl.addWidget(self.frames_baseline_stack, 1)

        self.view_stack = QStackedWidget()
        self.empty = QLabel("Open an RL model to play with it")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view_stack.addWidget(self.empty)
        self.view_stack.addWidget(nav_page)
        self.view_stack.addWidget(frames_page)
        self.nav_page, self.frames_page = nav_page, frames_page

        self.returns = make_plot("playgroundReturnPlot", "inner step", "return")
        rp = self.returns.getPlotItem()
        self.model_curve = rp.plot(pen=pg.mkPen(MODEL_COLOR, width=2.5), symbol="o", symbolSize=8,
                                   symbolBrush=MODEL_COLOR, symbolPen=None, name="meta-learned")
        self.baseline_curve = rp.plot(pen=pg.mkPen(BASELINE_COLOR, width=2, style=Qt.PenStyle.DashLine), symbol="s",
                                      symbolSize=7, symbolBrush=BASELINE_COLOR, symbolPen=None, name="baseline")
        rp.legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-10, -10))
        self.returns.setMinimumHeight(170)
        self.returns.setMaximumHeight(240)
        self.returns.setMenuEnabled(False)

        views = QVBoxLayout()
        views.setContentsMargins(0, 0, 0, 0)
        views.addWidget(self.view_stack, 1)
        views.addWidget(self.returns)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(scrolling_column(side, 290))
        lay.addLayout(views, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self._drain)
        self._set_enabled(False)

    # -- what the container calls ---------------------------------------------------------------------
    @staticmethod
    def supports(model) -> bool:
        return RLSession.supports(model)

    @staticmethod
    def why_not(model) -> str:
        """Why this page cannot play with ``model`` ("" if it can, or if the model is not an RL policy at all:
        another page's business)."""
        if model.family.kind != "rl":
            return ""
        return RLSession.why_not(model)

    def set_models(self, model, baseline=None) -> bool:
        """Show ``model`` (and ``baseline``, a pretrained bundle of the same family, or None).  False, with
        the reason in the page, when the model has no playground."""
        if self.busy():
            self.cancel()
        self._job += 1  # whatever is still running is no longer shown
        self._thread = None
        self.timer.stop()
        try:
            session = RLSession(model, None)
            if baseline is not None:
                try:
                    session.set_baseline(baseline)
                except ConfigError as e:
                    self.say(f"Baseline not used: {e}", True)
                    baseline = None
        except ConfigError as e:
            self.session = self.model = self.baseline = None
            self._clear_rows()
            self.view_stack.setCurrentWidget(self.empty)
            self.empty.setText(str(e))
            self._set_enabled(False)
            self.say(str(e), True)
            return False
        self.session, self.model, self.baseline, self.result = session, model, baseline, None
        self._build_rows()
        fam = session.family
        self._navigation = {"goal_x", "goal_y"} <= set(self._values)
        ctl = session.steps_control()
        self.steps_label.setText(ctl.label)
        self.steps_spin.setRange(ctl.low, ctl.high)
        self.steps_spin.setValue(ctl.default)
        self.steps_spin.setToolTip({"inner steps": "Policy-gradient steps, each on fresh trajectories",
                                    "episodes in the trial": "RL² adapts in its hidden state over the episodes "
                                                             "of one trial",
                                    "episodes of context": "PEARL infers the task from the episodes it has seen"}
                                   .get(ctl.label, ""))
        model_name = f"meta-learned ({model.algorithm})"
        base_name = f"baseline ({baseline.algorithm})" if baseline is not None else "no baseline"
        rp = self.returns.getPlotItem()
        rp.legend.clear()
        rp.legend.addItem(self.model_curve, model_name)
        if baseline is not None:
            rp.legend.addItem(self.baseline_curve, base_name)
        rp.setLabel("bottom", ctl.label)
        self.model_curve.setData([], [])
        self.baseline_curve.setData([], [])
        self.summary.setText("")
        self.status.setText("")
        if self._navigation:
            c = fam.cfg
            lo, hi = min(c.goal_low, -0.1) - 0.1, max(c.goal_high, 0.1) + 0.1
            for view, title in ((self.nav, f"Meta-learned: {model.algorithm}"),
                                (self.nav_baseline, f"Pretrained baseline: {baseline.algorithm}" if baseline is not None
                                 else "No pretrained baseline: choose one under Baseline")):
                view.set_range(lo, hi, c.goal_low, c.goal_high)
                view.clear_paths()
                view.set_goal(self._values["goal_x"], self._values["goal_y"])
                view.plot.setTitle(title, size="10pt")
            self.view_stack.setCurrentWidget(self.nav_page)
            self.task_hint.setText(f"Click a goal on either plot (inside the dashed square, "
                                   f"[{c.goal_low:g}, {c.goal_high:g}]²), or set it here and press Adapt.")
        else:
            self.frames_title.setText(f"<b>{fam.title}</b>")
            self.frames_caption.setText(f"Meta-learned: {model.algorithm}")
            self.frames_baseline_caption.setText(f"Pretrained baseline: {baseline.algorithm}" if baseline is not None
                                                 else "Baseline")
            self.frames_baseline_stack.setCurrentWidget(self.frames_baseline_empty)
            self.view_stack.setCurrentWidget(self.frames_page)
            self.task_hint.setText(f"{fam.title}: set the task, then press Adapt.")
        self._set_enabled(True)
        self.say("")
        return True

    def busy(self) -> bool:
        return self._thread is not None

    def cancel(self) -> None:
        """Ask the running adaptation to stop (the controls come back when it has)."""
        if self._cancel is not None and self.busy():
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling…")

    # -- messages -------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setProperty("error", error)
        self.message_label.style().unpolish(self.message_label)
        self.message_label.style().polish(self.message_label)
        if text:
            self.message.emit(text, error)

    def message_text(self) -> str:
        return self.message_label.text()

    # -- the task controls ----------------------------------------------------------------------------
    def _clear_rows(self) -> None:
        while self.params_layout.count():
            w = self.params_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self._rows, self._values = [], {}

    def _build_rows(self) -> None:
        self._clear_rows()
        for i, p in enumerate(self.session.controls()):
            row = _ParamRow(p, self._on_slider)
            label = QLabel(p.label)
            label.setToolTip(row.slider.toolTip())
            self.params_layout.addWidget(label, 2 * i, 0)
            self.params_layout.addWidget(row.value_label, 2 * i, 1)
            self.params_layout.addWidget(row.slider, 2 * i + 1, 0, 1, 2)
            self._rows.append(row)
            self._values[p.name] = p.default

    def _on_slider(self, row: _ParamRow) -> None:
        row.value = row.slider_value()
        row.update_label()
        self._values[row.param.name] = row.value
        if self._navigation:
            for view in (self.nav, self.nav_baseline):
                view.set_goal(self._values["goal_x"], self._values["goal_y"])

    def values(self) -> dict:
        return dict(self._values)

    def set_values(self, values: dict) -> None:
        """Set task parameters (not checked here: :meth:`start` checks them)."""
        for row in self._rows:
            if row.param.name in values:
                row.set_value(float(values[row.param.name]))
                self._values[row.param.name] = float(values[row.param.name])
        if self._navigation:
            for view in (self.nav, self.nav_baseline):
                view.set_goal(self._values["goal_x"], self._values["goal_y"])

    def _set_enabled(self, idle: bool) -> None:
        """idle: the controls work and Cancel does not; busy: the reverse (the plots stay clickable, a click
        while busy says to wait or cancel)."""
        has = self.session is not None
        for row in self._rows:
            row.slider.setEnabled(idle and has and (row.param.kind == "choice" or row.param.high > row.param.low))
        self.steps_spin.setEnabled(idle and has)
        self.run_button.setEnabled(idle and has)
        self.cancel_button.setEnabled(not idle and has)

    # -- navigation clicks ----------------------------------------------------------------------------
    def _on_plot_click(self, view: _NavigationView, ev) -> None:
        if not self._navigation or self.session is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = view.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        ev.accept()
        self.click_goal(p.x(), p.y())

    def click_goal(self, x: float, y: float) -> bool:
        """A goal chosen on the plot: set it and adapt, or say why not (out of range, busy)."""
        if self.busy():
            self.say("An adaptation is running: wait for it or press Cancel", True)
            return False
        try:
            self.session.check({**self._values, "goal_x": x, "goal_y": y})
        except ConfigError as e:
            c = self.session.family.cfg
            self.say(f"The goal ({x:.2f}, {y:.2f}) is outside the goal range [{c.goal_low:g}, {c.goal_high:g}]² "
                     f"of this navigation model ({e}); click inside the dashed square", True)
            return False
        self.set_values({"goal_x": x, "goal_y": y})
        return self.start()

    # -- adaptation -----------------------------------------------------------------------------------
    def start(self) -> bool:
        """Adapt to the task of the controls on a worker thread; False (with the reason) if it cannot start."""
        if self.session is None:
            self.say("Open an RL model first", True)
            return False
        if self.busy():
            self.say("An adaptation is running: wait for it or press Cancel", True)
            return False
        values, steps = self.values(), self.steps_spin.value()
        try:
            self.session.check(values)
        except ConfigError as e:
            self.say(str(e), True)
            return False
        self._job += 1
        self._cancel = threading.Event()
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=_run_session, name="rl-playground", daemon=True,
                                        args=(self.session, values, steps, self.trajectories, self._cancel, self._queue,
                                              self._job))
        self._started = time.monotonic()
        self._set_enabled(False)
        self.status.setText("adapting…")
        self.say("")
        self._thread.start()
        self.timer.start()
        return True

    def _drain(self) -> None:
        """The GUI side of the worker (QTimer): show what it left in the queue."""
        try:
            kind, job, data = self._queue.get_nowait()
        except queue.Empty:
            if self.busy() and not self._cancel.is_set():
                self.status.setText(f"adapting… {time.monotonic() - self._started:.1f} s")
            return
        if job != self._job:
            return
        self.timer.stop()
        self._thread = None
        self._set_enabled(True)
        if kind == "done":
            self.status.setText(f"done in {data.seconds:.1f} s")
            self._show(data)
            self.adapted.emit(data)
        elif kind == "cancelled":
            self.status.setText("cancelled")
            self.say("Adaptation cancelled")
        else:
            self.status.setText("failed")
            self.say(f"The adaptation failed: {data}", True)
        self.finished.emit(kind)

    def _show(self, result) -> None:
        self.result = result
        self.summary.setText(summary(result) + (f"\n{result.note}" if result.note else ""))
        rp = self.returns.getPlotItem()
        rp.setLabel("bottom", result.step_label)
        self.model_curve.setData(np.asarray(result.steps, dtype=np.float64), result.returns)
        if result.baseline_returns is not None:
            self.baseline_curve.setData(np.asarray(result.baseline_steps, dtype=np.float64), result.baseline_returns)
        else:
            self.baseline_curve.setData([], [])
        xs = sorted(set(result.steps) | set(result.baseline_steps))
        rp.getAxis("bottom").setTicks([[(float(s), str(s)) for s in xs]] if len(xs) <= 21 else None)
        ys = np.concatenate([result.returns] + ([result.baseline_returns] if result.baseline_returns is not None
                                                else []))
        ys = ys[np.isfinite(ys)]
        if len(ys):
            lo, hi = float(ys.min()), float(ys.max())
            pad = max(0.12 * (hi - lo), 0.5)
            rp.setRange(xRange=(xs[0] - 0.15, xs[-1] + 0.15), yRange=(lo - pad, hi + pad), padding=0)
        if result.payload is None:
            return
        if isinstance(result.payload, Trajectories2D):
            self.nav.show(result.payload, result.step_names)
            self.nav_legend.setText(legend_html(result.step_names))
            self.nav.plot.setTitle(self._nav_title(f"Meta-learned: {result.algorithm}", result.returns,
                                                   result.final_distance), size="10pt")
            if result.baseline_payload is not None:
                self.nav_baseline.show(result.baseline_payload, result.baseline_step_names)
                self.nav_baseline.plot.setTitle(self._nav_title(f"Pretrained baseline: {result.baseline_algorithm}",
                                                                result.baseline_returns,
                                                                result.baseline_final_distance), size="10pt")
            else:
                self.nav_baseline.clear_paths()
        elif isinstance(result.payload, Frames):
            self.frames.show_payload(result.payload)
            self.frames_title.setText(f"<b>{result.payload.title}</b>")
            self.frames_caption.setText(f"Meta-learned: {result.algorithm}")
            if result.baseline_payload is not None:
                self.frames_baseline.show_payload(result.baseline_payload)
                self.frames_baseline_stack.setCurrentWidget(self.frames_baseline)
                self.frames_baseline_caption.setText(f"Pretrained baseline: {result.baseline_algorithm}")
            else:
                self.frames_baseline_stack.setCurrentWidget(self.frames_baseline_empty)

    @staticmethod
    def _nav_title(who: str, returns, distance) -> str:
        text = f"{who}<br>return {returns[0]:.1f} → {returns[-1]:.1f}"
        if distance is not None:
            text += f"; distance to goal {distance[0]:.2f} → {distance[-1]:.2f}"
        return text

    def closeEvent(self, event) -> None:
        if self._cancel is not None:
            self._cancel.set()
        super().closeEvent(event)

    def sizeHint(self):
        return QSize(1280, 760)

