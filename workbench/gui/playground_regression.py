"""The sinusoid playground page: place support points, adapt, and watch the prediction step by step.

Left: the controls (:class:`~workbench.gui.playground_regression_controls.RegressionControls`), buttons
first, so that no text that changes moves them.  Right, filling the page: the model adapting to the support
points beside the same adaptation from the baseline (usually the pretrained bundle), each with the inner
rule it was trained with, their legend under them, and the support (and, when the true function is known,
query) loss per step below (:mod:`workbench.gui.playground_regression_views`).

The adaptation runs in :mod:`workbench.services.playground_regression` as a background job
(:class:`~workbench.gui.playground_jobs.PageJob` on :mod:`workbench.gui.jobs`) that yields one
:class:`StepResult` per step; the page's timer drains them and shows a new step at most every 60 ms
(:class:`~workbench.services.playground_regression.StepPacer`), so the steps animate.  Cancel stops the
job at its next step.
"""
from __future__ import annotations

import time

import numpy as np

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from workbench.services.playground_regression import (PlaygroundError, RegressionSession, StepPacer, SupportSet,
                                                      adaptation_summary, describe_rule)

from .playground_jobs import JobFailure, PageJob
from .playground_regression_controls import COLUMN_WIDTH, MAX_STEPS, RegressionControls
from .playground_regression_views import RegressionViews
from .plots import scrolling_column

DRAIN_MS = 33
PICK_PIXELS = 25  # a right-click this close to a point removes it


def run_steps(adaptation, n_steps: int, skip: int, cancel):
    """The job: (silently) redo ``skip`` steps, then yield the state and ``n_steps`` more steps."""
    try:
        if skip:
            adaptation.skip(skip, cancel)
        yield from adaptation.run(n_steps, cancel)
    except PlaygroundError as e:
        return JobFailure(str(e))
    except Exception as e:  # noqa: BLE001 — shown in the page, never a crash
        return JobFailure(f"the adaptation failed: {type(e).__name__}: {e}")
    return None


class RegressionPlayground(QWidget):
    """The sinusoid playground: works on any supervised 1-D regression model with a known true function."""

    message = Signal(str, bool)  # text, is_error
    adaptationFinished = Signal()  # the last adaptation (or step) is fully shown, cancelled or failed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("sinusoidPlayground")
        self.session: RegressionSession | None = None
        self.results: list = []  # StepResult of the last adaptation, as shown
        self.support = SupportSet()
        self._seed = 0
        self._adaptation = None  # core Adaptation, kept for Step
        self._pending: list = []
        self._planned = 0
        self._pacer = StepPacer()
        self.job = PageJob(self, DRAIN_MS, self._drain)

        self.controls = c = RegressionControls()
        for name in ("shots", "steps_spin", "amp", "phase", "amp_label", "phase_label", "sample_button",
                     "clear_button", "adapt_button", "step_button", "cancel_button", "reset_button", "points_label",
                     "message_label", "info"):
            setattr(self, name, getattr(c, name))
        self.views = v = RegressionViews()
        self.panel, self.base_panel, self.loss, self.legend = v.panel, v.base_panel, v.loss, v.legend
        self.plot, self.baseline_plot, self.loss_plot = self.panel.widget, self.base_panel.widget, self.loss.widget
        self.loss_items = self.loss.items
        self.plot.setCursor(Qt.CursorShape.CrossCursor)
        self.plot.setToolTip("Left-click: place a support point; right-click on a point: remove it")
        self.plot.scene().sigMouseClicked.connect(self._on_scene_click)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.column = scrolling_column(c, COLUMN_WIDTH)  # scrolls only in a window smaller than the page's
        lay.addWidget(self.column)
        lay.addWidget(v, 1)

        c.shots.valueChanged.connect(self._on_shots)
        c.amp.valueChanged.connect(self._on_slider)
        c.phase.valueChanged.connect(self._on_slider)
        c.sample_button.clicked.connect(self.sample)
        c.clear_button.clicked.connect(self.clear_points)
        c.adapt_button.clicked.connect(self.adapt)
        c.step_button.clicked.connect(self.step)
        c.cancel_button.clicked.connect(self.cancel)
        c.reset_button.clicked.connect(self.reset)
        self._update_controls()
        self._redraw_points()

    # the support points, as the tests and the tab read them
    points_x = property(lambda self: self.support.x)
    points_y = property(lambda self: self.support.y)
    true = property(lambda self: self.support.true)

    # -- public API --------------------------------------------------------------------------------------
    @staticmethod
    def supports(model) -> bool:
        return RegressionSession.supports(model)

    @staticmethod
    def why_not(model) -> str:
        return RegressionSession.why_not(model)

    def set_models(self, model, baseline=None) -> None:
        """Work on ``model``, with ``baseline`` (a model of the same family, usually pretrained) beside it."""
        self.cancel()
        note = ""
        try:
            self.session = RegressionSession(model, baseline)
        except PlaygroundError as e:
            if baseline is not None and self.supports(model):  # the model is fine, the baseline is not
                self.session, note = RegressionSession(model), f"baseline not used: {e}"
            else:
                self.session = None
                self._show_message(str(e), True)
        self._clear_results()
        s = self.session
        if s is not None:
            self.views.set_ranges(s)
            self.shots.blockSignals(True)
            self.shots.setValue(s.shots)
            self.shots.blockSignals(False)
            self.steps_spin.setValue(min(MAX_STEPS, max(10, s.model.rule.steps)))
            self.support.keep_fitting(s)  # the same points for the next model, to compare them
            self.controls.show_task(s.amp_range, s.phase_range, self.support.true)
            self.info.setText(f"model — {describe_rule(s.model)}\nbaseline — "
                              + (describe_rule(s.baseline) if s.baseline is not None else "none"))
            self._show_message(note or "Place support points (or sample K), then press Adapt.", bool(note))
        else:
            self.info.setText("no model")
        self._redraw_points()
        self._update_controls()

    def busy(self) -> bool:
        return self.job.busy

    def cancel(self) -> None:
        """Stop the running adaptation: the steps shown so far stay; the controls come back at once."""
        if not self.job.busy:
            return
        self.job.cancel(wait=0.2)  # the job stops before its next step (Step never shares a state with it)
        self._pending.clear()
        self._finish(cancelled=True)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel and join the page's jobs (the window is closing)."""
        self.cancel()
        return self.job.shutdown(timeout)

    def set_points(self, x, y, true: tuple[float, float] | None = None) -> None:
        """Replace the support points (unchecked: Adapt checks them); ``true`` = (A, φ) when known."""
        if self.busy():
            return
        self.support.replace(x, y, true)
        self._points_changed()

    def show_task(self, values: dict) -> str:
        """K samples of the task {amplitude, phase} (a Task map cell; beyond the sliders' range too)."""
        s = self.session
        if s is None or self.busy():
            return "an adaptation is running: cancel it first" if s is not None else "no model"
        a, p = float(values["amplitude"]), float(values["phase"])
        try:
            x, y = s.sample_points(self.shots.value(), a, p, seed=self._seed)
        except PlaygroundError as e:  # beyond the task map's reach too
            return str(e)
        self.set_points(x, y, (a, p))
        self.controls.show_task(s.amp_range, s.phase_range, (a, p))
        self.controls.amp_label.setText(f"{a:.2f}")  # the task's own values (beyond the slider's end too)
        self.controls.phase_label.setText(f"{p:.2f}")
        return f"the task A = {a:.2f}, φ = {p:.2f} from the task map: press Adapt"

    def task_samples(self):
        """The support points as :class:`~workbench.services.adapt.Samples` (Export adapted model…)."""
        from workbench.services.adapt import Samples

        if self.session is None or not len(self.support):
            raise PlaygroundError("place or sample support points first")
        x = np.asarray(self.support.x, dtype=np.float32)[:, None]
        return Samples(x, np.asarray(self.support.y, dtype=np.float32)[:, None], f"{len(x)} playground points")

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
        self.support.add(x, y)  # hand-placed: the true function is no longer known
        self._points_changed()
        self._show_message(f"point placed at ({x:.2f}, {y:.2f})", False)
        return True

    def remove_point(self, index: int) -> None:
        if not self.busy() and self.support.remove(index):
            self._points_changed()  # the rest are still samples of the same function if they were

    def clear_points(self) -> None:
        if not self.busy():
            self.support.clear()
            self._points_changed()

    def sample(self) -> None:
        """K fresh samples of the sliders' A sin(x − φ)."""
        self._seed += 1
        self._sample(self._seed)

    def reset(self) -> None:
        """Forget the adaptation, keep the points."""
        if not self.busy():
            self._clear_results()

    def adapt(self) -> None:
        """Adapt from the meta-learned start for the chosen number of steps, in the background."""
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
        if a is not None and shown is not None and a.step == shown and not self.job.finishing():
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

    # -- the job -----------------------------------------------------------------------------------------
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
        self._pending = []
        self._planned = planned
        self._pacer.start(n_steps, time.monotonic())
        self.job.start(run_steps, adaptation, n_steps, skip, name="playground-adapt")
        self._update_controls()
        self._show_message(f"adapting: {n_steps} step{'s' if n_steps != 1 else ''}…", False)

    def _drain(self) -> None:
        self._pending.extend(self.job.drain())
        due = self._pacer.due(time.monotonic())
        new, self._pending = self._pending[:due], self._pending[due:]
        if new:
            self._pacer.showed(len(new))
            first = len(self.results)
            self.results.extend(new)
            self._draw(first)
        if self.job.done and not self._pending:
            self._finish(error=self.job.error)

    def _finish(self, cancelled: bool = False, error: str | None = None) -> None:
        self.job.stop()
        self._update_controls()
        if error is not None:
            self._show_message(error, True)
        elif cancelled:
            last = self.results[-1].step if self.results else 0
            self._show_message(f"cancelled after {last} step{'s' if last != 1 else ''}", False)
        elif self.results:
            s = self.session
            self._show_message(adaptation_summary(self.results, s.model.algorithm,
                                                  s.baseline.algorithm if s.baseline else None), False)
        self.adaptationFinished.emit()

    # -- drawing -----------------------------------------------------------------------------------------
    def _draw(self, first_new: int) -> None:
        total = max(self._planned, self.results[-1].step)
        self.views.draw(self.results, first_new, total, self.session)

    def _clear_results(self) -> None:
        self.results = []
        self._adaptation = None
        self.views.clear(self.session)

    def _redraw_points(self) -> None:
        self.views.show_points(self.support, self.session)
        self.points_label.setText(self.support.describe())

    # -- points and sliders ------------------------------------------------------------------------------
    def _points_changed(self) -> None:
        self._clear_results()
        self._redraw_points()
        self._update_controls()

    def _sample(self, seed: int) -> None:
        s = self.session
        if s is None or self.busy():
            return
        amplitude, phase = self.controls.task_values(s.amp_range, s.phase_range)
        try:
            x, y = s.sample_points(self.shots.value(), amplitude, phase, seed)
        except PlaygroundError as e:
            self._show_message(str(e), True)
            return
        self.support.replace(x, y, (amplitude, phase))
        self._points_changed()

    def _on_slider(self) -> None:
        if self.session is not None:
            self.controls.show_task(self.session.amp_range, self.session.phase_range, None)
            self._sample(self._seed)  # the same inputs: the points slide along as A and φ change

    def _on_shots(self) -> None:
        if self.true is not None:  # sampled points follow K
            self._sample(self._seed)

    def _on_scene_click(self, event) -> None:
        button = event.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        pos = event.scenePos()
        at = self.panel.data_at(pos)
        if at is None:
            return
        event.accept()
        if button == Qt.MouseButton.LeftButton:
            self.add_point(*at)
            return
        if self.busy() or not len(self.support):
            return
        i, dist = self.support.nearest(*self.panel.to_scene(self.points_x, self.points_y), pos.x(), pos.y())
        if dist <= PICK_PIXELS:
            self.remove_point(i)
        else:
            self._show_message("right-click on a point to remove it (or 'Clear points')", False)

    # -- state -------------------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        self.controls.set_state(self.session is not None, self.busy())

    def _show_message(self, text: str, error: bool) -> None:
        self.controls.show_message(text, error)
        self.message.emit(text, error)

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)
