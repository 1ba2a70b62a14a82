"""Text that never widens its window: a label that elides with "…" and keeps the full text as tooltip.

A QLabel's size hint is its whole text, so one long preset name or file path (no spaces to wrap at) can
push a dialog's buttons off the screen.  :class:`ElidedLabel` asks for little width, draws what fits
with an ellipsis (in the middle for paths, at the end for names) and shows the full text as tooltip.
:func:`elided` does the same for a string placed in a widget that cannot elide itself (a combo item, a
window title).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter
from PySide6.QtWidgets import QFrame, QSizePolicy, QWidget

__all__ = ["ElidedLabel", "elided"]


def elided(text: str, widget: QWidget, width: int, mode=Qt.TextElideMode.ElideMiddle) -> str:
    """``text`` shortened with "…" to at most ``width`` pixels in ``widget``'s font."""
    return QFontMetrics(widget.font()).elidedText(text, mode, max(0, int(width)))


class ElidedLabel(QFrame):
    """One line of text elided to the width it is given; full text in the tooltip.

    :param mode: where the ellipsis goes, ``Qt.ElideMiddle`` for paths (default), ``Qt.ElideRight``
        for names and sentences.
    :param min_chars: the width it asks for at least, in average characters.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, mode=Qt.TextElideMode.ElideMiddle,
                 min_chars: int = 8):
        super().__init__(parent)
        self._text = ""
        self._mode = mode
        self._min_chars = min_chars
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def displayed(self) -> str:
        """The text as drawn now (elided to the current width)."""
        return elided(self._text, self, self.contentsRect().width(), self._mode)

    def setText(self, text: str) -> None:
        self._text = str(text)
        self.setToolTip(self._text if self._text else "")
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        width = min(fm.horizontalAdvance(self._text), fm.averageCharWidth() * 40)
        return QSize(width + 2 * self.frameWidth(), fm.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * self._min_chars, fm.height() + 2 * self.frameWidth())

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        rect = self.contentsRect()
        painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self.displayed())
