"""The rollout renderer of rendered frames ('frames'): an episode before and after adaptation, played."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

from workbench.core.payloads import Frames
from workbench.core.plotting import step_names

from .common import PanelTitles


class FramesRenderer(pg.GraphicsLayoutWidget):
    """'frames': rendered frames of one episode before adaptation (left) and after the last step (right),
    played side by side at the payload's frame rate.  The timer only runs while the view is visible; each
    tick sets two small images (no re-layout, no auto-range)."""

    view = Frames.view

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        for col in range(2):
            p = self.addPlot(row=0, col=col)
            p.hideAxis("left")
            p.hideAxis("bottom")
            p.setMenuEnabled(False)
            p.setMouseEnabled(False, False)
            p.getViewBox().invertY(True)
            p.getViewBox().setAspectLocked(True)
            img = pg.ImageItem(axisOrder="row-major")
            p.addItem(img)
            self.panels.append(p)
            self.images.append(img)
        self.frames = None  # (S+1, F, H, W, 3) uint8
        self.index = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.advance)
        self.titles = PanelTitles(self, lambda: 2)

    def resizeEvent(self, event) -> None:
        if getattr(self, "titles", None) is not None:  # (the base class resizes before __init__ is done)
            self.titles.refresh()  # first: the titles' widths bound how narrow the scene can be laid out
        super().resizeEvent(event)

    def show_payload(self, payload: Frames) -> None:
        frames = np.asarray(payload.frames)
        if frames.ndim != 5 or frames.shape[0] < 1 or frames.shape[1] < 1:
            return
        first_time = self.frames is None or self.frames.shape[2:] != frames.shape[2:]
        self.frames, self.index = frames, 0
        returns = np.asarray(payload.returns)
        steps = list(payload.frame_steps)
        all_names = step_names(payload.steps, payload.step_names)  # in-context algorithms name their steps
        index = list(payload.steps)
        names = [all_names[index.index(s)] if s in index else step_names([s])[0] for s in (steps[0], steps[-1])]
        for p, name, ret in zip(self.panels, names, (returns[0][0], returns[0][-1])):
            self.titles.set(p, f"{name}: return {ret:.1f}")
        self.titles.fit()
        self.advance()
        if first_time:
            h, w = frames.shape[2:4]
            for p in self.panels:
                p.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        self.timer.setInterval(int(1000 / max(15, min(60, int(payload.fps)))))
        if self.isVisible():  # hidden (another tab on show): showEvent starts it
            self.timer.start()

    def advance(self) -> None:
        if self.frames is None:
            return
        f = self.frames
        i = self.index % f.shape[1]
        for img, s in zip(self.images, (0, f.shape[0] - 1)):
            img.setImage(f[s, i], autoLevels=False, levels=(0, 255))
        self.index += 1

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.frames is not None and not self.timer.isActive():
            self.timer.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def plot_items(self) -> list:
        return list(self.panels)
