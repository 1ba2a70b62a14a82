"""The views of the RL playground: the navigation plots (trajectories to a goal) and the frames of the
physics and MuJoCo families (an episode before and after adaptation, model above, baseline below).

Captions and legends sit outside the plots (:mod:`workbench.gui.playground_common`): inside they would
widen a narrow plot past its widget, or cover the goal.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from workbench.core.payloads import Trajectories2D
from workbench.services.playground_rl import mean_path, navigation_title, path_ends

from .playground_common import Caption, legend_label, side_by_side, swatch
from .plots import FramesRenderer, _step_color, make_plot

GOAL_COLOR = "#edc948"
MIN_FRAMES_HEIGHT = 160  # px: a frame is never a thumbnail


def legend_html(names: list[str]) -> str:
    """The navigation plots' legend (a row under them: a legend inside would hide goals)."""
    n = len(names)
    shown = [(s, name) for s, name in enumerate(names) if n <= 6 or s in (0, n - 1)]
    parts = [swatch(_step_color(s, n), name) for s, name in shown]
    parts += [swatch(GOAL_COLOR, "goal", "&#9733;"), swatch("#d0d0d0", "start", "&#9679;"),
              swatch("#9696a0", "goal range", "&#9476;&#9476;")]
    return ("&nbsp;&nbsp;&nbsp;".join(parts) + "<br><span style='color:#9a9ca5'>thin: the sampled trajectories; "
            "thick: their mean; dots: where each trajectory ended</span>")


class NavigationView:
    """One navigation plot: the goal range, the trajectories of each step (thin), their mean (thick) and
    their ends (dots), the goal star and the start; its caption above it."""

    def __init__(self, name: str):
        self.widget = make_plot(name, "x", "y")
        self.caption = Caption(f"{name}Caption")
        self.plot = self.widget.getPlotItem()
        if self.plot.legend is not None:
            self.plot.legend.setVisible(False)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.widget.setCursor(Qt.CursorShape.CrossCursor)
        self.widget.setMinimumSize(200, 200)
        self.range_box = pg.PlotDataItem(pen=pg.mkPen((150, 150, 160), width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.range_box)
        self.paths: list[pg.PlotDataItem] = []
        self.means: list[pg.PlotDataItem] = []
        self.ends: list[pg.ScatterPlotItem] = []
        self._names: list[str] = []
        self.start = pg.ScatterPlotItem([0.0], [0.0], size=9, brush=pg.mkBrush("#d0d0d0"), pen=pg.mkPen("#202020"))
        self.goal = pg.ScatterPlotItem(size=22, symbol="star", brush=pg.mkBrush(GOAL_COLOR), pen=pg.mkPen("#202020"))
        self.plot.addItem(self.start)
        self.plot.addItem(self.goal)
        self.goal.setZValue(10)
        self.start.setZValue(9)
        self.bounds = (-0.7, 0.7)

    def set_range(self, lo: float, hi: float, goal_lo: float, goal_hi: float) -> None:
        self.bounds = (lo, hi)
        a, b = goal_lo, goal_hi
        self.range_box.setData([a, b, b, a, a], [a, a, b, b, a])
        self.plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0)

    def set_goal(self, x: float, y: float) -> None:
        self.goal.setData([x], [y])

    def clear_paths(self) -> None:
        for item in self.paths + self.means + self.ends:
            item.setData([], [])

    def _ensure(self, names: list[str]) -> None:
        if names == self._names:
            return
        for item in self.paths + self.means + self.ends:
            self.plot.removeItem(item)
        self._names = list(names)
        self.paths, self.means, self.ends = [], [], []
        n = len(names)
        for s in range(n):
            color = _step_color(s, n)
            faint = pg.mkColor(color)
            faint.setAlpha(90)
            self.paths.append(pg.PlotDataItem(pen=pg.mkPen(faint, width=1), connect="finite"))
            self.means.append(pg.PlotDataItem(pen=pg.mkPen(color, width=3 if s in (0, n - 1) else 2), connect="finite"))
            self.ends.append(pg.ScatterPlotItem(size=8, brush=pg.mkBrush(color), pen=pg.mkPen("#202020")))
        for items, z in ((self.paths, 1), (self.means, 3), (self.ends, 4)):
            for item in items:
                item.setZValue(z)
                self.plot.addItem(item)

    def show(self, payload: Trajectories2D, names: list[str]) -> None:
        paths = np.asarray(payload.paths, dtype=np.float64)[0]  # (S+1, n, H+1, 2)
        self._ensure(names)
        for s in range(len(self.paths)):
            xs = np.concatenate([np.append(p[:, 0], np.nan) for p in paths[s]])
            ys = np.concatenate([np.append(p[:, 1], np.nan) for p in paths[s]])
            self.paths[s].setData(xs, ys)
            mean = mean_path(paths[s])
            self.means[s].setData(mean[:, 0], mean[:, 1])
            pts = path_ends(paths[s])
            self.ends[s].setData(pts[:, 0], pts[:, 1])
        goal = np.asarray(payload.goals)[0]
        self.set_goal(float(goal[0]), float(goal[1]))
        self.plot.setRange(xRange=self.bounds, yRange=self.bounds, padding=0)

    def path_ends(self, step: int) -> np.ndarray:
        """The drawn final positions of the trajectories after ``step`` (for tests): (n, 2)."""
        x, y = self.ends[step].getData()
        return np.stack([x, y], 1)

    def data_at(self, scene_pos):
        """The data point (x, y) under a scene position, or None outside the plot's view."""
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        return p.x(), p.y()


class NavigationPage(QWidget):
    """The two navigation plots side by side (model, baseline), their captions above, the legend under."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.nav = NavigationView("playgroundNavigationPlot")
        self.nav_baseline = NavigationView("playgroundBaselineNavigationPlot")
        self.legend = legend_label("playgroundNavigationLegend")
        self.legend.setText(legend_html(["before adaptation", "after 1 step"]))
        lay = side_by_side(self, (self.nav, self.nav_baseline), self.legend)
        lay.setRowStretch(1, 1)

    def show_result(self, result) -> None:
        """The trajectories of an RLResult of navigation: the model's, and the baseline's beside them."""
        self.nav.show(result.payload, result.step_names)
        self.legend.setText(legend_html(result.step_names))
        self.nav.caption.setText(navigation_title(f"Meta-learned: {result.algorithm}", result.returns,
                                                  result.final_distance))
        if result.baseline_payload is not None:
            self.nav_baseline.show(result.baseline_payload, result.baseline_step_names)
            self.nav_baseline.caption.setText(navigation_title(
                f"Pretrained baseline: {result.baseline_algorithm}", result.baseline_returns,
                result.baseline_final_distance))
        else:
            self.nav_baseline.clear_paths()


def _row_caption(name: str) -> QLabel:
    label = QLabel("")
    label.setObjectName(name)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return label


class FramesPage(QWidget):
    """The frames of an episode before | after adaptation: the model's above, the baseline's below (or why
    there is none), each row as tall as half the room (at least :data:`MIN_FRAMES_HEIGHT` px)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.frames = FramesRenderer()
        self.frames.setObjectName("playgroundFrames")
        self.frames_baseline = FramesRenderer()
        self.frames_baseline.setObjectName("playgroundBaselineFrames")
        for r in (self.frames, self.frames_baseline):
            r.setMinimumHeight(MIN_FRAMES_HEIGHT)
            r.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.caption = _row_caption("playgroundFramesCaption")
        self.baseline_caption = _row_caption("playgroundBaselineFramesCaption")
        self.baseline_empty = QLabel("No pretrained baseline: choose one under Baseline to compare with")
        self.baseline_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.baseline_empty.setWordWrap(True)
        self.baseline_stack = QStackedWidget()
        self.baseline_stack.addWidget(self.baseline_empty)
        self.baseline_stack.addWidget(self.frames_baseline)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.caption)
        lay.addWidget(self.frames, 1)
        lay.addWidget(self.baseline_caption)
        lay.addWidget(self.baseline_stack, 1)

    def set_names(self, family_title: str, model: str, baseline: str | None) -> None:
        self.caption.setText(f"<b>{family_title}</b> — meta-learned: {model}")
        self.baseline_caption.setText(f"Pretrained baseline: {baseline}" if baseline else "Baseline")
        if baseline is None:
            self.baseline_stack.setCurrentWidget(self.baseline_empty)

    def show_frames(self, payload, baseline_payload) -> None:
        self.frames.show_payload(payload)
        if baseline_payload is not None:
            self.frames_baseline.show_payload(baseline_payload)
            self.baseline_stack.setCurrentWidget(self.frames_baseline)
        else:
            self.baseline_stack.setCurrentWidget(self.baseline_empty)

    def frame_heights(self) -> list[float]:
        """The drawn height, in pixels, of every frame image on show (for tests and layout checks)."""
        out = []
        for r in (self.frames, self.frames_baseline):
            if not r.isVisible() or r.frames is None:
                continue
            for img in r.images:
                out.append(r.mapFromScene(img.sceneBoundingRect()).boundingRect().height())
        return out
