"""The Playground page of the RL families: make a task by hand, watch the policy adapt to it, beside the
same adaptation from a pretrained baseline.

* 2D navigation: a left click on either plot sets the goal (the goal sliders follow) and starts the
  adaptation; the plots draw the trajectories before and after each step (red = before, greener = later)
  from the origin to the goal star.  The meta-learned model is on the left, the baseline on the right.
* CartPole / Pendulum physics, HalfCheetah: sliders for the physics or the goal velocity / direction, then
  **Adapt**; the frames of an episode before and after adaptation play side by side, model above,
  baseline below, each at least 160 px tall.
* RL² and PEARL adapt in their hidden state / posterior: their "steps" are the episodes of a trial or the
  episodes of context, and the views say so.

Left: the controls (:mod:`workbench.gui.playground_rl_controls`) and under them the return per step;
right: the views (:mod:`workbench.gui.playground_rl_views`).  The adaptation
(:class:`workbench.services.playground_rl.RLSession`) runs as a background job
(:class:`~workbench.gui.playground_jobs.PageJob`) that never touches a widget; **Cancel** sets the event
the algorithm checks between steps / episodes, and the controls come back when the job has stopped.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QWidget

from workbench.core.errors import Cancelled, ConfigError, WorkbenchError
from workbench.core.payloads import Frames, Trajectories2D
from workbench.services.playground_rl import RLSession, returns_view, summary

from .playground_jobs import JobFailure, PageJob
from .playground_rl_controls import COLUMN_WIDTH, RLControls
from .playground_rl_views import FramesPage, NavigationPage
from .plots import PALETTE, make_plot, scrolling_column

DRAIN_MS = 30
MODEL_COLOR, BASELINE_COLOR = PALETTE[0], PALETTE[1]


def run_session(session, values, steps, trajectories, cancel):
    """The job: adapt, and return the RLResult (or a JobFailure with what went wrong)."""
    try:
        return session.run(values, steps, cancel, trajectories)
    except Cancelled:
        return None
    except WorkbenchError as e:
        return JobFailure(f"The adaptation failed: {e}")
    except Exception as e:  # noqa: BLE001 — a bug or a broken bundle: said in the tab, never a crash
        return JobFailure(f"The adaptation failed: {type(e).__name__}: {e}")


class RLPlayground(QWidget):
    """The RL families' playground page.  ``set_models(model, baseline)`` then click / Adapt."""

    message = Signal(str, bool)  # text, is it an error
    adapted = Signal(object)  # the RLResult shown
    finished = Signal(str)  # "done", "cancelled" or "error": the job is gone and the controls are back

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("rlPlayground")
        self.session: RLSession | None = None
        self.model = self.baseline = None
        self.result = None
        self.trajectories: int | None = None  # trajectories per step (trials for RL² / PEARL); None: the model's
        self._values: dict[str, float] = {}
        self._started = 0.0
        self._navigation = False
        self._cancelling = False
        self.job = PageJob(self, DRAIN_MS, self._drain)

        self.returns = make_plot("playgroundReturnPlot", "inner step", "return")
        rp = self.returns.getPlotItem()
        self.model_curve = rp.plot(pen=pg.mkPen(MODEL_COLOR, width=2.5), symbol="o", symbolSize=8,
                                   symbolBrush=MODEL_COLOR, symbolPen=None)
        self.baseline_curve = rp.plot(pen=pg.mkPen(BASELINE_COLOR, width=2, style=Qt.PenStyle.DashLine), symbol="s",
                                      symbolSize=7, symbolBrush=BASELINE_COLOR, symbolPen=None)
        self.returns.setMinimumHeight(100)
        self.returns.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.returns.setMenuEnabled(False)

        self.controls = c = RLControls(chart=self.returns)  # the chart under the controls: the views get the height
        for name in ("header", "task_hint", "steps_spin", "run_button", "cancel_button", "status", "summary",
                     "message_label"):
            setattr(self, name, getattr(c, name))
        c.run_button.clicked.connect(self.start)
        c.cancel_button.clicked.connect(self.cancel)

        self.nav_page = NavigationPage()
        self.nav, self.nav_baseline = self.nav_page.nav, self.nav_page.nav_baseline
        for view in (self.nav, self.nav_baseline):
            view.widget.scene().sigMouseClicked.connect(lambda ev, v=view: self._on_plot_click(v, ev))
        self.frames_page = f = FramesPage()
        self.frames, self.frames_baseline, self.frames_baseline_stack = f.frames, f.frames_baseline, f.baseline_stack
        self.view_stack = QStackedWidget()
        self.empty = QLabel("Open an RL model to play with it")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        for w in (self.empty, self.nav_page, self.frames_page):
            self.view_stack.addWidget(w)

        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.column = scrolling_column(c, COLUMN_WIDTH)  # scrolls only in a window smaller than the page's
        lay.addWidget(self.column)
        lay.addWidget(self.view_stack, 1)
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
        self.job.cancel()  # whatever is still running is no longer shown
        self._cancelling = False
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
            self.controls.clear_rows()
            self._values = {}
            self.view_stack.setCurrentWidget(self.empty)
            self.empty.setText(str(e))
            self._set_enabled(False)
            self.say(str(e), True)
            return False
        self.session, self.model, self.baseline, self.result = session, model, baseline, None
        self.controls.build_rows(session.controls(), self._on_slider)
        self._values = {row.param.name: row.param.default for row in self.controls.rows}
        fam = session.family
        self._navigation = {"goal_x", "goal_y"} <= set(self._values)
        self.controls.set_steps(session.steps_control())
        self._reset_returns(session.steps_control().label)
        self.summary.setText("")
        self.status.setText("")
        self.header.setText(getattr(fam, "title", "") or "Task")
        base_name = baseline.algorithm if baseline is not None else None
        if self._navigation:
            c = fam.cfg
            lo, hi = min(c.goal_low, -0.1) - 0.1, max(c.goal_high, 0.1) + 0.1
            for view, title in ((self.nav, f"Meta-learned: {model.algorithm}"),
                                (self.nav_baseline, f"Pretrained baseline: {base_name}" if base_name
                                 else "No pretrained baseline: choose one under Baseline")):
                view.set_range(lo, hi, c.goal_low, c.goal_high)
                view.clear_paths()
                view.set_goal(self._values["goal_x"], self._values["goal_y"])
                view.caption.setText(title)
            self.view_stack.setCurrentWidget(self.nav_page)
            self.task_hint.setText(f"Click a goal on either plot (inside the dashed square, "
                                   f"[{c.goal_low:g}, {c.goal_high:g}]²), or set it here and press Adapt.")
        else:
            self.frames_page.set_names(fam.title, model.algorithm, base_name)
            self.view_stack.setCurrentWidget(self.frames_page)
            self.task_hint.setText("Set the task, then press Adapt.")
        self._set_enabled(True)
        self.say("")
        return True

    def busy(self) -> bool:
        return self.job.busy

    def cancel(self) -> None:
        """Ask the running adaptation to stop (the controls come back when it has)."""
        if self.busy() and not self._cancelling:
            self._cancelling = True
            self.job.request_stop()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling…")

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel and join the page's jobs (the window is closing)."""
        self.frames.timer.stop()
        self.frames_baseline.timer.stop()
        ended = self.job.shutdown(timeout)
        self._cancelling = False
        self._set_enabled(True)
        return ended

    # -- messages -------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.controls.show_message(text, error)
        if text:
            self.message.emit(text, error)

    def message_text(self) -> str:
        return self.message_label.text()

    # -- the task controls ----------------------------------------------------------------------------
    def _on_slider(self, row) -> None:
        row.value = row.slider_value()
        row.update_label()
        self._values[row.param.name] = row.value
        self._show_goal()

    def _show_goal(self) -> None:
        if self._navigation:
            for view in (self.nav, self.nav_baseline):
                view.set_goal(self._values["goal_x"], self._values["goal_y"])

    def values(self) -> dict:
        return dict(self._values)

    def set_values(self, values: dict) -> None:
        """Set task parameters (not checked here: :meth:`start` checks them)."""
        for row in self.controls.rows:
            if row.param.name in values:
                row.set_value(float(values[row.param.name]))
                self._values[row.param.name] = float(values[row.param.name])
        self._show_goal()

    def task_samples(self):
        """The task row (1, P) of the controls (Export adapted model…); ConfigError when out of range."""
        if self.session is None:
            raise ConfigError("no model: train one or open a bundle")
        return self.session.check(self.values())

    def show_task(self, values: dict) -> str:
        """Set the task of a Task map cell: values beyond the family's range move to its nearest end."""
        if self.session is None:
            return "no model"
        moved = {}
        for p in self.session.controls():
            if p.name in values and p.kind == "float":
                v = float(values[p.name])
                if not p.low <= v <= p.high:
                    moved[p.name] = (v, min(max(v, p.low), p.high))
                values = {**values, p.name: min(max(v, p.low), p.high)}
        self.set_values(values)
        note = "; ".join(f"{k} {a:.3g} is beyond the range the playground makes tasks in, {b:.3g} is the nearest"
                         for k, (a, b) in moved.items())
        return f"the task from the task map{': ' + note if note else ''}; press Adapt"

    def _set_enabled(self, idle: bool) -> None:
        """idle: the controls work and Cancel does not; busy: the reverse (the plots stay clickable, a click
        while busy says to wait or cancel)."""
        self.controls.set_state(idle, self.session is not None)

    # -- navigation clicks ----------------------------------------------------------------------------
    def _on_plot_click(self, view, ev) -> None:
        if not self._navigation or self.session is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        at = view.data_at(ev.scenePos())
        if at is not None:
            ev.accept()
            self.click_goal(*at)

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
        """Adapt to the task of the controls in the background; False (with the reason) if it cannot start."""
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
        self._cancelling = False
        self._started = time.monotonic()
        self.job.start(run_session, self.session, values, steps, self.trajectories, name="rl-playground")
        self._set_enabled(False)
        self.status.setText("adapting…")
        self.say("")
        return True

    def _drain(self) -> None:
        """The GUI side of the job (QTimer): when it has ended, show its outcome."""
        if not self.job.done:
            if not self._cancelling:
                self.status.setText(f"adapting… {time.monotonic() - self._started:.1f} s")
            return
        value, error, cancelled = self.job.value, self.job.error, self._cancelling
        self.job.stop()
        self._cancelling = False
        self._set_enabled(True)
        if cancelled or (value is None and error is None):
            kind = "cancelled"
            self.status.setText("cancelled")
            self.say("Adaptation cancelled")
        elif error is not None:
            kind = "error"
            self.status.setText("failed")
            self.say(error, True)
        else:
            kind = "done"
            self.status.setText(f"done in {value.seconds:.1f} s")
            self._show(value)
            self.adapted.emit(value)
        self.finished.emit(kind)

    # -- showing a result -----------------------------------------------------------------------------
    def _reset_returns(self, step_label: str) -> None:
        rp = self.returns.getPlotItem()
        if rp.legend is not None:
            rp.legend.clear()
            rp.legend.addItem(self.model_curve, f"meta-learned ({self.model.algorithm})")
            if self.baseline is not None:
                rp.legend.addItem(self.baseline_curve, f"baseline ({self.baseline.algorithm})")
        rp.setLabel("bottom", step_label)
        self.model_curve.setData([], [])
        self.baseline_curve.setData([], [])

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
        view = returns_view(result)
        rp.getAxis("bottom").setTicks([view.ticks] if view.ticks is not None else None)
        if view.y_range is not None:
            rp.setRange(xRange=view.x_range, yRange=view.y_range, padding=0)
        if isinstance(result.payload, Trajectories2D):
            self.nav_page.show_result(result)
        elif isinstance(result.payload, Frames):
            self.frames_page.show_frames(result.payload, result.baseline_payload)

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)

    def sizeHint(self):
        return QSize(1280, 760)
