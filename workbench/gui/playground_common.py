"""Small widgets the playground pages share: a plot's caption and a legend row, both outside the plot.

A pyqtgraph title sets its plot's minimum width (a plot narrower than its title is drawn wider than its
widget and cut at the right), and a legend inside a plot covers data; the pages put both outside.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

__all__ = ["Caption", "legend_label", "side_by_side", "swatch"]


class Caption(QLabel):
    """A plot's caption above it: up to ``lines`` lines (who; the numbers of the newest step), centred, of a
    fixed height, and never wider than the plot."""

    def __init__(self, name: str, lines: int = 2):
        super().__init__("")
        self.setObjectName(name)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 2)

    def fits(self) -> bool:
        """The whole text shows at the current width."""
        return self.heightForWidth(self.width()) <= self.height()


def legend_label(name: str) -> QLabel:
    """A legend row under a chart (rich text; it wraps rather than widen the page)."""
    label = QLabel("")
    label.setObjectName(name)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setStyleSheet("color: #c8cad0;")
    return label


def swatch(color, text: str, glyph: str = "&#9473;&#9473;") -> str:
    """One legend entry: a coloured line (or ``glyph``) and its name."""
    c = pg.mkColor(color)
    return f'<span style="color:{c.name()}">{glyph}</span>&nbsp;{text}'


def side_by_side(parent: QWidget, views, legend: QLabel) -> QGridLayout:
    """The model's and the baseline's views side by side (each a ``caption`` above its ``widget``), one legend
    row under both: rows 0-2 of the returned grid, which the caller may extend below."""
    grid = QGridLayout(parent)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setVerticalSpacing(2)
    for col, view in enumerate(views):
        grid.addWidget(view.caption, 0, col)
        grid.addWidget(view.widget, 1, col)
        grid.setColumnStretch(col, 1)
    grid.addWidget(legend, 2, 0, 1, len(views))
    return grid
