"""Rollout renderers of the plotted payloads: 1-D regression, 2-D trajectories, bandit arms, state visitation.

One grid of panels per renderer (a panel per held-out task, two columns), its panels made once and reused;
a renderer's legend is one :class:`~.common.RowLegend` under the grid, never over a panel's data, its
entries named with the algorithm's own step names (``payload.step_names``: "episode 10 of the trial",
"after 3 episodes of context"), else "before adaptation" / "after n steps"."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics

from workbench.core.payloads import BanditArms, RegressionCurves, StateVisitation, Trajectories2D
from workbench.core.plotting import step_names

from .common import PALETTE, PanelTitles, RowLegend, cache_static_parts, plot_item

MAX_ARM_TICKS = 12  # up to this many arms, each is labelled

def _step_color(s: int, steps: int):
    """Step ``s`` of ``steps``: red before adaptation, then greens, brighter for later steps."""
    if s == 0:
        return pg.mkColor(PALETTE[3])
    frac = s / max(1, steps - 1)
    return pg.mkColor(90, int(140 + 80 * frac), 110, int(110 + 145 * frac))


class RegressionRenderer(pg.GraphicsLayoutWidget):
    """'regression-1d': the true function, the support points and the prediction after each inner step."""

    view = RegressionCurves.view

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[dict] = []
        self._n = 0
        self._pool: list[pg.PlotItem] = []  # every panel made so far, reused
        self.titles = PanelTitles(self, lambda: 2 if self._n > 1 else 1)

    def resizeEvent(self, event) -> None:
        if getattr(self, "titles", None) is not None:  # (the base class resizes before __init__ is done)
            self.titles.refresh()  # first: the titles' widths bound how narrow the scene can be laid out
        super().resizeEvent(event)

    def _ensure(self, n: int, steps: int) -> None:
        if n == self._n and all(len(p["steps"]) == steps for p in self.panels):
            return
        for panel in self.panels:  # plot items are kept and reused (see _PanelRenderer._grid)
            self.ci.removeItem(panel["plot"])
            panel["plot"].hide()
        while len(self._pool) < n:
            plot = plot_item()
            cache_static_parts(plot)
            self._pool.append(plot)
        self.panels = []
        cols = 2 if n > 1 else 1
        for i in range(n):
            plot = self._pool[i]
            plot.clear()
            self.ci.addItem(plot, row=i // cols, col=i % cols)
            plot.show()
            truth = pg.PlotCurveItem(pen=pg.mkPen("#e8e8e8", width=2, style=Qt.PenStyle.DashLine))
            plot.addItem(truth)
            step_items = []
            for s in range(steps):
                frac = s / max(1, steps - 1)
                color = pg.mkColor(PALETTE[3]) if s == 0 else pg.mkColor(
                    int(90 + 0 * frac), int(140 + 80 * frac), int(90 + 20 * frac), int(90 + 165 * frac))
                width = 2.5 if s in (0, steps - 1) else 1
                item = pg.PlotCurveItem(pen=pg.mkPen(color, width=width), skipFiniteCheck=True)
                plot.addItem(item)
                step_items.append(item)
            support = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("#edc948"), pen=pg.mkPen("#202020"))
            plot.addItem(support)
            self.panels.append({"plot": plot, "truth": truth, "steps": step_items, "support": support, "title": ""})
        self._n = n

    def show_payload(self, payload: RegressionCurves) -> None:
        pred = payload.pred
        n, steps = pred.shape[0], pred.shape[1]
        self._ensure(n, steps)
        x = payload.x
        names = payload.task_param_names
        for i, panel in enumerate(self.panels):
            panel["truth"].setData(x, payload.y_true[i])
            for s, item in enumerate(panel["steps"]):
                item.setData(x, pred[i, s])
            panel["support"].setData(payload.x_support[i], payload.y_support[i])
            params = payload.task_params
            if params is not None and len(names):
                title = "  ".join(f"{k} {v:.2f}" for k, v in zip(names, params[i]))
                if title != panel["title"]:
                    panel["title"] = title
                    self.titles.set(panel["plot"], title)

    def plot_items(self) -> list:
        return [p["plot"] for p in self.panels]


class _PanelRenderer(pg.GraphicsLayoutWidget):
    """A grid of one plot per task, rebuilt only when the number of tasks changes, with one legend row under
    it (``self.legend``) for the entries of the first panel."""

    view = ""
    integer_x = False  # the panels' x axis counts (arms)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[pg.PlotItem] = []
        self._pool: list[pg.PlotItem] = []  # every panel made so far (see _grid)
        self._shape = None
        self.legend = RowLegend()
        self.titles = PanelTitles(self, lambda: 2 if len(self.panels) > 1 else 1)

    def resizeEvent(self, event) -> None:
        if getattr(self, "titles", None) is not None:  # (the base class resizes before __init__ is done)
            self.titles.refresh()  # first: the titles' widths bound how narrow the scene can be laid out
        super().resizeEvent(event)

    def _start(self) -> None:
        """Before a new payload: the legend's entries first (an entry whose item is gone paints a deleted
        object: the app aborted on the third redraw of a visible grid)."""
        self.legend.clear()

    @staticmethod
    def _reset(plot: pg.PlotItem) -> None:
        """Empty a panel for a new payload."""
        plot.clear()

    def _grid(self, n: int) -> list[pg.PlotItem]:
        """``n`` panels in two columns and the legend under them.  Panels are made once and kept (taken out of
        the layout when fewer are shown): deleting the plot items of a grid on screen crashed the app on a
        later redraw."""
        if self._shape != n:
            for plot in self.panels:
                self.ci.removeItem(plot)
                plot.hide()
            if self.legend.scene() is not None:
                self.ci.removeItem(self.legend)
            while len(self._pool) < n:
                self._pool.append(plot_item(integer_x=self.integer_x))
            cols = 2 if n > 1 else 1
            self.panels = self._pool[:n]
            for i, plot in enumerate(self.panels):
                self.ci.addItem(plot, row=i // cols, col=i % cols)
                plot.show()
            self.ci.addItem(self.legend, row=-(-n // cols), col=0, colspan=cols)
            self._shape = n
        return self.panels

    def plot_items(self) -> list:
        return list(self.panels)


class TrajectoryRenderer(_PanelRenderer):
    """'trajectories-2d': paths from the origin before and after each adaptation step, and the goal."""

    view = Trajectories2D.view

    def show_payload(self, payload: Trajectories2D) -> None:
        paths, goals = payload.paths, payload.goals  # (T, S+1, n, H+1, 2), (T, 2)
        names = step_names(payload.steps, payload.step_names)
        lo, hi = payload.bounds
        self._start()
        last = paths.shape[1] - 1
        for i, plot in enumerate(self._grid(paths.shape[0])):
            self._reset(plot)
            for s in range(paths.shape[1]):
                xs = np.concatenate([np.append(p[:, 0], np.nan) for p in paths[i, s]])
                ys = np.concatenate([np.append(p[:, 1], np.nan) for p in paths[i, s]])
                item = plot.plot(xs, ys, pen=pg.mkPen(_step_color(s, paths.shape[1]), width=1.5), connect="finite")
                if i == 0 and s in (0, last) and s < len(names):
                    self.legend.addItem(item, names[s])
            goal = plot.plot([goals[i, 0]], [goals[i, 1]], pen=None, symbol="star", symbolSize=16,
                             symbolBrush="#edc948")
            if i == 0:
                self.legend.addItem(goal, "goal")
            plot.plot([0], [0], pen=None, symbol="o", symbolSize=7, symbolBrush="#d0d0d0")
            ret = payload.returns[i]
            self.titles.set(plot, f"return {ret[0]:.1f} → {ret[-1]:.1f}")
            plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0)
            plot.setAspectLocked(True)


class BanditRenderer(_PanelRenderer):
    """'bandit-arms': how often each arm is pulled before and after adaptation, against the arm means."""

    view = BanditArms.view
    integer_x = True

    def show_payload(self, payload: BanditArms) -> None:
        frac, means = payload.pull_fraction, payload.means  # (T, S+1, k), (T, k)
        names = step_names(payload.steps, payload.step_names)
        k = means.shape[1]
        self._start()
        for i, plot in enumerate(self._grid(frac.shape[0])):
            self._reset(plot)
            last = frac.shape[1] - 1
            width = 0.8 / 2
            first_bars = pg.BarGraphItem(x=np.arange(k) - width / 2, height=frac[i, 0], width=width, brush=PALETTE[3])
            last_bars = pg.BarGraphItem(x=np.arange(k) + width / 2, height=frac[i, last], width=width,
                                        brush=PALETTE[2])
            plot.addItem(first_bars)
            plot.addItem(last_bars)
            arm_means = plot.plot(np.arange(k), means[i], pen=None, symbol="d", symbolSize=10, symbolBrush="#edc948")
            if i == 0:
                self.legend.addItem(first_bars, f"pulls, {names[0]}")
                self.legend.addItem(last_bars, f"pulls, {names[last]}")
                self.legend.addItem(arm_means, "arm mean")
            plot.setLabel("bottom", "arm")
            # arms are categories: each one named (a few), else whole-number ticks
            plot.getAxis("bottom").setTicks([[(float(a), str(a)) for a in range(k)]] if k <= MAX_ARM_TICKS else None)
            plot.setRange(xRange=(-0.6, k - 0.4), yRange=(0, 1.05), padding=0)
            self.titles.set(plot, f"best arm {int(np.argmax(means[i]))}; return {payload.returns[i][0]:.1f} → "
                                  f"{payload.returns[i][-1]:.1f}")


class VisitationRenderer(_PanelRenderer):
    """'state-visitation': the fraction of time spent in each state, before and after adaptation (the two
    columns are named with the algorithm's step names, elided to fit under their column)."""

    view = StateVisitation.view

    def show_payload(self, payload: StateVisitation) -> None:
        visits = payload.visits  # (T, S+1, states)
        names = step_names(payload.steps, payload.step_names)
        n = visits.shape[2]
        self._start()
        fm = QFontMetrics(self.font())
        for i, plot in enumerate(self._grid(visits.shape[0])):
            self._reset(plot)
            last = visits.shape[1] - 1
            img = pg.ImageItem(np.stack([visits[i, 0], visits[i, last]]).T)
            img.setColorMap(pg.colormap.get("viridis"))
            plot.addItem(img)
            room = max(40, int(plot.vb.width() or 2 * 120) // 2 - 8)  # half the panel under each column
            plot.getAxis("bottom").setTicks([[(0.5, fm.elidedText(names[0], Qt.TextElideMode.ElideRight, room)),
                                              (1.5, fm.elidedText(names[last], Qt.TextElideMode.ElideRight, room))]])
            plot.setLabel("left", "state")
            plot.setRange(xRange=(0, 2), yRange=(0, n), padding=0)
            self.titles.set(plot, f"return {payload.returns[i][0]:.1f} → {payload.returns[i][-1]:.1f}")
