"""The Train tab: the configuration panel and the live views as docks the user can rearrange.

A QMainWindow used as a page of the main window's tab bar, so its docks keep Qt's drag, float and
tabify behaviour while the Runs and the Playground get whole pages of their own.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from workbench.core.losses import higher_is_better

from .config_panel import ConfigPanel
from .plots import AdaptationPlot, MetaLossPlot, RolloutView, export_plot_item
from .taskmap_view import TaskMapView

__all__ = ["TrainPage"]


class TrainPage(QMainWindow):
    """Configuration dock on the left; meta-loss, adaptation curves, rollouts and the task map on the right."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("trainPage")
        self.setWindowFlags(Qt.WindowType.Widget)
        self.config = ConfigPanel()
        self.config_dock = self._dock("Configuration", "configDock", self.config, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.meta_loss = MetaLossPlot()
        self.adaptation = AdaptationPlot()
        self.rollouts = RolloutView()
        central = QWidget()  # every view is a dock the user can move; the central area stays empty
        central.setMaximumSize(0, 0)
        self.setCentralWidget(central)
        central.hide()
        self.setDockNestingEnabled(True)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.meta_loss_dock = self._dock("Meta-loss", "metaLossDock", self.meta_loss, right)
        self.adaptation_dock = self._dock("Adaptation curves", "adaptationDock", self.adaptation, right)
        self.rollout_dock = self._dock("Rollouts", "rolloutDock", self.rollouts, right)
        self.task_map = TaskMapView()
        self.task_map_dock = self._dock("Task map", "taskMapDock", self.task_map, right)
        self.splitDockWidget(self.meta_loss_dock, self.adaptation_dock, Qt.Orientation.Vertical)
        self.splitDockWidget(self.adaptation_dock, self.rollout_dock, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.rollout_dock, self.task_map_dock)
        self.rollout_dock.raise_()
        self._sized = False

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:  # the first time on screen: the configuration dock narrow, the views the rest
            self._sized = True
            self.resizeDocks([self.config_dock], [340], Qt.Orientation.Horizontal)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    @property
    def docks(self) -> list[QDockWidget]:
        return [self.config_dock, self.meta_loss_dock, self.adaptation_dock, self.rollout_dock, self.task_map_dock]

    def set_metric(self, train_metric: str, eval_metric: str | None = None, steps: int | None = None,
                   step_label: str | None = None) -> None:
        """Plot this training metric (loss: log scale; return: linear, can be negative) and held-out metric
        (a loss such as mse: log scale; accuracy or return, where higher is better: linear) over ``steps``
        steps of adaptation, named ``step_label`` (the algorithm's: inner step, episodes of context, …)."""
        held_out = eval_metric or train_metric
        self.meta_loss.set_metric(train_metric)
        self.meta_loss.set_heldout(held_out)
        self.adaptation.log.setChecked(not higher_is_better(held_out))
        self.adaptation.set_metric(held_out, steps, step_label)

    def clear(self) -> None:
        self.meta_loss.clear()
        self.adaptation.clear()
        self.rollouts.clear()
        self.task_map.clear()

    def export_plots(self, folder: Path) -> list[Path]:
        """Every view as PNG and its data as CSV into ``folder`` (the data as emitted: every iteration, in the
        metric's own units).  Raises OSError; returns the files written."""
        from workbench.core.storage import atomic_write_text

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, item in (("meta_loss", self.meta_loss.plot.getPlotItem()),
                           ("adaptation", self.adaptation.plot.getPlotItem())):
            export_plot_item(item, folder / f"{name}.png", None)
            written.append(folder / f"{name}.png")
        atomic_write_text(folder / "meta_loss.csv", self.meta_loss.to_csv())
        atomic_write_text(folder / "adaptation.csv", self.adaptation.to_csv())
        written += [folder / "meta_loss.csv", folder / "adaptation.csv"]
        for i, p in enumerate(self.rollouts.plot_items()):
            png, csv = folder / f"rollout_task{i}.png", folder / f"rollout_task{i}.csv"
            export_plot_item(p, png, csv)
            written += [png, csv]
        return written
