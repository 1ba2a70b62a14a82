"""The drawing canvas of the classification playground: a square to draw a character in with the mouse,
shown as the image the model gets (the strokes rasterised as the family draws its characters, pixelated)
with the pen's path faintly over it."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QToolButton, QWidget

from workbench.services.playground_classification import PEN, PlaygroundError

SUPPORT_SIDE = 76  # px: a support canvas's side at first (the support panel fits it to the height)
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
