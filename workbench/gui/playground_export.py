"""The Playground's "Export adapted model…": the model adapted to the task on show (its points, drawings or
task values, from the page's ``task_samples()``), written to a new folder as a bundle, ONNX and int8 ONNX by
:func:`workbench.services.adapt.adapt_and_export`, in the background; the report goes to the tab's message
line."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from workbench.core.errors import WorkbenchError

from .jobs import Jobs
from .run_status import bundle_label

__all__ = ["AdaptedExport"]


def _export(path: Path, support, out: Path):
    """The job: the bundle loaded afresh (the page's model is its own: a network run from two threads at once
    is not safe), adapted, written."""
    from workbench.services.adapt import adapt_and_export
    from workbench.services.bundle import load_bundle

    return adapt_and_export(load_bundle(path), support, out, None, None, True)


class AdaptedExport(QObject):
    """Exports for ``tab`` (a PlaygroundTab: ``model``, ``model_path``, ``runs_dir``, ``page()``, ``say``)."""

    def __init__(self, tab):
        super().__init__(tab)
        self.tab = tab
        self.jobs = Jobs(self)
        self.job = None

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, folder=None) -> bool:
        tab, page = self.tab, self.tab.page()
        if tab.model is None or page is None:
            tab.say("No model: train one or open a bundle", True)
            return False
        if tab.busy() or self.running:
            tab.say("An adaptation is running: wait for it, or cancel it first", True)
            return False
        try:
            support = page.task_samples()
        except (WorkbenchError, ValueError) as e:
            tab.say(f"Nothing to export yet: {e}", True)
            return False
        if folder is None:
            folder = QFileDialog.getExistingDirectory(tab, "Export the adapted model into", str(tab.runs_dir))
            if not folder:
                return False
        out = Path(folder) / f"{bundle_label(tab.model_path)}-adapted-{datetime.now():%Y%m%d-%H%M%S}"
        tab.say(f"Adapting and exporting to {out}…")
        self.job = job = self.jobs.start(_export, tab.model_path, support, out, name="playground-export")
        job.returned.connect(lambda result: tab.say(f"Exported to {out}: " + "; ".join(result[0])))
        job.failed.connect(lambda message, details: tab.say(f"Cannot export the adapted model: {message}", True))
        return True

    def shutdown(self, timeout: float = 5.0) -> bool:
        return self.jobs.cancel_all(timeout)
