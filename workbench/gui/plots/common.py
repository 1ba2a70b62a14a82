"""What every plot of the app shares: colours, tidy axes, legends outside the data, labels of reference lines,
and the PNG / CSV export.

- :class:`TidyAxis`: a few tick labels that never overlap (chosen by :func:`workbench.core.plotting.
  choose_ticks` for the axis's length and font), only whole numbers on an ``integer`` axis (iterations,
  steps, episodes, arms), and its title elided to the axis's length with the full text as tooltip.
- :class:`RowLegend`: a legend laid out as a row of entries (wrapping when narrow) in the plot's layout,
  under the x axis, or under a grid of panels: never over the data.
- :class:`LineLabels`: names of horizontal reference lines in a margin right of the plot, each at its
  line's height, spread apart so that no two overlap.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsWidget, QSizePolicy

from workbench.core.plotting import choose_ticks, format_tick, spread_labels

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major", background="#1e1f24", foreground="#d0d0d0")

PALETTE = ["#4e9af1", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7"]
LEGEND_ROW = 4  # the row of a PlotItem's layout under its bottom axis (0 title, 1 top axis, 2 view, 3 bottom)


class TidyAxis(pg.AxisItem):
    """An axis whose tick labels never overlap and whose title never runs past its end.

    Ticks come from :func:`~workbench.core.plotting.choose_ticks` for the axis's length in pixels and its
    font: a few labels (log axes: decades, 1-2-5 or evenly spaced values, never a pile of 0.6 0.7 0.8 0.9),
    whole numbers only when ``integer``.  Labels are drawn on the major ticks only; minor ticks are grid
    lines.  The title is elided with "…" to the axis's length (the full text is its tooltip; ``labelText``
    keeps it whole)."""

    def __init__(self, orientation: str, integer: bool = False, **kwargs):
        self.integer = integer
        self._labels: dict[float, str] = {}
        self._ticks_for, self._levels = None, []  # the last range asked for and its ticks
        self._shown_label = None
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)  # the labels say the values: never "(x0.001)"
        self.setStyle(maxTextLevel=0)

    def tickValues(self, minVal: float, maxVal: float, size: float):
        key = (minVal, maxVal, size, self.logMode, self.integer, self.style["tickFont"])
        if key == self._ticks_for:  # a repaint of the same range (a panel redrawn with a new payload)
            return self._levels
        self._ticks_for, self._levels = key, self._tick_levels(minVal, maxVal, size)
        return self._levels

    def _tick_levels(self, minVal: float, maxVal: float, size: float):
        fm = QFontMetricsF(self.style["tickFont"] or self.font())
        if self.orientation in ("left", "right"):
            line = fm.height() * 0.8  # pyqtgraph draws a label 0.8 of its font's height tall
            ticks = choose_ticks(minVal, maxVal, size, lambda s: line, 0.6 * fm.height(), log=self.logMode,
                                 integer=self.integer, every_px=70.0)
        else:
            gap = 1.5 * fm.horizontalAdvance("0")
            ticks = choose_ticks(minVal, maxVal, size, fm.horizontalAdvance, gap, log=self.logMode,
                                 integer=self.integer, every_px=130.0)
        self._labels = dict(zip(ticks.major, ticks.labels))
        levels = [(ticks.spacing, ticks.major)]
        if ticks.minor:
            levels.append((ticks.spacing / 5, ticks.minor))
        return levels

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            label = self._labels.get(v)
            if label is None:
                label = format_tick(10.0 ** v if self.logMode else v, 3)
            out.append(label)
        return out

    # -- the title, elided to the axis's length ----------------------------------------------------------------
    def _updateLabel(self):
        self._shown_label = None
        super()._updateLabel()
        self._elide_label()

    def resizeEvent(self, ev=None):
        self._elide_label()
        super().resizeEvent(ev)

    def label_length(self) -> float:
        """The room for the title along the axis, in pixels."""
        size = self.size()
        return size.height() if self.orientation in ("left", "right") else size.width()

    def _elide_label(self) -> None:
        label = getattr(self, "label", None)
        if label is None or not self.labelText:
            return
        full = self.labelText + (f" ({self.labelUnitPrefix}{self.labelUnits})" if self.labelUnits else "")
        length = self.label_length()
        if length <= 0:
            return
        room = length - 2 * label.document().documentMargin() - 4
        shown = QFontMetricsF(label.font()).elidedText(full, Qt.TextElideMode.ElideRight, max(0.0, room))
        if shown == self._shown_label:
            return
        self._shown_label = shown
        style = ";".join(f"{k}: {v}" for k, v in self.labelStyle.items())
        label.setHtml(f"<span style='{style}'>{html.escape(shown)}</span>")
        label.setToolTip(full if shown != full else "")


class RowLegend(pg.LegendItem):
    """A legend laid out as rows of entries across the width it is given (as many per row as fit), placed in
    a layout outside the plot area: under a plot's x axis (:func:`row_legend`) or under a grid of panels.
    Its height follows the number of rows; it never covers data.  ``getLabel``, ``addItem``, ``removeItem``
    and ``clear`` work as in pyqtgraph's LegendItem."""

    SAMPLE_W = 22

    def __init__(self, text_size: str = "8pt"):
        self._fitted = None
        self._spacer = None
        self._height = 0.0
        super().__init__(offset=None, labelTextSize=text_size, horSpacing=4, verSpacing=0, frame=False)
        self._spacer = QGraphicsWidget()
        self._spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, False)
        self.setFixedHeight(0)

    def _addItemToLayout(self, sample, label):  # entries are placed by _fit
        sample.setParentItem(self)
        label.setParentItem(self)

    def updateSize(self):  # LegendItem calls it after each change of entries
        self._fit(force=True)

    def setColumnCount(self, columnCount):  # the width decides
        self._fit(force=True)

    def setLabelTextSize(self, size):
        super().setLabelTextSize(size)
        for _, label in self.items:
            label.setText(label.text)  # LabelItem applies a new size with the next text
        self._fit(force=True)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self._fit()

    def sizeHint(self, which, constraint=QSizeF()):
        """No width of its own (it takes the width of the plot and wraps); as tall as its rows."""
        if which == Qt.SizeHint.MaximumSize:
            return QSizeF(1e6, self._height)
        return QSizeF(0.0, self._height)

    def entry_widths(self) -> list[float]:
        """Each entry's width in a row: its sample, its label and a gap."""
        return [self.SAMPLE_W + 4 + label.effectiveSizeHint(Qt.SizeHint.PreferredSize).width() + 14
                for _, label in self.items]

    def _fit(self, force: bool = False) -> None:
        if self._spacer is None:  # still being made
            return
        width = self.geometry().width()  # (LegendItem keeps a "size" attribute)
        widths = self.entry_widths()
        n = len(widths)
        cols = max(1, n)
        while cols > 1:
            total = sum(max(widths[j::cols]) for j in range(cols))
            if total <= width:
                break
            cols -= 1
        key = (cols, n, tuple(round(w) for w in widths))
        if key == self._fitted and not force:
            return
        self._fitted = key
        lay = self.layout
        for i in range(lay.count() - 1, -1, -1):
            lay.removeAt(i)
        row_h = 0.0
        for i, (sample, label) in enumerate(self.items):
            sample.setFixedWidth(self.SAMPLE_W)
            h = label.effectiveSizeHint(Qt.SizeHint.PreferredSize).height()
            sample.setFixedHeight(max(12.0, h))
            row_h = max(row_h, h)
            lay.addItem(sample, i // cols, 2 * (i % cols), alignment=Qt.AlignmentFlag.AlignVCenter)
            lay.addItem(label, i // cols, 2 * (i % cols) + 1)
        if n:
            lay.addItem(self._spacer, 0, 2 * cols)
            lay.setColumnStretchFactor(2 * cols, 1)
        rows = math.ceil(n / cols) if n else 0
        self._height = rows * row_h + (6 if n else 0)
        self.setFixedHeight(self._height)
        self.updateGeometry()

    def rows(self) -> int:
        """Rows of entries now."""
        cols = self._fitted[0] if self._fitted else 1
        return math.ceil(len(self.items) / cols)


def row_legend(plot: pg.PlotItem, text_size: str = "8pt") -> RowLegend:
    """Give ``plot`` a :class:`RowLegend` under its x axis (items added with a ``name`` join it)."""
    if isinstance(plot.legend, RowLegend):
        return plot.legend
    legend = RowLegend(text_size)
    plot.layout.addItem(legend, LEGEND_ROW, 1)
    plot.layout.setRowStretchFactor(LEGEND_ROW, 0)
    plot.legend = legend
    return legend


class LineLabels(pg.GraphicsWidget):
    """Names (and values) of horizontal reference lines in a margin at the right of ``plot``'s view: each at
    its line's height, in its colour, spread apart (:func:`~workbench.core.plotting.spread_labels`) so that
    no two overlap, and never over the data.  The margin is as wide as the widest name (none without lines);
    labels are placed again when the view's range or size changes (a handful of texts: cheap).  The margin
    takes at most ``SHARE`` of the plot's width: longer names are elided."""

    COLUMN = 3  # of the PlotItem's layout: right of the right axis
    SHARE = 0.3  # of the plot's width, at most

    def __init__(self, plot: pg.PlotItem, text_size: float = 8.0):
        super().__init__()
        self.plot = plot
        self.lines: list[pg.InfiniteLine] = []
        self.texts: list[tuple[str, str, QColor]] = []  # (name, value, colour) of each line
        self._shown: list[str] | None = None  # each label as drawn (the name elided to fit)
        self.rects: list[QRectF] = []  # where each text is drawn, in this item's coordinates
        self.values: list[float] = []
        font = QFont(plot.font())
        font.setPointSizeF(text_size)
        self.setFont(font)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Ignored)
        self.setFixedWidth(0)
        plot.layout.addItem(self, 2, self.COLUMN)
        plot.vb.sigRangeChanged.connect(self.place)
        plot.vb.sigResized.connect(self.place)

    def set(self, entries: list[tuple[str, float, str]], log: bool = False) -> None:
        """``entries``: (name, value, colour) per line; ``log``: the view shows log10 of the values."""
        for line in self.lines:
            self.plot.removeItem(line)
        self.lines, self.texts, self.values = [], [], []
        for name, value, color in entries:
            if log and not value > 0:
                continue
            line = pg.InfiniteLine(math.log10(value) if log else value, angle=0,
                                   pen=pg.mkPen(color, style=Qt.PenStyle.DashLine))
            self.plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)
            self.texts.append((name, f" {value:.3g}", QColor(color)))
            self.values.append(value)
        self._shown = None
        self.place()

    def _fit_width(self) -> None:
        """As wide as the widest label, at most ``SHARE`` of the plot's width (names elided to fit)."""
        fm = QFontMetricsF(self.font())
        if not self.texts:
            shown, width = [], 0.0
        else:
            room = max(60.0, self.SHARE * self.plot.size().width()) - 8
            shown = [fm.elidedText(name, Qt.TextElideMode.ElideRight, max(0.0, room - fm.horizontalAdvance(value)))
                     + value for name, value, _ in self.texts]
            width = max(fm.horizontalAdvance(t) for t in shown) + 8
        if shown != self._shown:
            self._shown = shown
            self.setFixedWidth(width)

    def place(self, *_) -> None:
        self._fit_width()
        vb = self.plot.vb
        h = QFontMetricsF(self.font()).height()
        wanted = [self.mapFromScene(vb.mapViewToScene(QPointF(0.0, line.value()))).y() for line in self.lines]
        top = self.mapFromScene(vb.sceneBoundingRect().topLeft()).y()
        bottom = top + vb.sceneBoundingRect().height()
        ys = spread_labels(wanted, h, top, bottom)
        self.rects = [QRectF(4, y - h / 2, self.size().width() - 4, h) for y in ys]
        self.update()

    def scene_rects(self) -> list[QRectF]:
        """Where the labels are, in scene coordinates."""
        return [self.mapRectToScene(r) for r in self.rects]

    def paint(self, p, *args) -> None:
        p.setFont(self.font())
        for text, (_, _, color), rect in zip(self._shown or [], self.texts, self.rects):
            p.setPen(color)
            p.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)


class PanelTitles:
    """Titles of a grid's panels elided to their panel's width, the full text as tooltip: a long title
    ("best arm 3; return 0.4 → 0.8") neither widens the grid past its view in a narrow dock nor runs into its
    neighbour.  ``columns()`` says how many panels share the view's width; :meth:`refresh` on a resize,
    :meth:`fit` after a payload's titles are set."""

    AXIS_PX = 50

    def __init__(self, view, columns, size_pt: float = 9.0):
        self.view, self.columns = view, columns
        self.size_pt = size_pt
        self.full: dict[int, tuple[pg.PlotItem, str]] = {}  # id(panel) -> (panel, its whole title)
        self.changed = False

    def set(self, plot: pg.PlotItem, text: str) -> None:
        self.full[id(plot)] = (plot, text)
        if self._apply(plot, text):
            self.changed = True

    def refresh(self) -> None:
        """Elide every title again for the view's width now (call before the view lays its scene out)."""
        for plot, text in list(self.full.values()):
            if plot.isVisible():
                self._apply(plot, text)

    def fit(self) -> None:
        """After new titles: lay the scene out again if they changed (a shorter title can let it shrink to
        the view)."""
        if self.changed:
            self.changed = False
            pg.GraphicsView.resizeEvent(self.view, None)

    def _apply(self, plot: pg.PlotItem, text: str) -> bool:
        font = QFont(self.view.font())
        font.setPointSizeF(self.size_pt)
        left = plot.getAxis("left")
        # a new panel's left axis is wider until its first paint sizes it to its labels: room for that
        axis = max(left.width(), self.AXIS_PX) if left.isVisible() else 0
        room = self.view.width() / max(1, self.columns()) - axis - 14
        if not self.view.isVisible():  # not laid out yet: its width means nothing (a resize will elide)
            room = math.inf
        shown = text if room == math.inf else QFontMetricsF(font).elidedText(text, Qt.TextElideMode.ElideRight,
                                                                              max(40.0, room))
        if plot.titleLabel.text == shown and plot.titleLabel.isVisible():
            return False
        plot.setTitle(shown, size=f"{self.size_pt:g}pt")
        plot.titleLabel.setToolTip(text if shown != text else "")
        return True


def plot_item(integer_x: bool = False, integer_y: bool = False) -> pg.PlotItem:
    """A PlotItem with :class:`TidyAxis` axes and a light grid."""
    plot = pg.PlotItem(axisItems={"left": TidyAxis("left", integer_y), "bottom": TidyAxis("bottom", integer_x)})
    plot.showGrid(x=True, y=True, alpha=0.15)
    return plot


def make_plot(name: str, xlabel: str, ylabel: str, integer_x: bool = False) -> pg.PlotWidget:
    """A PlotWidget with its objectName, :class:`TidyAxis` axes and their labels, a light grid and a
    :class:`RowLegend` under the x axis.  ``integer_x``: the x axis counts (whole-number ticks)."""
    widget = pg.PlotWidget(axisItems={"left": TidyAxis("left"), "bottom": TidyAxis("bottom", integer_x)})
    widget.setObjectName(name)
    p = widget.getPlotItem()
    p.setLabel("bottom", xlabel)
    p.setLabel("left", ylabel)
    p.showGrid(x=True, y=True, alpha=0.2)
    row_legend(p)
    return widget


def cache_static_parts(plot: pg.PlotItem) -> None:
    """Blit axes, grid and legend from pixmap caches: redrawn only when the view range changes.
    (Replaying the grid's picture was two thirds of the cost of a live frame.)"""
    for axis in plot.axes.values():
        axis["item"].setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    if plot.legend is not None:
        plot.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def fixed_plot(plot: pg.PlotItem, legend_alpha: int = 200) -> None:
    """A plot the user does not pan or zoom (its range is set by the page), with a compact dark legend."""
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.enableAutoRange(False)
    if plot.legend is not None:
        plot.legend.setBrush(pg.mkBrush(30, 31, 36, legend_alpha))
        plot.legend.setLabelTextSize("8pt")


def scrolling_column(widget, width: int):
    """``widget`` (a column of controls ``width`` px wide) in a scroll area: it scrolls rather than squashes
    when a dock is small."""
    from PySide6.QtWidgets import QScrollArea

    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFixedWidth(width + scroll.verticalScrollBar().sizeHint().width() + 4)
    return scroll


def export_plot_item(item: pg.PlotItem, png: Path, csv: Path | None) -> None:
    """Write a PlotItem to PNG (and its curves to CSV) with pyqtgraph's exporters; each file appears whole
    or not at all (written next to it, then renamed into place).  OSError when one cannot be written."""
    from pyqtgraph.exporters import CSVExporter, ImageExporter

    png = Path(png)
    tmp = png.with_name(f".{png.stem}.tmp{os.getpid()}.png")
    try:
        image = ImageExporter(item).export(toBytes=True)
        if image is None or image.isNull() or not image.save(str(tmp), "PNG"):
            raise OSError(f"{png}: cannot write the image")
        os.replace(tmp, png)
    finally:
        if tmp.exists():
            tmp.unlink()
    if csv is not None:
        csv = Path(csv)
        tmp = csv.with_name(f".{csv.stem}.tmp{os.getpid()}.csv")
        try:
            CSVExporter(item).export(str(tmp))
            os.replace(tmp, csv)
        finally:
            if tmp.exists():
                tmp.unlink()
