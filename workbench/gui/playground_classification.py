"""The classification playground page: draw a few characters of each class, draw one to classify, and watch
the meta-learned model and the baseline decide, step by step.

* Left: the support set, a row per class (N = the family's ways) with K drawing canvases (K = its shots; '+'
  adds one); a canvas records mouse strokes and shows what the model sees, the strokes rasterised as the
  family draws its characters (28×28 for glyphs), with the pen's path faintly over it.  Right-click undoes a
  stroke; '×' clears a canvas.  **Sample a new task** fills the canvases with a held-out task of the
  family (its evaluation classes) and one of its query images; drawing over a sampled image replaces it.
* Right: the query canvas, the buttons, and for each inner step the class probabilities of the model and
  of the baseline, side by side, the predicted class highlighted (and the true one marked when known); the
  step slider goes through the steps (a model with fewer trained steps stays at its last one).

The classification itself (:class:`workbench.services.playground_classification.ClassificationSession`) runs
on a worker thread that only puts results into a queue; a QTimer on the GUI thread drains it.  Cancel sets
an Event the worker checks between steps.
"""
from __future__ import annotations

import queue
import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (QGridLayout, QGroupBox, QHBoxLayout, QLabel, QScrollArea,
                               QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget)

from workbench.core.errors import WorkbenchError
from workbench.services.playground_classification import PEN, ClassificationSession, PlaygroundError, describe

from .forms import button
from .plots import PALETTE, fixed_plot

DRAIN_MS = 33
STOP_WAIT = 2.0  # s: how long Classify waits for a cancelled run to finish its step
SUPPORT_SIDE, MIN_SIDE, MAX_SIDE = 76, 52, 112  # px: a support canvas (it fits the rows to the height)
QUERY_SIDE, MIN_QUERY, MAX_QUERY = 150, 96, 220  # px: the query canvas
NAME_W, ROW_GAP = 62, 6  # px: a class row's name, the gap between rows
MAX_PER_CLASS = 10  # canvases a class row can grow to
BAR, PREDICTED = QColor("#5b6478"), QColor("#6cc25f")  # a bar; the predicted class's
STROKE_OVERLAY = QColor(120, 200, 255, 110)


def to_qimage(image: np.ndarray) -> QImage:
    """(C, H, W) intensities in [0, 1] (C = 1 or 3) -> a QImage owning its pixels."""
    a = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
    u8 = np.ascontiguousarray((a * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    h, w, c = u8.shape
    if c == 1:
        return QImage(u8.tobytes(), w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(u8[..., :3].tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class DrawingCanvas(QWidget):
    """A square to draw a character in: mouse strokes in [0, 1]² image coordinates, shown as the image the
    model gets (``rasterizer(strokes)``, pixelated) with the pen's path faintly over it; or an image set from
    outside (a sampled task's), which the next stroke replaces."""

    changed = Signal()

    def __init__(self, side: int = SUPPORT_SIDE, name: str = "drawingCanvas", parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self.setFixedSize(side, side)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw with the left mouse button; right-click undoes the last stroke")
        self.rasterizer = None  # strokes -> (C, H, W) image, from the session
        self.strokes: list[list[tuple[float, float]]] = []
        self.sampled = False  # the image is a sampled task's, not drawn here
        self._image: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._drawing = False
        self.clear_button = QToolButton(self)
        self.clear_button.setObjectName("clearCanvasButton")
        self.clear_button.setText("×")
        self.clear_button.setToolTip("Clear this drawing")
        self.clear_button.setFixedSize(16, 16)
        self.clear_button.setStyleSheet("QToolButton { background: rgba(40, 42, 50, 200); border: none; "
                                        "color: #dcdde1; font-weight: bold; padding: 0; }")
        self.clear_button.clicked.connect(self.clear)
        self.clear_button.move(side - 17, 1)
        self.clear_button.hide()

    def set_side(self, side: int) -> None:
        if side != self.width() or side != self.height():
            self.setFixedSize(side, side)
            self.clear_button.move(side - 17, 1)

    # -- content -------------------------------------------------------------------------------------
    def has_ink(self) -> bool:
        return self._image is not None and float(self._image.max()) > 0

    def image(self) -> np.ndarray | None:
        """What the model gets from this canvas (C, H, W), or None when it is empty."""
        return self._image.copy() if self.has_ink() else None

    def set_image(self, image: np.ndarray | None, sampled: bool = True) -> None:
        self.strokes, self._drawing = [], False
        self._set(None if image is None else np.asarray(image, dtype=np.float32).copy())
        self.sampled = sampled and image is not None

    def set_rasterizer(self, rasterizer) -> None:
        self.rasterizer = rasterizer
        if self.strokes:
            self._render()

    def clear(self) -> None:
        had = self.has_ink() or bool(self.strokes)
        self.set_image(None)
        if had:
            self.changed.emit()

    def _set(self, image: np.ndarray | None) -> None:
        self._image = image
        self._qimage = None if image is None else to_qimage(image)
        self.clear_button.setVisible(image is not None or bool(self.strokes))
        self.update()

    def _render(self) -> None:
        strokes = [s for s in self.strokes if s]
        if not strokes or self.rasterizer is None:
            self._set(None)
            return
        try:
            self._set(self.rasterizer(strokes))
        except PlaygroundError:
            self._set(None)

    # -- mouse ---------------------------------------------------------------------------------------
    def _square(self) -> QRectF:
        side = min(self.width(), self.height())
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def _to_image(self, pos: QPointF) -> tuple[float, float]:
        r = self._square()
        return (min(max((pos.x() - r.x()) / r.width(), 0.0), 1.0),
                min(max((pos.y() - r.y()) / r.height(), 0.0), 1.0))

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            if self.strokes:
                self.strokes.pop()
                self._render()
                self.changed.emit()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self.sampled:  # drawing over a sampled image replaces it
            self.set_image(None)
        self._drawing = True
        self.strokes.append([self._to_image(event.position())])
        self.update()

    def mouseMoveEvent(self, event) -> None:
        if not self._drawing:
            return
        p = self._to_image(event.position())
        last = self.strokes[-1][-1]
        if abs(p[0] - last[0]) + abs(p[1] - last[1]) > 0.75 / max(1, self.width()):  # a new pixel
            self.strokes[-1].append(p)
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self._drawing:
            return
        self._drawing = False
        self._render()
        self.changed.emit()

    # -- painting ------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = self._square()
        p.fillRect(r, QColor("black"))
        if self._qimage is not None and not self._drawing:
            p.drawImage(r, self._qimage)  # pixelated: the model's pixels
        if self.strokes:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            for i, stroke in enumerate(self.strokes):
                live = self._drawing and i == len(self.strokes) - 1
                pen = QPen(QColor("white") if live or self._drawing else STROKE_OVERLAY,
                           max(1.0, 2 * PEN * r.width()) if self._drawing else 1.2)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
                p.setPen(pen)
                path = QPainterPath(QPointF(r.x() + stroke[0][0] * r.width(), r.y() + stroke[0][1] * r.height()))
                for x, y in stroke[1:]:
                    path.lineTo(r.x() + x * r.width(), r.y() + y * r.height())
                if len(stroke) == 1:
                    path.lineTo(r.x() + stroke[0][0] * r.width() + 0.01, r.y() + stroke[0][1] * r.height())
                p.drawPath(path)
        elif self._qimage is None:
            p.setPen(QColor("#555a66"))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "draw")
        p.setPen(QPen(QColor("#6b7080" if self.underMouse() else "#454955"), 1))
        p.drawRect(r.adjusted(0, 0, -1, -1))
        p.end()

    def enterEvent(self, event) -> None:
        self.update()

    def leaveEvent(self, event) -> None:
        self.update()


class ClassRow(QWidget):
    """One class of the support set: its name, its drawing canvases, and '+' to add one."""

    changed = Signal()

    def __init__(self, label: int, parent=None):
        super().__init__(parent)
        self.label = label
        self.setObjectName(f"classRow{label}")
        self.canvases: list[DrawingCanvas] = []
        self.rasterizer = None
        self.side = SUPPORT_SIDE
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        color = PALETTE[label % len(PALETTE)]
        self.name = QLabel(f"<span style='color:{color}'>■</span> class {label + 1}")
        self.name.setFixedWidth(NAME_W)
        lay.addWidget(self.name)
        self.canvas_box = QHBoxLayout()
        self.canvas_box.setSpacing(4)
        lay.addLayout(self.canvas_box)
        self.add_button = QToolButton()
        self.add_button.setObjectName("addDrawingButton")
        self.add_button.setText("+")
        self.add_button.setToolTip(f"Another drawing of class {label + 1} (up to {MAX_PER_CLASS})")
        self.add_button.clicked.connect(self.add_canvas)
        lay.addWidget(self.add_button)
        lay.addStretch(1)

    def add_canvas(self) -> DrawingCanvas | None:
        if len(self.canvases) >= MAX_PER_CLASS:
            return None
        c = DrawingCanvas(self.side)
        c.set_rasterizer(self.rasterizer)
        c.changed.connect(self.changed)
        self.canvases.append(c)
        self.canvas_box.addWidget(c)
        self.add_button.setEnabled(len(self.canvases) < MAX_PER_CLASS)
        self.changed.emit()  # the support panel may have to widen
        return c

    def set_count(self, k: int) -> None:
        """Exactly ``k`` canvases (the extra ones go, with their drawings)."""
        while len(self.canvases) > k:
            c = self.canvases.pop()
            self.canvas_box.removeWidget(c)
            c.deleteLater()
        while len(self.canvases) < k:
            self.add_canvas()
        self.add_button.setEnabled(len(self.canvases) < MAX_PER_CLASS)

    def set_side(self, side: int) -> None:
        self.side = side
        for c in self.canvases:
            c.set_side(side)

    def set_rasterizer(self, rasterizer) -> None:
        self.rasterizer = rasterizer
        for c in self.canvases:
            c.set_rasterizer(rasterizer)

    def images(self) -> list[np.ndarray]:
        """The drawings of this class (empty canvases are left out)."""
        return [im for im in (c.image() for c in self.canvases) if im is not None]

    def set_images(self, images: list[np.ndarray], k: int) -> None:
        self.set_count(max(len(images), k))
        for c, im in zip(self.canvases, images + [None] * len(self.canvases)):
            c.set_image(im)


class SupportPanel(QGroupBox):
    """The support set: a :class:`ClassRow` per class in a scroll area; its canvases are as large as lets
    every row fit the height (between MIN_SIDE and MAX_SIDE pixels), and it is as wide as its widest row,
    up to ``max_width`` (then the rows scroll)."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Support set", parent)
        self.setObjectName("supportSet")
        self.rows: list[ClassRow] = []
        self.shots = 1
        self.max_width = 10_000
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.rows_widget = QWidget()
        self.rows_layout = QVBoxLayout(self.rows_widget)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(ROW_GAP)
        self.rows_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.rows_widget)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        lay.addWidget(self.scroll)

    def build(self, ways: int, shots: int) -> None:
        for row in self.rows:
            self.rows_layout.removeWidget(row)
            row.deleteLater()
        self.rows, self.shots = [], shots
        for c in range(ways):
            row = ClassRow(c)
            row.set_count(shots)
            row.changed.connect(self._on_row_changed)
            self.rows_layout.insertWidget(c, row)
            self.rows.append(row)
        self.setTitle(f"Support set: {ways} classes × {shots} drawing{'s' if shots != 1 else ''}")
        self.fit()

    def _on_row_changed(self) -> None:
        self.fit()
        self.changed.emit()

    def fit(self) -> None:
        """Canvas size from the height, panel width from the widest row."""
        n = max(1, len(self.rows))
        avail = self.height() - 30  # the title and the margins
        side = int(min(MAX_SIDE, max(MIN_SIDE, (avail - ROW_GAP * (n - 1)) / n)))
        k = max([len(r.canvases) for r in self.rows] + [1])
        for row in self.rows:
            if row.side != side:
                row.set_side(side)
        plus = self.rows[0].add_button.sizeHint().width() if self.rows else 24
        row_w = NAME_W + 4 + k * (side + 4) + plus + 4
        self.rows_widget.setMinimumWidth(row_w)
        outer, inner = self.contentsMargins(), self.layout().contentsMargins()
        frame = outer.left() + outer.right() + inner.left() + inner.right() + 2 * self.scroll.frameWidth()
        scrollbar = self.scroll.verticalScrollBar().sizeHint().width() if side * n + ROW_GAP * (n - 1) > avail else 0
        self.setFixedWidth(int(min(row_w + scrollbar + frame, max(self.max_width, NAME_W + MIN_SIDE + 60))))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().height() != event.size().height():
            self.fit()

    def set_rasterizer(self, rasterizer) -> None:
        for row in self.rows:
            row.set_rasterizer(rasterizer)

    def drawings(self) -> tuple[list[np.ndarray], list[int]]:
        """The drawings of every class and their labels (empty canvases left out)."""
        images, labels = [], []
        for row in self.rows:
            for im in row.images():
                images.append(im)
                labels.append(row.label)
        return images, labels

    def set_task(self, images: np.ndarray, labels: np.ndarray) -> None:
        for row in self.rows:
            row.set_images([im for im, y in zip(images, labels) if y == row.label], self.shots)
        self.fit()

    def clear(self) -> None:
        for row in self.rows:
            row.set_images([], self.shots)
        self.fit()


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
            inside = v > 0.6  # a long bar has its number inside its end (no room after it)
            mark = " ◀" if i == self.predicted and not inside else ""
            t.setText(f"{100 * v:.0f}%{mark}")
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
        self.info = QLabel("no model")  # how each model adapts
        self.info.setObjectName("classificationModelInfo")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("font-size: 8pt; color: #a8abb4;")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(charts, 1)
        lay.addLayout(row)
        lay.addWidget(self.info)

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
                                   f"{_after(r.model_step, sess.model)}")
        if r.baseline_probabilities is not None and sess.baseline is not None:
            self.baseline_chart.show_values(r.baseline_probabilities)
            self.baseline_chart.set_title(f"{sess.baseline.algorithm} (baseline) → class {r.baseline_predicted + 1}, "
                                          f"{_after(r.baseline_step, sess.baseline)}")
        last = len(self.results) - 1
        text = "one prediction: no inner steps" if last == 0 and not self.running else f"step {r.step} of {last}"
        self.step_label.setText(text + (" (running)" if self.running else ""))


class QueryPanel(QWidget):
    """The query canvas, the buttons, and how the two models adapt."""

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
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(box)
        lay.addLayout(buttons)
        lay.addStretch(1)

    def set_enabled(self, have: bool, busy: bool) -> None:
        for w in (self.classify_button, self.sample_button, self.clear_button):
            w.setEnabled(have and not busy)
        self.cancel_button.setEnabled(busy)


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
        self._thread: threading.Thread | None = None
        self._last_thread: threading.Thread | None = None  # may still be finishing a step after a cancel
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()

        self.support_panel = SupportPanel()
        self.support_panel.changed.connect(self._on_support_changed)
        self.query_panel = q = QueryPanel()
        self.query = q.canvas
        self.query.changed.connect(self._on_query_changed)
        self.classify_button, self.sample_button = q.classify_button, q.sample_button
        self.clear_button, self.cancel_button = q.clear_button, q.cancel_button
        self.classify_button.clicked.connect(self.classify)
        self.sample_button.clicked.connect(self.sample_task)
        self.clear_button.clicked.connect(self.clear_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.results_panel = ResultsPanel()
        self.model_chart, self.baseline_chart = self.results_panel.model_chart, self.results_panel.baseline_chart
        self.slider, self.info = self.results_panel.slider, self.results_panel.info
        right = QVBoxLayout()
        right.addWidget(self.query_panel)
        right.addWidget(self.results_panel, 1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.support_panel)
        lay.addLayout(right, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self._drain)
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
        return self._thread is not None

    def cancel(self) -> None:
        """Stop the running classification: the steps shown so far stay."""
        if self._thread is None:
            return
        self._cancel.set()
        self._finish(cancelled=True)

    # -- the buttons -------------------------------------------------------------------------------------
    def classify(self) -> None:
        """Classify the query from the support drawings, on a worker thread."""
        if self.busy():
            return
        if self.session is None:
            self._say("no model: train one or open a bundle", True)
            return
        last = self._last_thread
        if last is not None and last.is_alive():  # a cancelled run finishing its step: they share the network
            last.join(STOP_WAIT)
            if last.is_alive():
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
        self._cancel, self._queue = threading.Event(), queue.Queue()
        self._thread = threading.Thread(target=_work, name="playground-classify", daemon=True,
                                        args=(self.session, images, labels, query, self._cancel, self._queue))
        self._thread.start()
        self._last_thread = self._thread
        self.results_panel.running = True
        self._update_controls()
        self._say("classifying…", False)
        self._timer.start()

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
        new, done, error = [], False, None
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "step":
                new.append(payload)
            elif kind == "error":
                error = payload
            elif kind == "done":
                done = True
        if new:
            self.results_panel.add(new)
        if error is not None:
            self._finish(error=error)
        elif done:
            self._finish()

    def _finish(self, cancelled: bool = False, error: str | None = None) -> None:
        thread, self._thread = self._thread, None
        self._timer.stop()
        if thread is not None and cancelled:
            thread.join(0.2)
        self.results_panel.running = False
        self._update_controls()
        if error is not None:
            self._say(error, True)
        elif cancelled:
            self._say(f"cancelled after {max(0, len(self.results) - 1)} steps", False)
        elif self.results:
            self.results_panel.show_step(self.slider.value())
            self._say(self._summary(), False)
        self.classificationFinished.emit()

    def _summary(self) -> str:
        r, s = self.results[-1], self.session
        text = f"{s.model.algorithm}: class {r.predicted + 1} ({100 * r.probabilities.max():.0f}%)"
        if r.baseline_probabilities is not None:
            text += (f"; {s.baseline.algorithm}: class {r.baseline_predicted + 1} "
                     f"({100 * r.baseline_probabilities.max():.0f}%)")
        if self.query_label is not None:
            text += f"; the query is class {self.query_label + 1}"
        return text

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
        room = self.width() - self.support_panel.width()
        side = int(min(MAX_QUERY, max(MIN_QUERY, 0.36 * self.height(), 0.0), 0.4 * room))
        self.query.set_side(max(MIN_QUERY, side))

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)


def _after(step: int, model) -> str:
    if model.rule.kind == "prototypes":
        return "prototypes"
    return "before adapting" if step == 0 else f"{step} step{'s' if step != 1 else ''}"


def _work(session, images, labels, query, cancel: threading.Event, out: queue.Queue) -> None:
    """The worker thread: classify step by step, put each result into ``out``; never touches a widget."""
    try:
        for result in session.steps(images, labels, query, cancel=cancel):
            out.put(("step", result))
    except PlaygroundError as e:
        out.put(("error", str(e)))
    except Exception as e:  # noqa: BLE001 — shown in the tab, never a crash
        out.put(("error", f"the classification failed: {type(e).__name__}: {e}"))
    finally:
        out.put(("done", None))
