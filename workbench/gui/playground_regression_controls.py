"""The controls column of the sinusoid playground: the task (K, A, φ, sample, clear), the adaptation
(steps, Adapt, Step, Cancel, Reset), then the texts that change (the points, the models' rules, the last
message).  The buttons come first and the texts after them, so a longer text never moves a button."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QSpinBox,
                               QVBoxLayout, QWidget)

from workbench.services.playground_regression import SLIDER_TICKS, tick_value, value_tick

from .forms import button

MAX_STEPS = 100
COLUMN_WIDTH = 268


def _slider(name: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setObjectName(name)
    s.setRange(0, SLIDER_TICKS)
    s.setValue(SLIDER_TICKS // 2)
    return s


def _wrapping(name: str, small: bool = False) -> QLabel:
    label = QLabel("")
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if small:
        label.setStyleSheet("font-size: 8pt; color: #a8abb4;")
    return label


class RegressionControls(QWidget):
    """The sinusoid playground's controls; the page connects to its widgets."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedWidth(COLUMN_WIDTH)
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
        self.amp.setToolTip("Amplitude A of the true function A sin(x − φ); moving it samples K points")
        self.phase.setToolTip("Phase φ of the true function A sin(x − φ); moving it samples K points")
        self.amp_label = QLabel("")
        self.amp_label.setObjectName("playgroundAmplitudeLabel")
        self.phase_label = QLabel("")
        self.phase_label.setObjectName("playgroundPhaseLabel")
        for label in (self.amp_label, self.phase_label):
            label.setFixedWidth(40)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.sample_button = button("Sample K points", "playgroundSampleButton", "Replace the points by K samples "
                                     "of A sin(x − φ) (the true function is then known)")
        self.clear_button = button("Clear points", "playgroundClearButton", "Remove every support point")
        self.adapt_button = button("Adapt", "playgroundAdaptButton", "Adapt from the meta-learned start, all steps")
        self.step_button = button("Step", "playgroundStepButton", "One more inner step from the current state")
        self.cancel_button = button("Cancel", "playgroundCancelButton", "Stop the running adaptation")
        self.reset_button = button("Reset", "playgroundResetButton",
                                    "Forget the adaptation (keep the points): back to the meta-learned start")
        self.adapt_button.setDefault(True)

        task = QGroupBox("Task A sin(x − φ)")
        tl = QVBoxLayout(task)
        hint = QLabel("Left-click the left plot to place a support point; right-click a point to remove it.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #a8abb4;")
        tl.addWidget(hint)
        form = QFormLayout()
        form.addRow("K", self.shots)
        for text, slider, label in (("A", self.amp, self.amp_label), ("φ", self.phase, self.phase_label)):
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(label)
            form.addRow(text, row)
        tl.addLayout(form)
        tl.addLayout(self._pair(self.sample_button, self.clear_button))

        adapt = QGroupBox("Adaptation")
        al = QVBoxLayout(adapt)
        af = QFormLayout()
        af.addRow("inner steps", self.steps_spin)
        al.addLayout(af)
        al.addLayout(self._pair(self.adapt_button, self.step_button))
        al.addLayout(self._pair(self.cancel_button, self.reset_button))

        self.points_label = _wrapping("playgroundPointsLabel")
        self.message_label = _wrapping("playgroundRegressionMessage")
        self.info = _wrapping("playgroundModelInfo", small=True)
        self.info.setText("no model")

        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(task)
        col.addWidget(adapt)
        col.addWidget(self.points_label)
        col.addWidget(self.message_label)
        col.addWidget(self.info)
        col.addStretch(1)

    @staticmethod
    def _pair(a, b) -> QGridLayout:
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(a, 0, 0)
        grid.addWidget(b, 0, 1)
        return grid

    # -- the task sliders ---------------------------------------------------------------------------------
    def task_values(self, amp_range, phase_range) -> tuple[float, float]:
        """(A, φ) at the sliders' positions over the family's ranges."""
        return tick_value(self.amp.value(), *amp_range), tick_value(self.phase.value(), *phase_range)

    def show_task(self, amp_range, phase_range, true: tuple[float, float] | None) -> None:
        """Move the sliders to ``true`` (when known, without signalling) and label their values."""
        if true is not None:
            for slider, v, rng in ((self.amp, true[0], amp_range), (self.phase, true[1], phase_range)):
                slider.blockSignals(True)
                slider.setValue(value_tick(v, *rng))
                slider.blockSignals(False)
        a, p = self.task_values(amp_range, phase_range)
        self.amp_label.setText(f"{a:.2f}")
        self.phase_label.setText(f"{p:.2f}")

    def set_state(self, have_model: bool, busy: bool) -> None:
        for w in (self.shots, self.steps_spin, self.amp, self.phase, self.sample_button, self.clear_button,
                  self.adapt_button, self.step_button, self.reset_button):
            w.setEnabled(have_model and not busy)
        self.cancel_button.setEnabled(busy)

    def show_message(self, text: str, error: bool) -> None:
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #e15759; font-weight: bold;" if error else "")
