"""The Task map view's owner: full maps of the window's model as background jobs, and clicks on a cell.

During a run the view shows the coarse map the trainer makes after each evaluation (the run controller
hands it over).  For a model the window holds (an opened bundle, or the finished run's), :meth:`full_map`
maps it on the full grid off the GUI thread, beside the newest pretrained baseline of its family in the
runs folder (the gap layer); opening a bundle does so at once unless its family's tasks are simulated
(MuJoCo), which waits for the Full map button.  A click on a cell emits ``taskRequested(path, values)``.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from workbench.core.errors import BundleError, Cancelled, ConfigError

from workbench.services.taskmap import DEFAULT_GRID

from .jobs import CancelFlag, Jobs
from .run_status import bundle_label
from .taskmap_view import TaskMapView

__all__ = ["TaskMapController"]

ON_REQUEST = "on request"  # what a map job made without being asked returns for a family it leaves to Full map


def _map_job(path: Path, runs_dir: Path, cancel, grid: int, tasks_per_cell: int | None, only_cheap: bool):
    """The full map of the bundle at ``path`` beside its family's newest pretrained baseline; None when
    cancelled, ON_REQUEST when ``only_cheap`` and its tasks are simulated (MuJoCo) or read from a data set."""
    from workbench.services.bundle import load_bundle
    from workbench.services.runs import pretrained_bundles
    from workbench.services.taskmap import bundle_map

    model = load_bundle(path)
    if only_cheap and hasattr(type(model.family), "available"):
        return ON_REQUEST
    found = next((b for _, b in pretrained_bundles(runs_dir, model.meta.get("family"))), None)
    try:
        if found is not None and found != path:
            try:  # bundle_map checks the baseline (its tasks, its steps) before it computes anything
                return bundle_map(model, grid=grid, tasks_per_cell=tasks_per_cell, baseline=load_bundle(found),
                                  cancel=cancel)
            except (BundleError, ConfigError):  # not a baseline of this model: the map without the gap layer
                pass
        return bundle_map(model, grid=grid, tasks_per_cell=tasks_per_cell, cancel=cancel)
    except Cancelled:
        return None


class TaskMapController(QObject):
    """Full maps of a bundle for ``view``; ``taskRequested(bundle path, {param: value})`` on a click."""

    taskRequested = Signal(object, dict)
    message = Signal(str, int)

    def __init__(self, view: TaskMapView, runs_dir, parent=None):
        super().__init__(parent)
        self.view, self.runs_dir = view, Path(runs_dir)
        self.path: Path | None = None  # the model the view's map is of (None: a live map, or nothing)
        self.model_path: Path | None = None  # the window's model (what Full map maps)
        self.jobs = Jobs(self)
        self._current = None
        self.grid, self.tasks_per_cell = DEFAULT_GRID, None  # of a full map (None: the default budget of tasks)
        view.fullRequested.connect(lambda: self.full_map(self.model_path))
        view.cellClicked.connect(self._on_cell)

    @property
    def busy(self) -> bool:
        return self._current is not None

    def set_model(self, path, auto: bool = True) -> None:
        """The window holds the model at ``path``: map it now when ``auto`` and its tasks are cheap."""
        self.model_path = Path(path) if path else None
        self.view.full_button.setEnabled(self.model_path is not None)
        if self.model_path is not None and auto:
            self.full_map(self.model_path, only_cheap=True)

    def live(self) -> None:
        """A run started: its maps come from the trainer; a full map being made is dropped."""
        self.cancel()
        self.path = self.model_path = None  # a cell of the live map has no bundle yet: the run's comes at its end
        self.view.full_button.setEnabled(False)
        self.view.clear()

    def full_map(self, path, only_cheap: bool = False) -> bool:
        """Map the bundle at ``path`` on the full grid in the background (``only_cheap``: unless its family's
        tasks are simulated or read from a data set, which wait for Full map)."""
        if path is None:
            self.message.emit("No model to map: train one or open a bundle", 5000)
            return False
        self.cancel()
        path = Path(path)
        flag = CancelFlag()
        job = self.jobs.start(_map_job, path, self.runs_dir, flag, self.grid, self.tasks_per_cell, only_cheap,
                              name="task-map")
        flag.job = self._current = job
        self.view.status.setText(f"Mapping {bundle_label(path)} on the full grid…")
        job.returned.connect(lambda m: self._show(job, path, m))
        job.failed.connect(lambda message, details: self._failed(job, path, message))
        return True

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()
            self._current = None

    def shutdown(self, timeout: float = 3.0) -> bool:
        self._current = None
        return self.jobs.cancel_all(timeout)

    def _show(self, job, path: Path, m) -> None:
        if job is not self._current:
            return
        self._current = None
        if m is None:
            return
        if m is ON_REQUEST:
            self.view.status.setText(f"{bundle_label(path)}: press Full map to map it (its tasks take a while)")
            return
        self.path = path
        self.view.show_map(m, bundle_label(path))

    def _failed(self, job, path: Path, message: str) -> None:
        if job is not self._current:
            return
        self._current = None
        self.view.status.setText(f"No task map for {path.name}: {message}")

    def _on_cell(self, values: dict) -> None:
        path = self.path or self.model_path
        if path is None:
            self.message.emit("The live map's model is saved when the run ends: click its cells then", 5000)
            return
        self.taskRequested.emit(path, values)
