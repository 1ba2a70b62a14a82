"""The support set of the classification playground: a row per class of drawing canvases, fitted to the
page's height."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QScrollArea, QToolButton, QVBoxLayout, QWidget

from workbench.services.playground_classification import canvas_side

from .playground_canvas import SUPPORT_SIDE, DrawingCanvas
from .plots import PALETTE

MIN_SIDE, MAX_SIDE = 52, 112  # px: a support canvas (it fits the rows to the height)
NAME_W, ROW_GAP = 62, 6  # px: a class row's name, the gap between rows
MAX_PER_CLASS = 10  # canvases a class row can grow to


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
        outer, inner = self.contentsMargins(), self.layout().contentsMargins()  # outer: with the title's room
        avail = (self.height() - outer.top() - outer.bottom() - inner.top() - inner.bottom()
                 - 2 * self.scroll.frameWidth())  # the rows' room, whatever the font of the title
        side = canvas_side(avail, n, MIN_SIDE, MAX_SIDE, ROW_GAP)
        k = max([len(r.canvases) for r in self.rows] + [1])
        for row in self.rows:
            if row.side != side:
                row.set_side(side)
        plus = self.rows[0].add_button.sizeHint().width() if self.rows else 24
        row_w = NAME_W + 4 + k * (side + 4) + plus + 4
        self.rows_widget.setMinimumWidth(row_w)
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
