"""The main window: three tabs (Train, Runs, Playground), the run toolbar, menus and the status bar.

It only assembles the parts and routes between them:

- ``train_page.TrainPage`` — configuration dock and live views (docks);
- ``preset_controller.PresetController`` — open / save / shipped / recent presets, family switches;
- ``run_controller.RunController`` — the trainer thread, pause / stop, the 30 Hz drain;
- ``model_actions.ModelActions`` — open, evaluate and export models, export plots;
- ``runs_panel.RunsPanel`` and ``playground.PlaygroundTab`` — pages of their own.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget

from workbench.core.errors import WorkbenchError
from workbench.core.registry import ALGORITHMS, FAMILIES
from workbench.services import rundir
from workbench.services.paths import default_runs_dir

from .model_actions import ModelActions
from .window_actions import build_actions
from .preset_controller import PresetController
from .resources import app_icon
from .run_controller import RunController
from .run_status import RunStatus, bundle_label, fmt_speed, fmt_time
from .train_page import TrainPage

__all__ = ["MainWindow", "bundle_label", "fmt_speed", "fmt_time", "make_settings"]

APP_TITLE = "Meta-Learning Workbench"
DEFAULT_SIZE = (1400, 880)


def make_settings() -> QSettings:
    path = os.environ.get("WORKBENCH_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("workbench", "Meta-Learning Workbench")


class MainWindow(QMainWindow):
    """The app's window.  ``tabs`` holds the Train, Runs and Playground pages."""

    def __init__(self, preset: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = make_settings()
        self.last_error: tuple[str, str] | None = None
        self.sweep_dialog = None
        self._playground_model: Path | None = None  # a model for the playground when it is next shown

        self.train = TrainPage()
        self.config = self.train.config
        from .playground import PlaygroundTab
        from .runs_panel import RunsPanel
        from .taskmap_controller import TaskMapController

        self.runs_panel = RunsPanel(self.runs_dir)
        self.playground = PlaygroundTab(self.runs_dir)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        for page, title in ((self.train, "Train"), (self.runs_panel, "Runs"), (self.playground, "Playground")):
            self.tabs.addTab(page, title)
        self.setCentralWidget(self.tabs)

        self.status = RunStatus(self.statusBar())
        self.runner = RunController(self.train, self.status, self)
        self.presets = PresetController(self.config, self.settings, self)
        self.models = ModelActions(self.train, self.settings, self)
        self.task_maps = TaskMapController(self.train.task_map, self.runs_dir, self)
        build_actions(self)
        self._connect()
        self._restore_settings()
        initial = preset or self.settings.value("lastPreset") or self.presets.default_preset()
        if initial is None or not self.load_preset(initial, quiet=preset is None):
            fallback = self.presets.default_preset()  # the MAML sinusoid preset, else sinusoid defaults
            if fallback is None or not self.load_preset(fallback, quiet=True):
                self.presets.switch_pair("sinusoid", "maml")
        self._update_controls()

    # -- construction ----------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.runner.stateChanged.connect(self._on_state)
        self.runner.started.connect(self._on_run_started)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(lambda message, details: self.show_error("Training failed", message, details))
        for part in (self.runner, self.models):
            part.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        for part in (self.presets, self.models):
            part.failed.connect(self.show_error)
        self.presets.loaded.connect(self._on_config_loaded)
        self.presets.identityChanged.connect(self._update_title)
        self.models.opened.connect(self._on_model_opened)
        self.models.evaluated.connect(self._update_controls)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.runs_panel.openModelRequested.connect(self.open_model)
        self.task_maps.taskRequested.connect(self.open_task)
        self.task_maps.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.runs_panel.runsDirChanged.connect(self.set_runs_dir)

    # -- settings --------------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geo = self.settings.value("geometry")
        if not (isinstance(geo, QByteArray) and self.restoreGeometry(geo)):
            self.resize(*self.default_size())
        state = self.settings.value("trainState")
        if isinstance(state, QByteArray):
            self.train.restoreState(state)
        self.presets.fill_recent()

    def default_size(self) -> tuple[int, int]:
        """1400×880, capped to the screen's available area (a 1366×768 screen gets the whole of it)."""
        area = self.screen().availableGeometry()  # (Qt gives every widget a screen: the primary one at first)
        return min(DEFAULT_SIZE[0], area.width()), min(DEFAULT_SIZE[1], area.height() - 40)

    def _save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("trainState", self.train.saveState())
        self.settings.sync()

    # -- presets ---------------------------------------------------------------------------------------
    def load_preset(self, path, quiet: bool = False) -> bool:
        """Load a preset into the panels; on any error show it and change nothing."""
        return self.presets.load(path, quiet)

    def save_preset(self, path) -> bool:
        return self.presets.save(path)

    def current_config(self):
        """The experiment the panels describe (raises ConfigError)."""
        return self.config.current_config()

    def _on_config_loaded(self, config) -> None:
        """Another experiment in the panels: the views showed the last one, whose axes do not fit this one."""
        self.models.cancel_evaluation()
        self.runner.clear()
        self.statusBar().setToolTip("")
        algorithm = ALGORITHMS.get(config.algorithm_name)
        self.train.set_metric(algorithm.train_metric, FAMILIES.get(config.family).metric, config.run.eval_steps,
                              algorithm.step_label)

    def _on_run_started(self, event) -> None:
        self.task_maps.live()
        algorithm = ALGORITHMS.get(self.config.algorithm_combo.currentText())
        self.train.set_metric(event.train_metric, event.eval_metric, self._eval_steps(), algorithm.step_label)

    def _eval_steps(self) -> int | None:
        try:
            return self.config.run_form.values().get("eval_steps")
        except WorkbenchError:  # a field still being typed: the axis range waits for the first evaluation
            return None

    def _update_title(self, name: str, modified: bool) -> None:
        self.setWindowTitle(f"{name}{'*' if modified else ''} — {APP_TITLE}")

    # -- runs ------------------------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        """Where runs go: the folder chosen in the Runs panel, else $WORKBENCH_RUNS or the user's data dir."""
        chosen = self.settings.value("runsDir")
        return Path(chosen) if chosen else default_runs_dir()

    def set_runs_dir(self, path) -> None:
        self.settings.setValue("runsDir", str(path))
        if Path(self.runs_panel.runs_dir) != Path(path):
            self.runs_panel.set_runs_dir(Path(path))
        self.playground.set_runs_dir(Path(path))
        self.task_maps.runs_dir = Path(path)

    @property
    def running(self) -> bool:
        return self.runner.running

    def start(self) -> bool:
        """Start training what the panels describe in a fresh run folder (pending typed values count)."""
        if self.running:
            return False
        try:
            config = self.current_config()
        except WorkbenchError as e:
            self.show_error("Cannot start", str(e))
            return False
        try:  # a fresh folder, taken by mkdir: never one that exists, even with another app racing for the name
            run_dir = rundir.new_run_dir(self.runs_dir, rundir.default_run_name(config.meta.name))
        except (WorkbenchError, OSError) as e:
            self.show_error("Cannot start", str(e))
            return False
        self.models.cancel_evaluation()  # its curves would land in this run's views
        self.models.bundle_path = None
        self.statusBar().clearMessage()  # "Run finished … model saved in …" belongs to the last run
        self.statusBar().setToolTip("")
        self.status.set("deviceLabel", "")
        self.tabs.setCurrentWidget(self.train)
        self.runner.start(config, run_dir)
        return True

    def _on_state(self, state: str) -> None:
        if state == "idle":  # a run ended (with or without its final report): the Runs page reads it when shown
            self.runs_panel.invalidate()
        self._update_controls()

    def _on_finished(self, event) -> None:
        if event.bundle_path:
            self.models.bundle_path = Path(event.bundle_path)
            self._offer_to_playground(self.models.bundle_path)  # the current run's model, ready to play with
            self.task_maps.set_model(self.models.bundle_path, auto=False)  # its live map stays; Full map on demand
        self._update_controls()
        if event.status == "failed":
            self.show_error("Training stopped", event.message)
        else:
            where = Path(event.bundle_path).parent.name if event.bundle_path else "the run folder"
            self.statusBar().showMessage(f"Run {event.status} at iteration {event.iteration}; model saved in {where}",
                                         0)
            self.statusBar().setToolTip(str(event.bundle_path or ""))

    def _update_controls(self, *_) -> None:
        running, state = self.running, self.runner.state
        self.train.config.setEnabled(not running)
        for w in (self.start_button, self.act_start, self.act_open_preset, self.shipped_menu):
            w.setEnabled(not running)
        self.act_open_model.setEnabled(not running and not self.models.evaluating)
        self.presets.locked = running
        self.presets.fill_recent(enabled=not running)
        for w in (self.pause_button, self.act_pause):
            w.setEnabled(running and state in ("running", "paused"))
        for w in (self.stop_button, self.act_stop):
            w.setEnabled(running and state != "stopping")
        paused = state == "paused"
        for w in (self.pause_button, self.act_pause):
            w.setText("Resume" if paused else "Pause")
        self.pause_button.setIcon(self._icons["start" if paused else "pause"])
        self.act_export.setEnabled(self.models.bundle_path is not None and not running)

    def open_sweep_dialog(self):
        """Run → Sweep…: seeds x grid values of the current configuration on Ray, with live per-trial progress."""
        from .sweep_dialog import SweepDialog

        if self.sweep_dialog is not None and self.sweep_dialog.is_running():
            self.sweep_dialog.show()
            self.sweep_dialog.raise_()
            return self.sweep_dialog
        try:
            config = self.current_config()
        except WorkbenchError as e:
            self.show_error("Cannot sweep", str(e))
            return None
        if self.sweep_dialog is not None:
            self.sweep_dialog.deleteLater()
        self.sweep_dialog = SweepDialog(config, self.runs_dir, self)
        self.sweep_dialog.sweepFinished.connect(self._on_sweep_finished)
        self.sweep_dialog.showRunsRequested.connect(self.show_sweep_runs)
        self.sweep_dialog.show()
        return self.sweep_dialog

    def _on_sweep_finished(self, sweep_id: str, runs_dir: str) -> None:
        if Path(runs_dir).resolve() == Path(self.runs_panel.runs_dir).resolve():
            self.show_sweep_runs(sweep_id)

    def show_sweep_runs(self, sweep_id: str) -> None:
        """The Runs tab with the sweep's runs selected and grouped over seeds."""
        self.tabs.setCurrentWidget(self.runs_panel)
        self.runs_panel.refresh()
        self.runs_panel.show_sweep(sweep_id)

    # -- models ----------------------------------------------------------------------------------------
    def open_model(self, path, tasks: int = 100, seed: int = 0) -> bool:
        """Load a bundle and evaluate it on fresh tasks in the background (see ModelActions.open_model)."""
        if self.running:
            self.statusBar().showMessage("Stop the run before opening a model", 5000)
            return False
        ok = self.models.open_model(path, tasks, seed)
        self._update_controls()
        return ok

    def _on_model_opened(self, path: Path) -> None:
        self.runner.clear()
        self.tabs.setCurrentWidget(self.train)
        self._offer_to_playground(path)  # its own copy: its jobs and the evaluation's share no learner state
        self.task_maps.set_model(path)

    def open_task(self, path, values: dict) -> None:
        """The Playground with the model at ``path`` and the task ``values`` (a Task map cell)."""
        path = Path(path)
        self.tabs.setCurrentWidget(self.playground)  # (takes a model waiting for it first)
        if self.playground.model_path != path and not self.playground.set_model(path):
            return
        self.playground.show_task(values)

    def _offer_to_playground(self, path: Path) -> None:
        """The playground takes this model now if it is on show, else when it is next shown (loading a bundle
        and building a page at the end of a run stalled the window by ~0.4 s)."""
        self._playground_model = path
        if self.tabs.currentWidget() is self.playground:
            self._on_tab_changed(self.tabs.currentIndex())

    def _on_tab_changed(self, index: int) -> None:
        path = self._playground_model
        if self.tabs.widget(index) is self.playground and path is not None and not self.playground.busy():
            self._playground_model = None
            self.playground.set_runs_dir(self.runs_dir)
            self.playground.set_model(path)

    def export_model(self, path) -> bool:
        return self.models.export_model(path)

    def show_error(self, title: str, text: str, details: str = "") -> None:
        """A window-modal message that does not block the event loop (the app stays usable)."""
        self.last_error = (title, text)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- closing ---------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """Every background part is stopped and joined: the run (its trainer process finishes its step and
        checkpoint on its own), a sweep, the playground's and the evaluations' jobs."""
        self.runner.shutdown()
        if self.sweep_dialog is not None:
            self.sweep_dialog.shutdown(60)  # stops a running sweep and waits for it
        self.playground.shutdown()
        self.runs_panel.shutdown()
        self.models.shutdown()
        self.task_maps.shutdown()
        self._save_settings()
        super().closeEvent(event)
