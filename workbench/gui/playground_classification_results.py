"""The results of the classification playground: the class probabilities of the model and of the baseline
side by side with the step slider under them, and the query panel (the query canvas and the buttons)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from workbench.services.playground_classification import ClassificationSession, after_text, bar_label, step_text

from .forms import button
from .playground_canvas import DrawingCanvas
from .plots import fixed_plot

QUERY_SIDE = 150  # px: the query canvas at first (the page fits it to its size)
BAR, PREDICTED = QColor("#5b6478"), QColor("#6cc25f")  # a bar; the predicted class's


class ProbabilityChart(pg.PlotWidget):
    """Horizontal bars of the N class probabilities of one model, the predicted class highlighted, the
    true class (when known) marked ✓ beside its name."""

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        plot = self.getPlotItem()
        fixed_plot(plot)
        self.title = QLabel("")  # above the chart, placed by the ResultsPanel: it wraps where a plot title cannot
        self.title.setObjectName(f"{name}Title")
        self.title.setWordWrap(True)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        plot.getAxis("left").setStyle(tickLength=0)
        plot.invertY(True)
        plot.showGrid(x=True, y=False, alpha=0.15)
        plot.getAxis("bottom").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], []])
        self.setMinimumSize(140, 100)
        self.values = np.zeros(0)
        self.predicted: int | None = None
        self.truth: int | None = None
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brushes=[])
        plot.addItem(self.bars)
        self.texts: list[pg.TextItem] = []
        self.note = pg.TextItem("", color="#c8cad0", anchor=(0.5, 0.5))
        plot.addItem(self.note, ignoreBounds=True)
        self.set_classes(2)

    def set_classes(self, n: int, truth: int | None = None) -> None:
        plot = self.getPlotItem()
        for t in self.texts:
            plot.removeItem(t)
        self.texts = []
        for _ in range(n):
            t = pg.TextItem("", color="#dcdde1", anchor=(0, 0.5))
            plot.addItem(t, ignoreBounds=True)
            self.texts.append(t)
        self.n, self.truth = n, truth
        ticks = [(i, f"class {i + 1}" + (" ✓" if i == truth else "")) for i in range(n)]
        plot.getAxis("left").setTicks([ticks, []])
        plot.setRange(xRange=(0, 1.18), yRange=(-0.6, n - 0.4), padding=0)
        self.note.setPos(0.59, (n - 1) / 2)
        self.clear_values()

    def set_truth(self, truth: int | None) -> None:
        if truth != self.truth:
            values, predicted = self.values, self.predicted
            self.set_classes(self.n, truth)
            if len(values):
                self.show_values(values)
            self.predicted = predicted if len(values) else None

    def clear_values(self, note: str = "") -> None:
        self.values, self.predicted = np.zeros(0), None
        self.bars.setOpts(x0=np.zeros(0), y=np.zeros(0), width=np.zeros(0), brushes=[])
        for t in self.texts:
            t.setText("")
        self.note.setText(note)

    def show_values(self, probabilities: np.ndarray) -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        self.values = p.copy()
        self.predicted = int(np.argmax(p))
        brushes = [pg.mkBrush(PREDICTED if i == self.predicted else BAR) for i in range(len(p))]
        pens = [pg.mkPen("#e8ffe0", width=1.5) if i == self.predicted else pg.mkPen(None) for i in range(len(p))]
        self.bars.setOpts(x0=np.zeros(len(p)), y=np.arange(len(p), dtype=np.float64), width=p, brushes=brushes,
                          pens=pens)
        for i, (t, v) in enumerate(zip(self.texts, p)):
            text, inside = bar_label(v, i == self.predicted)
            t.setText(text)
            t.setColor(QColor("#15171c") if inside else PREDICTED if i == self.predicted else QColor("#c8cad0"))
            t.setAnchor((1, 0.5) if inside else (0, 0.5))
            t.setPos(min(v, 1.0) - 0.01 if inside else v + 0.01, i)
        self.note.setText("")

    def brush_color(self, i: int) -> QColor:
        return pg.mkBrush(self.bars.opts["brushes"][i]).color()

    def set_title(self, text: str) -> None:
        self.title.setText(text)


class ResultsPanel(QWidget):
    """The class probabilities of the model and the baseline side by side, and the step slider over them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.results: list = []  # ClassStep of the last classification
        self.session: ClassificationSession | None = None
        self.running = False
        self.model_chart = ProbabilityChart("modelProbabilityChart")
        self.baseline_chart = ProbabilityChart("baselineProbabilityChart")
        charts = QGridLayout()
        charts.setContentsMargins(0, 0, 0, 0)
        charts.setVerticalSpacing(2)
        for col, chart in enumerate((self.model_chart, self.baseline_chart)):
            charts.addWidget(chart.title, 0, col)
            charts.addWidget(chart, 1, col)
            charts.setColumnStretch(col, 1)
        charts.setRowStretch(1, 1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("classificationStepSlider")
        self.slider.setRange(0, 0)
        self.slider.setToolTip("The inner step shown")
        self.slider.valueChanged.connect(self.show_step)
        self.step_label = QLabel("")
        self.step_label.setObjectName("playgroundStepLabel")
        row = QHBoxLayout()
        row.addWidget(QLabel("step"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(charts, 1)
        lay.addLayout(row)

    def set_classes(self, n: int) -> None:
        for chart in (self.model_chart, self.baseline_chart):
            chart.set_classes(n)

    def set_truth(self, truth: int | None) -> None:
        for chart in (self.model_chart, self.baseline_chart):
            chart.set_truth(truth)

    def clear(self, session, truth: int | None) -> None:
        self.session, self.results = session, []
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.step_label.setText("")
        s = session
        for chart, model, role in ((self.model_chart, s and s.model, "this model"),
                                   (self.baseline_chart, s and s.baseline, "baseline")):
            chart.set_truth(truth)
            if model is None:
                chart.set_title("baseline" if role == "baseline" else "")
                chart.clear_values("no pretrained baseline:\nchoose one above" if role == "baseline" and s else "")
            else:
                chart.set_title(f"{model.algorithm} ({'model' if role == 'this model' else role})")
                chart.clear_values("press Classify")

    def add(self, new: list) -> None:
        """Show newly computed steps; the slider moves to the newest."""
        self.results.extend(new)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self.results) - 1)
        self.slider.setValue(len(self.results) - 1)
        self.slider.blockSignals(False)
        self.show_step(len(self.results) - 1)

    def show_step(self, s: int) -> None:
        if not 0 <= s < len(self.results) or self.session is None:
            return
        r, sess = self.results[s], self.session
        self.model_chart.show_values(r.probabilities)
        self.model_chart.set_title(f"{sess.model.algorithm} (model) → class {r.predicted + 1}, "
                                   f"{after_text(r.model_step, sess.model.rule.kind == 'prototypes')}")
        if r.baseline_probabilities is not None and sess.baseline is not None:
            self.baseline_chart.show_values(r.baseline_probabilities)
            self.baseline_chart.set_title(
                f"{sess.baseline.algorithm} (baseline) → class {r.baseline_predicted + 1}, "
                f"{after_text(r.baseline_step, sess.baseline.rule.kind == 'prototypes')}")
        self.step_label.setText(step_text(r.step, len(self.results) - 1, self.running))


class QueryPanel(QWidget):
    """The query canvas, the buttons, and beside them how to draw and how the two models adapt."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.canvas = DrawingCanvas(QUERY_SIDE, "queryCanvas")
        self.canvas.setToolTip("Draw the character to classify; right-click undoes the last stroke")
        box = QGroupBox("Query: which class?")
        ql = QVBoxLayout(box)
        ql.setContentsMargins(6, 6, 6, 6)
        ql.addWidget(self.canvas, 0, Qt.AlignmentFlag.AlignCenter)
        self.classify_button = button("Classify", "classifyButton",
                                       "Adapt to the support set and classify the query, step by step")
        self.sample_button = button("Sample a new task", "sampleTaskButton",
                                     "Fill the canvases with a held-out task (classes never seen in training)")
        self.clear_button = button("Clear all", "clearAllButton", "Clear every drawing and the results")
        self.cancel_button = button("Cancel", "classificationCancelButton", "Stop the running classification")
        self.classify_button.setDefault(True)
        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        for b in (self.classify_button, self.sample_button, self.clear_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        hint = QLabel("Draw with the left mouse button, right-click to undo a stroke, × clears a drawing; "
                      "'+' adds a drawing to a class.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #a8abb4;")
        self.info = QLabel("no model")  # how each model adapts
        self.info.setObjectName("classificationModelInfo")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("font-size: 8pt; color: #a8abb4;")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        texts = QVBoxLayout()
        texts.addWidget(hint)
        texts.addWidget(self.info)
        texts.addStretch(1)
        text_box = QWidget()
        text_box.setLayout(texts)
        text_box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(box)
        lay.addLayout(buttons)
        lay.addWidget(text_box, 1)

    def set_enabled(self, have: bool, busy: bool) -> None:
        for w in (self.classify_button, self.sample_button, self.clear_button):
            w.setEnabled(have and not busy)
        self.cancel_button.setEnabled(busy)
