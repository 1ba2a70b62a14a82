"""The views of the sinusoid playground: an adaptation plot per model, the loss chart, their legends.

The plots are made for a full page: no title inside a plot (a long pyqtgraph title sets the plot's minimum
width, and a plot narrower than its title is drawn wider than its widget, cut at the right), no legend over
the data (each legend is a row of text under its chart), ranges fixed by the page.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy, QWidget

from workbench.services.playground_regression import log_ticks, loss_view, step_caption

from .playground_common import Caption, legend_label, side_by_side, swatch
from .plots import PALETTE, fixed_plot, make_plot

SUPPORT_BRUSH = "#edc948"
TRUTH_COLOR = "#e8e8e8"
BEFORE_COLOR = PALETTE[3]
LATEST_COLOR = "#7ee07a"
NO_BASELINE_NOTE = "no pretrained baseline:\nchoose one under Baseline"
LOSS_NAMES = {"support_loss": "support (model)", "query_loss": "query (model)",
              "baseline_support_loss": "support (baseline)", "baseline_query_loss": "query (baseline)"}
LOSS_COLORS = {"support_loss": PALETTE[0], "query_loss": PALETTE[1],
               "baseline_support_loss": PALETTE[0], "baseline_query_loss": PALETTE[1]}


def ramp(s: int, total: int):
    """The colour of intermediate step ``s`` of ``total``: like the training view's rollouts, brighter later."""
    frac = s / max(1, total)
    return pg.mkColor(90, int(140 + 80 * frac), 110, int(70 + 150 * frac))


def adaptation_legend(latest_step: int | None) -> str:
    """The legend of the adaptation plots (the same items in both)."""
    newest = "after adaptation" if latest_step is None else (
        f"after {latest_step} step{'s' if latest_step != 1 else ''} (newest)")
    parts = [swatch(SUPPORT_BRUSH, "support points", "&#9679;"), swatch(TRUTH_COLOR, "true function",
                                                                          "&#9476;&#9476;"),
             swatch(BEFORE_COLOR, "before adaptation"), swatch(ramp(1, 2), "intermediate steps"),
             swatch(LATEST_COLOR, newest)]
    return "&nbsp;&nbsp;&nbsp;".join(parts)


class AdaptationPanel:
    """One adaptation plot (the model's or the baseline's): the true function, the prediction before and
    after each step, the support points, and a note in the middle when there is nothing to show.  Its
    items are created once and updated with ``setData``."""

    def __init__(self, name: str):
        self.widget = make_plot(name, "x", "y")
        p = self.plot = self.widget.getPlotItem()
        fixed_plot(p)
        p.legend.setVisible(False)  # the legend is a row under the plots: inside, it would hide points
        for axis in ("left", "bottom"):
            p.getAxis(axis).enableAutoSIPrefix(False)
        self.widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.widget.setMinimumSize(220, 180)
        self.caption = Caption(f"{name}Caption")
        self.truth = pg.PlotCurveItem(pen=pg.mkPen(TRUTH_COLOR, width=2, style=Qt.PenStyle.DashLine))
        self.before = pg.PlotCurveItem(pen=pg.mkPen(BEFORE_COLOR, width=2), skipFiniteCheck=True)
        self.latest = pg.PlotCurveItem(pen=pg.mkPen(LATEST_COLOR, width=3), skipFiniteCheck=True)
        self.support = pg.ScatterPlotItem(size=13, brush=pg.mkBrush(SUPPORT_BRUSH), pen=pg.mkPen("#202020", width=1.5))
        for z, item in enumerate((self.truth, self.before, self.latest, self.support)):
            item.setZValue(10 + 10 * z)
            p.addItem(item)
        self.steps: list[pg.PlotCurveItem] = []  # intermediate steps 1..n-1
        self.note = pg.TextItem("", color="#d8d8d8", anchor=(0.5, 0.5), fill=pg.mkBrush(37, 38, 43, 235),
                                border=pg.mkPen("#4a4d56"))
        self.note.setZValue(100)
        p.addItem(self.note, ignoreBounds=True)
        self.total = 0
        self.latest_step: int | None = None

    @property
    def viewbox(self) -> pg.ViewBox:
        return self.plot.vb

    def set_range(self, x_range, y_range) -> None:
        self.plot.setRange(xRange=x_range, yRange=y_range, padding=0.03)
        self.note.setPos((x_range[0] + x_range[1]) / 2, (y_range[0] + y_range[1]) / 2)

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def set_points(self, x, y) -> None:
        self.support.setData(x, y)

    def set_truth(self, curve) -> None:
        if curve is None:
            self.truth.setData([], [])
        else:
            self.truth.setData(*curve)

    def clear_steps(self) -> None:
        self.before.setData([], [])
        self.latest.setData([], [])
        for item in self.steps:
            item.setData([], [])
        self.latest_step = None

    def show(self, results: list, first_new: int, field: str, total: int) -> None:
        """Draw ``results[first_new:]`` (already drawn: the ones before); ``total``: steps planned."""
        if not results:
            return
        if total != self.total:
            self.total = total
            for s, item in enumerate(self.steps, start=1):
                item.setPen(pg.mkPen(ramp(s, total), width=1))
        for i in range(max(first_new, 0), len(results)):
            r = results[i]
            y = getattr(r, field)
            if y is None:
                continue
            if r.step == 0:
                self.before.setData(r.grid_x, y)
                continue
            prev = results[i - 1] if i > 0 else None
            if prev is not None and prev.step >= 1:  # the newest so far becomes an intermediate step
                self._intermediate(prev.step).setData(prev.grid_x, getattr(prev, field))
        last = results[-1]
        y = getattr(last, field)
        if last.step >= 1 and y is not None:
            self.latest.setData(last.grid_x, y)
            self.latest_step = last.step

    def _intermediate(self, s: int) -> pg.PlotCurveItem:
        while len(self.steps) < s:
            k = len(self.steps) + 1
            item = pg.PlotCurveItem(pen=pg.mkPen(ramp(k, max(self.total, k)), width=1), skipFiniteCheck=True)
            item.setZValue(15)
            self.plot.addItem(item)
            self.steps.append(item)
        return self.steps[s - 1]

    # -- mouse -----------------------------------------------------------------------------------------
    def data_at(self, scene_pos):
        """The data point (x, y) under a scene position, or None outside the plot's view."""
        if not self.viewbox.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.viewbox.mapSceneToView(scene_pos)
        return p.x(), p.y()

    def to_scene(self, xs, ys) -> tuple[list[float], list[float]]:
        """Scene positions of data points."""
        pts = [self.viewbox.mapViewToScene(pg.Point(x, y)) for x, y in zip(xs, ys)]
        return [q.x() for q in pts], [q.y() for q in pts]


class LossChart:
    """Support (and, with a known true function, query) MSE per inner step, log scale: the model's solid
    with markers, the baseline's dashed; its legend is a row under it listing only the curves with data."""

    def __init__(self, name: str = "playgroundLossPlot"):
        self.widget = make_plot(name, "inner step", "MSE")
        lp = self.plot = self.widget.getPlotItem()
        lp.setLogMode(y=True)
        fixed_plot(lp)
        lp.legend.setVisible(False)
        lp.setRange(xRange=(0, 10), yRange=(-3, 1), padding=0)
        lp.getAxis("left").setTicks(log_ticks(-3, 1))
        self.widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.widget.setMinimumSize(220, 130)
        dash = Qt.PenStyle.DashLine
        self.items = {
            "support_loss": lp.plot(pen=pg.mkPen(PALETTE[0], width=2), symbol="o",
                                    symbolSize=5, symbolBrush=PALETTE[0], symbolPen=None),
            "query_loss": lp.plot(pen=pg.mkPen(PALETTE[1], width=2), symbol="s",
                                  symbolSize=5, symbolBrush=PALETTE[1], symbolPen=None),
            "baseline_support_loss": lp.plot(pen=pg.mkPen(PALETTE[0], width=1.5, style=dash)),
            "baseline_query_loss": lp.plot(pen=pg.mkPen(PALETTE[1], width=1.5, style=dash)),
        }
        self.legend = legend_label(f"{name}Legend")
        self.listed: list[str] = []  # the fields in the legend
        self._view = None  # (steps, log10 low, log10 high)

    def clear(self) -> None:
        for item in self.items.values():
            item.setData([], [])
        self._view = None
        self._set_legend([])

    def show(self, results: list, total: int) -> None:
        steps = np.array([r.step for r in results], dtype=np.float64)
        values, listed = [], []
        for field, item in self.items.items():
            y = np.array([np.nan if getattr(r, field) is None else getattr(r, field) for r in results],
                         dtype=np.float64)
            if np.isfinite(y).any():
                y = np.maximum(y, 1e-12)
                item.setData(steps, y)
                values.append(y[np.isfinite(y)])
                listed.append(field)
            else:
                item.setData([], [])
        self._set_legend(listed)
        view = loss_view(total, np.concatenate(values), self._view) if values else None
        if view is not None:
            self._view = view
            self.plot.setRange(xRange=(0, max(total, 1)), yRange=view[1:], padding=0.03)
            self.plot.getAxis("left").setTicks(log_ticks(*view[1:]))

    def _set_legend(self, fields: list[str]) -> None:
        self.listed = fields
        glyph = {True: "&#9473;&#9473;", False: "&#9476;&#9476;"}
        self.legend.setText("&nbsp;&nbsp;&nbsp;".join(
            swatch(LOSS_COLORS[f], LOSS_NAMES[f], glyph[not f.startswith("baseline")]) for f in fields))


class RegressionViews(QWidget):
    """Everything the sinusoid page draws: the model's and the baseline's adaptation plots side by side with
    their captions above and their legend under them, and the loss chart below."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panel = AdaptationPanel("playgroundSinusoidPlot")
        self.base_panel = AdaptationPanel("playgroundBaselinePlot")
        self.loss = LossChart()
        self.legend = legend_label("playgroundSinusoidLegend")
        grid = side_by_side(self, (self.panel, self.base_panel), self.legend)
        grid.addWidget(self.loss.widget, 3, 0, 1, 2)
        grid.addWidget(self.loss.legend, 4, 0, 1, 2)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(3, 2)
        self._show_legend()

    def _show_legend(self) -> None:
        self.legend.setText(adaptation_legend(self.panel.latest_step))

    def set_ranges(self, session) -> None:
        for panel in (self.panel, self.base_panel):
            panel.set_range(session.x_range, session.y_range)
        self.base_panel.set_note("" if session.baseline is not None else NO_BASELINE_NOTE)

    def clear(self, session) -> None:
        """No adaptation on show (the points stay)."""
        for panel in (self.panel, self.base_panel):
            panel.clear_steps()
        self.loss.clear()
        self._show_legend()
        s = session
        self.panel.caption.setText(f"{s.model.algorithm} (this model)" if s else "")
        self.base_panel.caption.setText(f"{s.baseline.algorithm} (baseline)" if s and s.baseline else
                                        "baseline" if s else "")
        if s is None:
            self.base_panel.set_note("")

    def draw(self, results: list, first_new: int, total: int, session) -> None:
        """Show ``results[first_new:]`` of an adaptation planned to take ``total`` steps."""
        s = session
        self.panel.show(results, first_new, "prediction", total)
        if s.baseline is not None:
            self.base_panel.show(results, first_new, "baseline_prediction", total)
        self.loss.show(results, total)
        last = results[-1]
        self.panel.caption.setText(f"{s.model.algorithm} (this model)\n"
                                   + step_caption(last.step, last.support_loss, last.query_loss))
        if last.baseline_support_loss is not None:
            self.base_panel.caption.setText(f"{s.baseline.algorithm} (baseline)\n" + step_caption(
                last.step, last.baseline_support_loss, last.baseline_query_loss))
        self._show_legend()

    def show_points(self, support, session) -> None:
        """The support points, and the true function when they were sampled from it."""
        curve = session.true_curve(*support.true) if support.true is not None and session is not None else None
        for panel in (self.panel, self.base_panel):
            panel.set_points(support.x, support.y)
            panel.set_truth(curve)
        if session is not None:
            self.panel.set_note("" if len(support) else "click to place support points\nor press 'Sample K points'")
