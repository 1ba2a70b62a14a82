"""The Task map view: where in task space the model adapts well, and what happens just outside training.

Two parameters: a heatmap of the held-out metric per grid cell, the training range outlined (dashed);
one parameter: the metric's curve with its 95% CI band, the training range shaded.  Layers: the metric
after adaptation, the gain from adaptation (after − before) and the gap to a pretrained baseline (after −
baseline), whose colours always put "better" on the same side (blue).  Clicking a cell asks for that task
in the Playground (``cellClicked``).  The numbers are :class:`workbench.core.taskmap.TaskMap`'s; this only
draws them.  :func:`write_png` draws a map into a PNG file (``workbench taskmap --png``).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from workbench.core.storage import atomic_write_bytes

from .plots.common import fixed_plot, plot_item
from .run_status import bundle_label

LAYERS = {"after": "After adaptation", "gain": "Gain from adaptation (after − before)",
          "gap": "Gap to the baseline (after − baseline)"}
RANGE_PEN = pg.mkPen("#f0f0f0", width=2, style=Qt.PenStyle.DashLine)


def layer_values(m, layer: str) -> np.ndarray | None:
    """The grid a layer shows (None: the map has no baseline for the gap)."""
    return {"after": m.after, "gain": m.gain, "gap": m.gap}[layer]


def layer_title(m, layer: str) -> str:
    metric = m.metric.upper() if m.metric == "mse" else m.metric
    after = f"after {m.steps} {m.step_label}{'s' if m.steps != 1 and not m.step_label.endswith('s') else ''}"
    if layer == "after":
        return f"Held-out {metric} {after} ({'higher' if m.higher_is_better else 'lower'} is better)"
    better = "positive" if m.higher_is_better else "negative"
    what = "adaptation's change" if layer == "gain" else "meta-learned − baseline"
    return f"{metric}: {what} {after} (blue, {better}: better)"


class TaskMapView(QWidget):
    """A task-space map with its layer switch; ``fullRequested`` asks the owner for a full-grid map of the
    current model, ``cellClicked`` gives the clicked cell's task parameters {name: value}."""

    cellClicked = Signal(dict)
    fullRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("taskMapView")
        self.map = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        top = QHBoxLayout()
        self.layer = QComboBox()
        self.layer.setObjectName("taskMapLayer")
        self.layer.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer.setMinimumContentsLength(14)  # a narrow dock elides the layer's name
        for key, text in LAYERS.items():
            self.layer.addItem(text, key)
        self.layer.setToolTip("What the colours show: the metric after adaptation, what adaptation changed, or "
                              "the gap to a pretrained baseline of the family (when there is one)")
        self.layer.currentIndexChanged.connect(lambda _: self.redraw())
        top.addWidget(self.layer, 1)
        self.full_button = QPushButton("Full map")
        self.full_button.setObjectName("taskMapFullButton")
        self.full_button.setToolTip("Map the current model on the full grid (25 points per parameter), with the "
                                    "gap to the newest pretrained baseline of the family in the runs folder")
        self.full_button.clicked.connect(self.fullRequested)
        top.addWidget(self.full_button)
        lay.addLayout(top)
        self.status = QLabel("The map appears at the first evaluation of a run, or for an opened model")
        self.status.setObjectName("taskMapStatus")
        self.status.setToolTip("A map of the held-out metric over the task parameters (sinusoid, navigation, CartPole, "
                               "Pendulum, HalfCheetah-Vel, classification shots), past the training range; "
                               "click a point to open that task in the Playground")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # one line, elided
        lay.addWidget(self.status)
        self.title = QLabel("")
        self.title.setObjectName("taskMapTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)  # (a plot title would set the plot's minimum width to its text's)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.title)
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setObjectName("taskMapPlot")
        self.plot = plot_item()
        fixed_plot(self.plot)
        self.widget.addItem(self.plot, 0, 0)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(interactive=False, width=12, colorMap=pg.colormap.get("viridis"))
        self.colorbar.setImageItem(self.image, insert_in=self.plot)  # in the plot's own layout: it shares its width
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#4e79a7", width=2), symbol="o", symbolSize=5,
                                     symbolBrush="#4e79a7")
        self.lower, self.upper = pg.PlotDataItem(), pg.PlotDataItem()
        self.band = pg.FillBetweenItem(self.lower, self.upper, brush=pg.mkBrush(78, 121, 167, 70))
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(240, 240, 240, 28),
                                          pen=RANGE_PEN)
        self.outline = pg.PlotDataItem(pen=RANGE_PEN)
        for item in (self.region, self.band, self.curve, self.outline):
            self.plot.addItem(item)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        lay.addWidget(self.widget, 1)
        self._show_kind(None)

    # -- data ------------------------------------------------------------------------------------------
    def show_map(self, m, source: str = "") -> None:
        """Draw map ``m`` (a TaskMap); ``source`` says whose it is ("live, iteration 400", a bundle's name)."""
        self.map = m
        cells = " × ".join(str(len(a)) for a in m.axes)
        tasks = f"{m.tasks_per_cell} task{'s' if m.tasks_per_cell != 1 else ''}/point"
        text = (f"{source + ' · ' if source else ''}{cells} grid, {tasks} · dashed: training range"
                f"{'' if m.baseline is not None else ' · no baseline'} · click: Playground")
        self.status.setText(text)
        self.status.setToolTip(f"{text}\n{m.family}: held-out {m.metric} over "
                               f"{' and '.join(p.label for p in m.params)}; the gap layer needs a pretrained model "
                               f"of the family in the runs folder (or `workbench taskmap --baseline`)")
        self.redraw()

    def clear(self) -> None:
        self.map = None
        self.title.setText("")
        self._show_kind(None)

    def current_layer(self) -> str:
        return self.layer.currentData()

    def redraw(self) -> None:
        m = self.map
        if m is None:
            return
        layer = self.current_layer()
        values = layer_values(m, layer)
        if values is None:
            self.title.setText("No baseline: the gap layer needs a pretrained model of the family")
            self._show_kind(None)
            return
        self.title.setText(layer_title(m, layer))
        if len(m.params) == 2:
            self._draw_heatmap(m, values, layer)
        else:
            self._draw_curve(m, values, layer)

    def _show_kind(self, kind: str | None) -> None:
        for item in (self.image, self.outline):
            item.setVisible(kind == "heatmap")
        self.colorbar.setVisible(kind == "heatmap")
        for item in (self.curve, self.band, self.region):
            item.setVisible(kind == "curve")

    def _draw_heatmap(self, m, values: np.ndarray, layer: str) -> None:
        self._show_kind("heatmap")
        (p0, p1), (a0, a1) = m.params, m.axes
        finite = values[np.isfinite(values)]
        if layer == "after":
            cmap = pg.colormap.get("viridis")
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        else:  # diverging around 0, blue where better
            cmap = pg.colormap.get("CET-D1")
            if m.higher_is_better:  # a reversed copy (ColorMap.reverse() changes the shared map in place)
                pos, colors = cmap.getStops()
                cmap = pg.ColorMap(pos, colors[::-1])
            r = float(np.abs(finite).max()) if finite.size else 1.0
            lo, hi = -r, r
        if hi <= lo:
            hi = lo + 1e-9
        self.colorbar.setColorMap(cmap)
        self.colorbar.setLevels((lo, hi))
        d0, d1 = _step(a0), _step(a1)
        # row-major image (rows: y = parameter 1; columns: x = parameter 0)
        self.image.setImage(np.ascontiguousarray(values.T), autoLevels=False, levels=(lo, hi))
        self.image.setRect(QRectF(a0[0] - d0 / 2, a1[0] - d1 / 2, d0 * len(a0), d1 * len(a1)))
        x0, x1, y0, y1 = p0.low, p0.high, p1.low, p1.high
        self.outline.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        self.plot.setLabel("bottom", p0.label)
        self.plot.setLabel("left", p1.label)
        self.plot.setXRange(a0[0] - d0 / 2, a0[-1] + d0 / 2, padding=0)
        self.plot.setYRange(a1[0] - d1 / 2, a1[-1] + d1 / 2, padding=0)

    def _draw_curve(self, m, values: np.ndarray, layer: str) -> None:
        self._show_kind("curve")
        p, a = m.params[0], m.axes[0]
        ci = m.after_ci95 if layer == "after" else np.full_like(values, np.nan)
        ci = np.where(np.isfinite(ci), ci, 0.0)
        self.curve.setData(a, values)
        self.lower.setData(a, values - ci)
        self.upper.setData(a, values + ci)
        pad = 0.0 if p.high > p.low else 0.15 * _step(a)  # a single trained value (shots): a band around it
        self.region.setRegion((p.low - pad, p.high + pad))
        self.plot.setLabel("bottom", p.label)
        self.plot.setLabel("left", m.metric if layer == "after" else f"Δ {m.metric}")
        finite = np.concatenate([(values - ci)[np.isfinite(values)], (values + ci)[np.isfinite(values)]])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        self.plot.setYRange(lo - pad, hi + pad, padding=0)
        self.plot.setXRange(a[0] - _step(a) / 2, a[-1] + _step(a) / 2, padding=0)

    # -- clicks ----------------------------------------------------------------------------------------
    def cell_at(self, x: float, y: float | None = None) -> tuple[int, ...] | None:
        """The grid cell at plot coordinates (x, y); None outside the grid."""
        m = self.map
        if m is None:
            return None
        index = []
        for a, v in zip(m.axes, (x, y)):
            if v is None:
                return None
            i = int(np.abs(a - v).argmin())  # the nearest grid value (a shots grid is not evenly spaced)
            half = (a[min(i + 1, len(a) - 1)] - a[max(i - 1, 0)]) / (2 if 0 < i < len(a) - 1 else 1) / 2
            if abs(v - a[i]) > max(half, 0.5 * _step(a)):
                return None
            index.append(i)
        return tuple(index)

    def click_cell(self, index: tuple[int, ...]) -> None:
        if self.map is not None:
            self.cellClicked.emit(self.map.cell_values(index))

    def _on_click(self, event) -> None:
        if self.map is None or event.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        pt = vb.mapSceneToView(event.scenePos())
        index = self.cell_at(pt.x(), pt.y() if len(self.map.params) == 2 else 0.0)
        if index is not None:
            self.click_cell(index[: len(self.map.params)])


def _step(a: np.ndarray) -> float:
    return float(a[1] - a[0]) if len(a) > 1 else 1.0


_app = None  # the offscreen application write_png starts when none runs (kept: Qt must outlive its widgets)


def write_png(m, path: Path, size: tuple[int, int] = (900, 620), layer: str = "after") -> Path:
    """Draw map ``m`` as the app's view does into the PNG ``path`` (written whole or not at all).  Starts an
    offscreen Qt application when none runs.  Raises OSError when the file cannot be written."""
    global _app
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        from PySide6.QtCore import qInstallMessageHandler

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        qInstallMessageHandler(lambda *args: None)  # the offscreen platform's notes are not the user's business
        _app = QApplication(["workbench"])
    view = TaskMapView()
    view.layer.setCurrentIndex(max(0, view.layer.findData(layer)))
    view.layer.hide()  # a picture: its title names the layer
    view.full_button.hide()
    view.resize(*size)
    bundle = m.notes.get("bundle")
    view.show_map(m, bundle_label(Path(bundle)) if bundle else "")
    view.show()
    QApplication.processEvents()
    image = view.grab()
    view.close()
    view.deleteLater()
    QApplication.processEvents()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if image.isNull() or not image.save(buffer, "PNG"):
        raise OSError(errno.EIO, "cannot draw the image", str(path))
    atomic_write_bytes(path, bytes(data))  # whole or not at all
    return Path(path)


__all__ = ["TaskMapView", "write_png", "LAYERS"]
