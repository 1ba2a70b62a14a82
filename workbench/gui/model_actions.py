"""Models and plots in and out of the app: File → Open model…, Export model…, Export plots….

Opening a model evaluates it on fresh tasks as a background job (gui/jobs.py), cancelled and joined when
the window closes; its curves and rollouts go to the Train page's views.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from workbench.core.errors import Cancelled, WorkbenchError
from workbench.services.paths import default_runs_dir

from .jobs import CancelFlag, Jobs
from .run_status import bundle_label
from .train_page import TrainPage

__all__ = ["ModelActions"]


def _evaluate(model, tasks: int, seed: int, cancel):
    """The job: evaluate a loaded bundle; ``Cancelled`` (the window closing) ends it quietly."""
    try:
        return model.evaluation_events(tasks=tasks, seed=seed, cancel=cancel)
    except Cancelled:
        return None


class ModelActions(QObject):
    """Open, evaluate and export models; export the views' plots.

    ``bundle_path`` is the model the window holds (the last run's, or one opened).  Signals:
    ``failed(title, message)``, ``message(text, ms)``, ``opened(path)`` when a model was loaded (its
    evaluation follows), ``evaluated()`` when the evaluation is shown or failed.
    """

    failed = Signal(str, str)
    message = Signal(str, int)
    opened = Signal(object)
    evaluated = Signal()

    def __init__(self, page: TrainPage, settings: QSettings, parent: QWidget):
        super().__init__(parent)
        self.page, self.settings, self.window = page, settings, parent
        self.bundle_path: Path | None = None
        self.jobs = Jobs(self)
        self._current = None  # the evaluation whose result the views wait for; any other one's is dropped

    @property
    def evaluating(self) -> bool:
        return self._current is not None

    def cancel_evaluation(self) -> None:
        """The views moved on (another preset, a run, another model): the running evaluation is cancelled and
        its result, should it still come, is dropped."""
        if self._current is not None:
            self._current.cancel()
            self._current = None
            self.evaluated.emit()

    # -- export ----------------------------------------------------------------------------------------
    def export_model(self, path) -> bool:
        from workbench.core.storage import MAX_TENSOR_BYTES, UnreadableFile, atomic_write_bytes, read_regular_bytes
        from workbench.services.bundle import load_bundle

        path = Path(path)
        if self.bundle_path is None:
            self.failed.emit("Nothing to export", "Train a model (or let a run finish or stop) first.")
            return False
        try:
            if path.suffix == ".onnx":
                load_bundle(self.bundle_path).to_onnx(path)
            else:
                atomic_write_bytes(path, read_regular_bytes(self.bundle_path, MAX_TENSOR_BYTES))
        except (WorkbenchError, OSError, UnreadableFile) as e:
            self.failed.emit("Cannot export model", f"{path}: {e}")
            return False
        self.settings.setValue("lastModelExportDir", str(path.parent))
        self.message.emit(f"Exported the model to {path}", 0)
        return True

    def export_choices(self) -> tuple[Path, str]:
        """Where the export dialog starts (the folder of the last export, else the run's; named after the run) and
        the formats it offers (ONNX only for a model that has an ONNX form)."""
        from workbench.services.bundle import load_bundle

        folder = Path(self.settings.value("lastModelExportDir") or self.bundle_path.parent)
        filters = "Model bundle (*.safetensors)"
        try:
            if load_bundle(self.bundle_path).onnx_exportable:
                filters += ";;ONNX network (*.onnx)"
        except WorkbenchError:
            pass
        return folder / f"{bundle_label(self.bundle_path)}.safetensors", filters

    def export_model_dialog(self) -> None:
        if self.bundle_path is None:
            return
        start, filters = self.export_choices()
        path, chosen = QFileDialog.getSaveFileName(self.window, "Export model", str(start), filters)
        if path:
            suffix = ".onnx" if "onnx" in chosen else ".safetensors"
            self.export_model(path if Path(path).suffix in (".onnx", ".safetensors") else path + suffix)

    def export_plots(self, folder) -> list[Path]:
        """Every plot as PNG and its data as CSV into ``folder``; the files written."""
        folder = Path(folder)
        try:
            written = self.page.export_plots(folder)
        except OSError as e:
            self.failed.emit("Cannot export plots", f"{folder}: {e.strerror or e}")
            return []
        self.settings.setValue("lastExportDir", str(folder))
        self.message.emit(f"Exported {len(written)} files to {folder}", 5000)
        return written

    def export_plots_dialog(self) -> None:
        start = self.settings.value("lastExportDir") or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self.window, "Export plots to folder", start)
        if folder:
            self.export_plots(folder)

    # -- open ------------------------------------------------------------------------------------------
    def open_model(self, path, tasks: int = 100, seed: int = 0) -> bool:
        """Load a bundle, then evaluate it on fresh tasks off the GUI thread and show its adaptation curves
        and rollouts.  Returns False (with a message) if the bundle cannot be loaded."""
        from workbench.services.bundle import load_bundle

        path = Path(path)
        try:
            model = load_bundle(path)
        except WorkbenchError as e:
            self.failed.emit("Cannot open model", str(e))
            return False
        self.cancel_evaluation()
        self.bundle_path = path
        self.settings.setValue("lastModelDir", str(path.parent))
        self.opened.emit(path)
        self.message.emit(f"Evaluating {bundle_label(path)} on {tasks} fresh tasks…", 0)
        info = f"{model.algorithm} on {model.meta['family']}"
        flag = CancelFlag()
        job = self.jobs.start(_evaluate, model, tasks, seed, flag, name="model-evaluation")
        flag.job = self._current = job
        job.returned.connect(lambda result: self._show(job, path, info, tasks, seed, result))
        job.failed.connect(lambda message, details: self._evaluation_failed(job, path, message, details))
        return True

    def _finish(self, job) -> bool:
        """True when ``job`` is the evaluation the views wait for (it is then over)."""
        if job is not self._current:
            return False
        self._current = None
        self.evaluated.emit()
        return True

    def _show(self, job, path: Path, info: str, tasks: int, seed: int, result) -> None:
        if not self._finish(job) or result is None:
            return
        evaluation, render = result
        self.page.set_metric("return" if evaluation.metric == "return" else "loss", evaluation.metric)
        self.page.adaptation.add_evaluation(evaluation)
        if render is not None:
            self.page.rollouts.show_render(render.iteration, render.payload)
        self.message.emit(f"Model {bundle_label(path)}: {info}, evaluated on {tasks} fresh tasks (seed {seed})", 0)

    def _evaluation_failed(self, job, path: Path, message: str, details: str) -> None:
        if not self._finish(job):
            return
        self.failed.emit("Cannot evaluate model", f"{path}: {message}")

    def open_model_dialog(self) -> None:
        start = self.settings.value("lastModelDir") or str(default_runs_dir())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open model", start, "Model bundles (*.safetensors)")
        if path:
            self.open_model(path)

    def shutdown(self, timeout: float = 3.0) -> bool:
        """Cancel and join every evaluation (an evaluation thread left running at exit aborts the app)."""
        self._current = None
        return self.jobs.cancel_all(timeout)
