"""The rollout view: the family's render payload, drawn by the renderer registered for its ``view``."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from workbench.core.payloads import ClassifiedImages, Frames, RenderPayload
from workbench.core.plotting import step_names

from ..classification_view import ClassificationRenderer
from .frames import FramesRenderer
from .renderers import BanditRenderer, RegressionRenderer, TrajectoryRenderer, VisitationRenderer

RENDERERS: dict[str, type] = {r.view: r for r in (RegressionRenderer, TrajectoryRenderer, BanditRenderer,
                                                  VisitationRenderer, FramesRenderer,
                                                  ClassificationRenderer)}  # payload view -> renderer
STEPWISE = ("regression-1d", "trajectories-2d")  # views that draw every step, not only the first and last
EXTRA = {"regression-1d": "; dashed: the true function; yellow: the support points",
         "trajectories-2d": "; star: the goal", "bandit-arms": "; diamonds: the arm means"}


def caption(payload: RenderPayload) -> str:
    """One line saying what the colours (or the two sides) of a payload's picture are, in the algorithm's own
    words for its steps ("no context (prior)", "after 3 episodes of context")."""
    names = step_names(payload.steps, payload.step_names)
    if isinstance(payload, Frames):
        index = list(payload.steps)
        first, last = (names[index.index(s)] if s in index else step_names([s])[0]
                       for s in (payload.frame_steps[0], payload.frame_steps[-1]))
        return f"{payload.title or 'one episode of the first held-out task'}: {first} (left) and {last} (right)"
    if isinstance(payload, ClassifiedImages):
        when = " before → after adaptation" if len(payload.steps) > 1 else " with the predicted label"
        return f"a row per class: support, then query images labelled{when} (green: right, red: wrong)"
    later = ", brighter = later" if len(names) > 2 and payload.view in STEPWISE else ""
    return f"red: {names[0]}; green: {names[-1]}{later}{EXTRA.get(payload.view, '')}"


class RolloutView(QWidget):
    """Shows the family's render payload with the renderer registered for its ``view`` (``RENDERERS``), under
    a line naming the evaluation's iteration and a caption saying what the colours are."""

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
        if getattr(renderer, "titles", None) is not None:
            renderer.titles.fit()
        self.stack.setCurrentWidget(renderer)
        self.payload, self.iteration = payload, iteration
        text = caption(payload)
        if self.caption.text() != text:  # a wrapped label re-lays the dock out: only when the kind changes
            self.caption.setText(text)
        self.iteration_label.setText(f"held-out tasks at iteration {iteration}")
        self.payloadShown.emit(view)

    def plot_items(self) -> list:
        r = self.stack.currentWidget()
        return r.plot_items() if hasattr(r, "plot_items") else []
