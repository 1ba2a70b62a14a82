"""The selected runs compared: training curve (smoothed) and held-out adaptation curve, overlaid.

:class:`ComparisonView` draws a list of :class:`workbench.services.run_series.Series` (a run, or a
group of seeds as a mean line with a band) and holds the controls that change how: group seeds, band
kind, smoothing, log axis, export.  It computes nothing: the series, the view range and the CSV come
from :mod:`workbench.services.run_series`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from workbench.core.storage import atomic_write_text
from workbench.gui.runs_flow import FlowLayout
from workbench.gui.plots import PALETTE, cache_static_parts, export_plot_item, make_plot
from workbench.services.run_series import (BANDS, LEGEND_NAME, Series, adaptation_csv, band_on_log_axis, inner_steps,
                                           log_floor, meta_loss_csv, shorten, view_range)
from workbench.services.runs import Aggregate


def series_color(i: int) -> str:
    """The i-th series' colour: the app's palette, then evenly spaced hues."""
    if i < len(PALETTE):
        return PALETTE[i]
    return pg.intColor(i, hues=13, values=1, minValue=200).name()


def _pair(label: QLabel, field: QWidget) -> QWidget:
    """A label and its field, kept on one line when the controls wrap."""
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(label)
    lay.addWidget(field)
    return w


class ComparisonView(QWidget):
    """Controls over two plots side by side: the training metric per meta-iteration and the held-out
    metric per inner step.  ``seriesChanged`` asks for new series (grouping or smoothing changed); the band
    and the log axis only redraw."""

    seriesChanged = Signal()
    exportRequested = Signal(bool, bool)  # png, csv

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("runsComparison")
        self.series: list[Series] = []
        self.meta_items: dict[str, tuple] = {}  # label -> (line, band fill or None) as drawn
        self.adaptation_items: dict[str, tuple] = {}
        self.metric_kind = "loss"  # what the plots show: "loss" (log axis by default) or "return"
        self._build()

    def _build(self) -> None:
        self.group_check = QCheckBox("Group seeds")
        self.group_check.setObjectName("groupSeedsCheck")
        self.group_check.setChecked(True)
        self.group_check.setToolTip("Runs that differ only in their seed are drawn as one mean line with a band")
        self.band_combo = QComboBox()
        self.band_combo.setObjectName("bandCombo")
        self.band_combo.addItems(BANDS)
        self.band_combo.setToolTip("The band around a group's mean: the 95% confidence interval of the mean "
                                   "over seeds (Student t), or the range of the seeds")
        self.ema_spin = QDoubleSpinBox()
        self.ema_spin.setObjectName("runsEmaSpin")
        self.ema_spin.setRange(0.0, 0.999)
        self.ema_spin.setDecimals(3)
        self.ema_spin.setSingleStep(0.05)
        self.ema_spin.setValue(0.6)
        self.ema_spin.setToolTip("Smoothing of the training curves, TensorBoard's debiased EMA, applied to each run "
                                 "before the seeds are averaged; 0 = none.  The adaptation curves are not smoothed.")
        self.log_check = QCheckBox("log scale")
        self.log_check.setObjectName("runsLogCheck")
        self.log_check.setChecked(True)
        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.setObjectName("exportRunsPngButton")
        self.export_png_button.setToolTip("Both plots as PNG images into a folder")
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setObjectName("exportRunsCsvButton")
        self.export_csv_button.setToolTip("The data drawn in both plots (mean, band, n; raw and smoothed) as CSV")
        controls = FlowLayout()  # wraps onto two lines on a narrow page rather than widening it
        for parts in ((self.group_check,), (QLabel("band"), self.band_combo), (QLabel("smoothing"), self.ema_spin),
                      (self.log_check,), None, (self.export_png_button,), (self.export_csv_button,)):
            if parts is None:
                controls.push_right()
                continue
            controls.addWidget(_pair(*parts) if len(parts) > 1 else parts[0])

        self.meta_plot = make_plot("runsMetaLossPlot", "meta-iteration", "training loss")
        self.adaptation_plot = make_plot("runsAdaptationPlot", "inner step (0 = before adaptation)", "held-out loss")
        plots = QHBoxLayout()
        plots.setContentsMargins(0, 0, 0, 0)
        for w in (self.meta_plot, self.adaptation_plot):
            p = w.getPlotItem()
            p.setLogMode(y=True)
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
            cache_static_parts(p)
            w.setMinimumSize(200, 150)
            w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            plots.addWidget(w, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(controls)
        lay.addLayout(plots, 1)

        self.group_check.toggled.connect(lambda _: self.seriesChanged.emit())
        self.ema_spin.valueChanged.connect(lambda _: self.seriesChanged.emit())
        self.band_combo.currentIndexChanged.connect(lambda _: self.draw())
        self.log_check.toggled.connect(lambda _: self.draw())
        self.export_png_button.clicked.connect(lambda: self.exportRequested.emit(True, False))
        self.export_csv_button.clicked.connect(lambda: self.exportRequested.emit(False, True))

    # -- settings --------------------------------------------------------------------------------------
    @property
    def grouped(self) -> bool:
        return self.group_check.isChecked()

    @property
    def weight(self) -> float:
        return self.ema_spin.value()

    def set_grouped(self, on: bool) -> None:
        """Group seeds or not, without asking for new series."""
        self.group_check.blockSignals(True)
        self.group_check.setChecked(on)
        self.group_check.blockSignals(False)

    def show_series(self, series: list[Series], kind: str | None) -> None:
        """Draw ``series``; a new ``kind`` ("loss"/"return") sets the axis (log for a loss, linear for a return)."""
        self.series = series
        if kind is not None and kind != self.metric_kind:
            self.metric_kind = kind
            self.log_check.blockSignals(True)
            self.log_check.setChecked(kind == "loss")
            self.log_check.blockSignals(False)
        self.draw()

    # -- drawing ---------------------------------------------------------------------------------------
    def draw(self) -> None:
        log = self.log_check.isChecked()
        band_kind = self.band_combo.currentText()
        mp, ap = self.meta_plot.getPlotItem(), self.adaptation_plot.getPlotItem()
        for p in (mp, ap):
            p.clear()
            p.setLogMode(y=log)
        self.meta_items, self.adaptation_items = {}, {}
        train_name, eval_name = "loss", "loss"
        if self.series:
            first = self.series[0]
            train_name = first.train_metric or train_name
            eval_name = first.runs[0].metric or ("return" if self.metric_kind == "return" else "loss")
        mp.setLabel("left", f"training {train_name}" + (" (smoothed)" if self.weight > 0 else ""))
        ap.setLabel("left", f"held-out {eval_name}")
        floor = log_floor(self.series) if log else None
        drawn: dict = {mp: [], ap: []}  # (x, y) of everything drawn, for the view range
        for s in self.series:
            if self.weight > 0 and len(s.train.x):  # the unsmoothed mean, faint, as TensorBoard shows it
                faint = QColor(s.color)
                faint.setAlpha(60)
                x = s.train.x.astype(np.float64)
                mp.plot(x, s.train.mean, pen=pg.mkPen(faint, width=1), connect="finite")
                drawn[mp].append((x, s.train.mean))
            self.meta_items[s.label] = self._add(mp, s, s.smoothed, band_kind, floor, False, drawn[mp])
            self.adaptation_items[s.label] = self._add(ap, s, s.adaptation, band_kind, floor, True, drawn[ap])
        steps = inner_steps(self.series)
        ap.getAxis("bottom").setTicks([[(float(v), str(v)) for v in steps]] if steps else None)
        for p in (mp, ap):
            fit = view_range(drawn[p], log, 0)  # the legend is a row under the axis: no room kept for it
            if fit is None:
                p.enableAutoRange()
            else:
                p.setRange(xRange=fit[:2], yRange=fit[2:], padding=0.02)

    @staticmethod
    def _add(p, s: Series, agg: Aggregate, band_kind: str, floor: float | None, symbols: bool, drawn: list):
        x = agg.x.astype(np.float64)
        fill = None
        band = s.band(agg, band_kind)
        if band is not None and len(x):
            lo, hi = band
            if floor is not None:  # a CI reaching zero or below: drawn down to the lowest run's value instead
                lo = band_on_log_axis(lo, agg, floor)
            lower = pg.PlotDataItem(x, lo, pen=pg.mkPen(None), connect="finite")
            upper = pg.PlotDataItem(x, hi, pen=pg.mkPen(None), connect="finite")
            p.addItem(lower)  # first: the plot puts them on its log axis, the fill takes their drawn paths
            p.addItem(upper)
            color = QColor(s.color)
            color.setAlpha(60)
            fill = pg.FillBetweenItem(lower, upper, brush=pg.mkBrush(color))
            p.addItem(fill)
            drawn += [(x, lo), (x, hi)]
        extra = dict(symbol="o", symbolSize=6, symbolBrush=s.color, symbolPen=None) if symbols else {}
        # a long name is shortened in the legend; the CSV has it whole
        line = p.plot(x, agg.mean, pen=pg.mkPen(s.color, width=2), name=shorten(s.label, LEGEND_NAME),
                      connect="finite", **extra)
        drawn.append((x, agg.mean))
        return line, fill

    # -- export ----------------------------------------------------------------------------------------
    def meta_loss_csv(self) -> str:
        return meta_loss_csv(self.series, self.band_combo.currentText(), self.weight)

    def adaptation_csv(self) -> str:
        return adaptation_csv(self.series, self.band_combo.currentText())

    def export_files(self, folder: Path, png: bool = True, csv: bool = True) -> Iterator[Path]:
        """Write both plots as PNG and their data as CSV into ``folder``, yielding each file once written;
        raises OSError when one cannot be."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, widget, text in (("runs_meta_loss", self.meta_plot, self.meta_loss_csv),
                                   ("runs_adaptation", self.adaptation_plot, self.adaptation_csv)):
            if png:
                export_plot_item(widget.getPlotItem(), folder / f"{name}.png", None)
                yield folder / f"{name}.png"
            if csv:
                atomic_write_text(folder / f"{name}.csv", text())
                yield folder / f"{name}.csv"
