"""The controls column of the RL playground: the family's task sliders, the steps, Adapt / Cancel, then
the texts that change (status, summary, message) below the buttons, so they never move a button."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QFormLayout, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox,
                               QVBoxLayout, QWidget)

from workbench.services.playground_rl import SLIDER_TICKS, param_text, param_tick, tick_param

COLUMN_WIDTH = 290
STYLE = """
QLabel#playgroundRLMessage[error="true"] { color: #e15759; }
QLabel#playgroundRLHeader { font-weight: bold; }
"""
STEPS_TIPS = {"inner steps": "Policy-gradient steps, each on fresh trajectories",
              "episodes in the trial": "RL² adapts in its hidden state over the episodes of one trial",
              "episodes of context": "PEARL infers the task from the episodes it has seen"}


class ParamRow:
    """A slider with its value label for one TaskParam (a float range, or a choice)."""

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
        self.value = param.default
        self.set_value(param.default)
        self.slider.valueChanged.connect(lambda _=0: on_change(self))

    @property
    def movable(self) -> bool:
        return self.param.kind == "choice" or self.param.high > self.param.low

    def slider_value(self) -> float:
        return tick_param(self.param, self.slider.value())

    def set_value(self, value: float) -> None:
        """Show ``value`` (kept exactly; the slider goes to the nearest tick) without signalling."""
        self.value = float(value)
        self.slider.blockSignals(True)
        self.slider.setValue(param_tick(self.param, value))
        self.slider.blockSignals(False)
        self.update_label()

    def update_label(self) -> None:
        self.value_label.setText(param_text(self.param, self.value))


class _Room(QWidget):
    """Holds ``widget`` and asks for little height: it takes the room left under the controls (a plot's own
    size hint, 480 px, would make the column scroll)."""

    def __init__(self, widget: QWidget):
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(widget)

    def sizeHint(self) -> QSize:
        return QSize(COLUMN_WIDTH, 120)


class RLControls(QWidget):
    """The RL playground's controls; the page builds the rows for its family and connects to the buttons.
    ``chart`` (the return per step) fills the room under them."""

    def __init__(self, chart: QWidget | None = None, parent=None):
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        self.setFixedWidth(COLUMN_WIDTH)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("Task")
        self.header.setObjectName("playgroundRLHeader")
        self.header.setWordWrap(True)
        self.task_hint = QLabel("")
        self.task_hint.setWordWrap(True)
        self.task_hint.setObjectName("playgroundRLHint")
        self.params_box = QWidget()
        self.params_layout = QGridLayout(self.params_box)
        self.params_layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.steps_label = QLabel("inner steps")
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("playgroundRLStepsSpin")
        form.addRow(self.steps_label, self.steps_spin)
        self.run_button = QPushButton("Adapt")
        self.run_button.setObjectName("playgroundRLRunButton")
        self.run_button.setToolTip("Collect trajectories on the task, adapt, and show every step")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("playgroundRLCancelButton")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.status = QLabel("")
        self.status.setObjectName("playgroundRLStatus")
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #3a3d46;")
        self.summary = QLabel("")
        self.summary.setObjectName("playgroundRLSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel("")
        self.message_label.setObjectName("playgroundRLMessage")
        self.message_label.setWordWrap(True)
        for w in (self.header, self.task_hint, self.params_box):
            col.addWidget(w)
        col.addLayout(form)
        col.addLayout(buttons)
        for w in (self.status, line, self.summary, self.message_label):
            col.addWidget(w)
        if chart is not None:
            col.addWidget(_Room(chart), 1)
        else:
            col.addStretch(1)
        self.rows: list[ParamRow] = []

    def build_rows(self, params, on_change) -> None:
        """A slider row per TaskParam (the old rows go)."""
        self.clear_rows()
        for i, p in enumerate(params):
            row = ParamRow(p, on_change)
            label = QLabel(p.label)
            label.setToolTip(row.slider.toolTip())
            self.params_layout.addWidget(label, 2 * i, 0)
            self.params_layout.addWidget(row.value_label, 2 * i, 1)
            self.params_layout.addWidget(row.slider, 2 * i + 1, 0, 1, 2)
            self.rows.append(row)

    def clear_rows(self) -> None:
        while self.params_layout.count():
            w = self.params_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.rows = []

    def set_steps(self, control) -> None:
        """The steps spin box for a StepsControl (its label, range and default)."""
        self.steps_label.setText(control.label)
        self.steps_spin.setRange(control.low, control.high)
        self.steps_spin.setValue(control.default)
        self.steps_spin.setToolTip(STEPS_TIPS.get(control.label, ""))

    def set_state(self, idle: bool, has_model: bool) -> None:
        """idle: the controls work and Cancel does not; busy: the reverse."""
        for row in self.rows:
            row.slider.setEnabled(idle and has_model and row.movable)
        self.steps_spin.setEnabled(idle and has_model)
        self.run_button.setEnabled(idle and has_model)
        self.cancel_button.setEnabled(not idle and has_model)

    def show_message(self, text: str, error: bool) -> None:
        self.message_label.setText(text)
        self.message_label.setProperty("error", error)
        self.message_label.style().unpolish(self.message_label)
        self.message_label.style().polish(self.message_label)
