"""The classification playground page: draw a few characters of each class, draw one to classify, and watch
the meta-learned model and the baseline decide, step by step.

* Left: the support set (:class:`~workbench.gui.playground_support.SupportPanel`), a row per class
  (N = the family's ways) with K drawing canvases (:class:`~workbench.gui.playground_canvas.DrawingCanvas`,
  K = its shots; '+' adds one); a canvas records mouse strokes and shows what the model sees, the strokes
  rasterised as the family draws its characters (28×28 for glyphs), with the pen's path faintly over it.
  Right-click undoes a stroke; '×' clears a canvas.  **Sample a new task** fills the canvases with a
  held-out task of the family (its evaluation classes) and one of its query images; drawing over a sampled
  image replaces it.
* Right: the query canvas, the buttons and how the models adapt
  (:class:`~workbench.gui.playground_classification_results.QueryPanel`), and for each inner step the class
  probabilities of the model and of the baseline side by side, the predicted class highlighted (and the
  true one marked when known); the step slider goes through the steps (a model with fewer trained steps
  stays at its last one).

The classification (:class:`workbench.services.playground_classification.ClassificationSession`) runs as a
background job (:class:`~workbench.gui.playground_jobs.PageJob`) that yields a result per step; the
page's timer drains them.  Cancel stops the job at its next step.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from workbench.core.errors import WorkbenchError
from workbench.services.playground_classification import (ClassificationSession, PlaygroundError,
                                                          classification_summary, describe, query_side)

from .playground_canvas import DrawingCanvas, to_qimage
from .playground_classification_results import BAR, PREDICTED, ProbabilityChart, QueryPanel, ResultsPanel
from .playground_jobs import JobFailure, PageJob
from .playground_support import ClassRow, SupportPanel

__all__ = ["BAR", "PREDICTED", "ClassRow", "ClassificationPlayground", "DrawingCanvas", "ProbabilityChart",
           "QueryPanel", "ResultsPanel", "SupportPanel", "to_qimage"]

DRAIN_MS = 33
STOP_WAIT = 2.0  # s: how long Classify waits for a cancelled run to finish its step
MIN_QUERY, MAX_QUERY = 96, 220  # px: the query canvas


def run_steps(session, images, labels, query, cancel):
    """The job: classify step by step, yielding each step's ClassStep."""
    try:
        yield from session.steps(images, labels, query, cancel=cancel)
    except PlaygroundError as e:
        return JobFailure(str(e))
    except Exception as e:  # noqa: BLE001 — shown in the tab, never a crash
        return JobFailure(f"the classification failed: {type(e).__name__}: {e}")
    return None


class ClassificationPlayground(QWidget):
    """The playground page of N-way K-shot image classifiers: draw the support set and a query, classify."""

    message = Signal(str, bool)  # text, is_error
    classificationFinished = Signal()  # the last classification is fully shown, cancelled or failed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("classificationPlayground")
        self.session: ClassificationSession | None = None
        self.query_label: int | None = None  # the sampled query's class, while the query is unchanged
        self.last_message = ("", False)
        self._seed = 0
        self.job = PageJob(self, DRAIN_MS, self._drain, what="classification")

        self.support_panel = SupportPanel()
        self.support_panel.changed.connect(self._on_support_changed)
        self.query_panel = q = QueryPanel()
        self.query = q.canvas
        self.query.changed.connect(self._on_query_changed)
        self.classify_button, self.sample_button = q.classify_button, q.sample_button
        self.clear_button, self.cancel_button, self.info = q.clear_button, q.cancel_button, q.info
        self.classify_button.clicked.connect(self.classify)
        self.sample_button.clicked.connect(self.sample_task)
        self.clear_button.clicked.connect(self.clear_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.results_panel = ResultsPanel()
        self.model_chart, self.baseline_chart = self.results_panel.model_chart, self.results_panel.baseline_chart
        self.slider = self.results_panel.slider
        right = QVBoxLayout()
        right.addWidget(self.query_panel)
        right.addWidget(self.results_panel, 1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.support_panel)
        lay.addLayout(right, 1)
        self._update_controls()

    @property
    def rows(self) -> list[ClassRow]:
        return self.support_panel.rows

    @property
    def results(self) -> list:
        """The ClassStep results of the last classification, as shown."""
        return self.results_panel.results

    # -- what the container calls ------------------------------------------------------------------------
    @staticmethod
    def supports(model) -> bool:
        return ClassificationSession.supports(model)

    @staticmethod
    def why_not(model) -> str:
        """Why this page cannot play with ``model`` ("" if it can, or if the model is not an image classifier
        at all: another page's business)."""
        if getattr(getattr(model, "family", None), "kind", None) != "classification":
            return ""
        return ClassificationSession.why_not(model)

    def set_models(self, model, baseline=None) -> None:
        """Work on ``model``, with ``baseline`` (a model of the same family, usually pretrained) beside it.
        Drawings are kept when the new model takes the same classes and images."""
        self.cancel()
        note = ""
        try:
            session = ClassificationSession(model, baseline)
        except PlaygroundError as e:
            session = None
            if baseline is not None and self.supports(model):  # the model is fine, the baseline is not
                session, note = ClassificationSession(model), f"baseline not used: {e}"
            else:
                self._say(str(e), True)
        old, self.session = self.session, session
        if session is None:
            self.info.setText("no model")
            self._update_controls()
            return
        same = old is not None and (old.ways, old.shots, old.image_shape) == (
            session.ways, session.shots, session.image_shape)
        if not same:
            self.support_panel.build(session.ways, session.shots)
            self.results_panel.set_classes(session.ways)
            self.query.set_image(None)
            self.query_label = None
        self.support_panel.set_rasterizer(session.rasterize)
        self.query.set_rasterizer(session.rasterize)
        self._clear_results()
        lines = [f"model — {describe(session.model)}",
                 f"baseline — {describe(session.baseline)}" if session.baseline is not None else "baseline — none"]
        self.info.setText("\n".join(lines))
        self._say(note or "Draw each class and a query (or sample a task), then press Classify.", bool(note))
        self._update_controls()

    def busy(self) -> bool:
        return self.job.busy

    def cancel(self) -> None:
        """Stop the running classification: the steps shown so far stay."""
        if not self.job.busy:
            return
        self.job.cancel(wait=0.2)
        self._finish(cancelled=True)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel and join the page's jobs (the window is closing)."""
        self.cancel()
        return self.job.shutdown(timeout)

    # -- the buttons -------------------------------------------------------------------------------------
    def task_samples(self):
        """The support drawings as :class:`~workbench.services.adapt.Samples` (Export adapted model…)."""
        from workbench.services.adapt import Samples

        if self.session is None:
            raise PlaygroundError("no model: train one or open a bundle")
        images, labels = self.support_panel.drawings()
        xs, ys, _ = self.session.validate(images, labels, images[0] if len(images) else None)
        return Samples(xs.numpy(), ys.numpy(), f"{len(ys)} playground drawings")

    def classify(self) -> None:
        """Classify the query from the support drawings, in the background."""
        if self.busy():
            return
        if self.session is None:
            self._say("no model: train one or open a bundle", True)
            return
        if self.job.finishing() and not self.job.wait_last(STOP_WAIT):  # they would share the network
            self._say("the cancelled classification is still finishing a step: try again in a moment", True)
            return
        images, labels = self.support_panel.drawings()
        query = self.query.image()
        try:
            self.session.validate(images, labels, query)
        except PlaygroundError as e:
            self._say(str(e), True)
            return
        self._clear_results()
        self.job.start(run_steps, self.session, images, labels, query, name="playground-classify")
        self.results_panel.running = True
        self._update_controls()
        self._say("classifying…", False)

    def sample_task(self) -> None:
        """Fill the canvases with a new held-out task and one of its query images."""
        if self.session is None or self.busy():
            return
        self._seed += 1
        try:
            task = self.session.sample_task(self._seed)
        except (WorkbenchError, ValueError) as e:  # a data set's image that does not decode: a ConfigError
            self._say(f"cannot sample a task: {e}", True)
            return
        self.support_panel.set_task(task.images, task.labels)
        self.query.set_image(task.query)
        self.query_label = task.query_label
        self._clear_results()
        names = ", ".join(f"{i + 1}: {n}" for i, n in enumerate(task.class_names))
        self._say(f"A held-out task ({names}); the query is a drawing of class {task.query_label + 1} (✓). "
                  f"Press Classify, or draw over any image.", False)

    def clear_all(self) -> None:
        if self.busy() or self.session is None:
            return
        self.support_panel.clear()
        self.query.set_image(None)
        self.query_label = None
        self._clear_results()
        self._say("Cleared: draw each class and a query", False)

    # -- results -----------------------------------------------------------------------------------------
    def _on_support_changed(self) -> None:
        if self.results:
            self._say("The support set changed: press Classify again", False)

    def _on_query_changed(self) -> None:
        self.query_label = None  # drawn over: no longer the sampled image
        self.results_panel.set_truth(None)
        if self.results:
            self._say("The query changed: press Classify again", False)

    def _clear_results(self) -> None:
        self.results_panel.running = False
        self.results_panel.clear(self.session, self.query_label)

    def _drain(self) -> None:
        new = self.job.drain()
        if new:
            self.results_panel.add(new)
        if self.job.done:
            self._finish(error=self.job.error)

    def _finish(self, cancelled: bool = False, error: str | None = None) -> None:
        self.job.stop()
        self.results_panel.running = False
        self._update_controls()
        if error is not None:
            self._say(error, True)
        elif cancelled:
            self._say(f"cancelled after {max(0, len(self.results) - 1)} steps", False)
        elif self.results:
            self.results_panel.show_step(self.slider.value())
            s = self.session
            self._say(classification_summary(self.results[-1], s.model.algorithm,
                                             s.baseline.algorithm if s.baseline else None, self.query_label), False)
        self.classificationFinished.emit()

    def _update_controls(self) -> None:
        self.query_panel.set_enabled(self.session is not None, self.busy())

    def _say(self, text: str, error: bool) -> None:
        self.last_message = (text, error)
        self.message.emit(text, error)

    # -- sizes -------------------------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.support_panel.max_width = int(0.45 * self.width())
        self.support_panel.fit()
        self.query.set_side(query_side(self.width(), self.height(), self.support_panel.width(), MIN_QUERY, MAX_QUERY))

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)
