"""The main window: configuration panels, run controls, live plots in rearrangeable docks."""
from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QFormLayout, QGroupBox, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QPushButton, QScrollArea, QStyle, QToolBar,
                               QVBoxLayout, QWidget)

from workbench.core.config import ExperimentConfig, MetaInfo, RunConfig
from workbench.core.losses import higher_is_better
from workbench.core.errors import Cancelled, WorkbenchError
from workbench.services.paths import default_runs_dir, safe_run_name
from workbench.services.presets import list_presets
from workbench.core.registry import ALGORITHMS, FAMILIES, family_availability
from workbench.services.trainer import available_devices

from .forms import ConfigForm, ModelForm
from .plots import AdaptationPlot, MetaLossPlot, RolloutView, export_plot_item
from .resources import app_icon
from .worker import EventBuffer, TrainerWorker

APP_TITLE = "Meta-Learning Workbench"
MAX_RECENT = 8
DRAIN_MS = 33  # ~30 Hz
STATUS_EVERY = 0.25  # seconds between status-bar updates
RENDER_EVERY = 1.0  # seconds between rollout redraws while training


def make_settings() -> QSettings:
    path = os.environ.get("WORKBENCH_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("workbench", "Meta-Learning Workbench")


def fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def bundle_label(path: Path) -> str:
    """How a bundle is named to the user: its run's folder for a run's ``model.safetensors`` (every run's
    bundle has that name), else its file name without the suffix."""
    path = Path(path)
    return path.parent.name if path.name == "model.safetensors" and path.parent.name else path.stem


def fmt_speed(its_per_sec: float) -> str:
    """Iterations per second, or seconds per iteration when one takes longer than a second (meta-RL)."""
    if its_per_sec >= 1.0:
        return f"{its_per_sec:,.0f} it/s"
    return f"{1.0 / its_per_sec:,.1f} s/it" if its_per_sec > 0 else ""


class _Relay(QObject):
    """Carries results of background work to the GUI thread (its slots are bound window methods)."""

    done = Signal(object, object)


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(widget)
    return box


class MainWindow(QMainWindow):
    def __init__(self, preset: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = make_settings()
        self.preset_path: Path | None = None
        self.modified = False
        self.thread: QThread | None = None
        self.worker: TrainerWorker | None = None
        self.buffer = EventBuffer()
        self.run_dir: Path | None = None
        self.bundle_path: Path | None = None
        self.run_state = "idle"  # idle | running | paused | stopping
        self.total_iterations = 0
        self.started_at = 0.0
        self._paused_at: float | None = None  # when the run was paused (elapsed() leaves pauses out)
        self._paused_for = 0.0
        self._ended_at: float | None = None
        self.redraws = 0
        self.last_error: tuple[str, str] | None = None
        self._loading = False
        self._last_iteration = None
        self._status_at = 0.0
        self._pending_render = None
        self._render_at = 0.0
        self._deferred = False
        self._train_metric = "loss"

        self._build_panels()
        self._build_plots()
        self._build_actions()
        self._build_status()
        self._relay = _Relay(self)
        self._evaluations: list = []  # (thread, cancel event) of File → Open model… evaluations
        self._relay.done.connect(self._on_model_evaluated)
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self.drain)
        self.timer.start()
        self._restore_settings()
        initial = preset or self.settings.value("lastPreset") or self._default_preset()
        if initial is None or not self.load_preset(initial, quiet=preset is None):
            fallback = self._default_preset()  # the MAML sinusoid preset, else sinusoid defaults
            if fallback is None or not self.load_preset(fallback, quiet=True):
                self.family_combo.setCurrentText("sinusoid")
                self._set_family(self.family_combo.currentText())
        self._update_controls()

    # -- construction ----------------------------------------------------------------------------
    def _build_panels(self) -> None:
        panel = QWidget()
        panel.setObjectName("configPanel")
        lay = QVBoxLayout(panel)

        self.preset_label = QLabel("no preset")
        self.preset_label.setObjectName("presetLabel")
        self.preset_label.setWordWrap(True)
        lay.addWidget(self.preset_label)

        fam_box = QGroupBox("Task family")
        fam_lay = QVBoxLayout(fam_box)
        self.family_combo = QComboBox()
        self.family_combo.setObjectName("taskFamilyCombo")
        for name, cls in FAMILIES.items():
            ok, reason = family_availability(cls)
            self.family_combo.addItem(name if ok else f"{name} (unavailable)", name)
            i = self.family_combo.count() - 1
            self.family_combo.setItemData(i, cls.title if ok else f"{cls.title}: {reason}", Qt.ItemDataRole.ToolTipRole)
            if not ok:  # shown, greyed out, with the reason as its tooltip
                self.family_combo.model().item(i).setEnabled(False)
        fam_lay.addWidget(self.family_combo)
        self.family_form_holder = QVBoxLayout()
        fam_lay.addLayout(self.family_form_holder)
        lay.addWidget(fam_box)

        algo_box = QGroupBox("Algorithm")
        algo_lay = QVBoxLayout(algo_box)
        self.algorithm_combo = QComboBox()
        self.algorithm_combo.setObjectName("algorithmCombo")
        algo_lay.addWidget(self.algorithm_combo)
        self.algorithm_summary = QLabel("")
        self.algorithm_summary.setWordWrap(True)
        self.algorithm_summary.setObjectName("algorithmSummary")
        algo_lay.addWidget(self.algorithm_summary)
        self.algorithm_form_holder = QVBoxLayout()
        algo_lay.addLayout(self.algorithm_form_holder)
        lay.addWidget(algo_box)

        self.model_form = ModelForm()
        lay.addWidget(_group("Model", self.model_form))

        run_box = QGroupBox("Run")
        run_lay = QVBoxLayout(run_box)
        dev_form = QFormLayout()
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.addItems(["auto", *available_devices()])
        self.device_combo.setToolTip("Where training runs: auto picks CUDA, then MPS, then the CPU")
        dev_form.addRow("device", self.device_combo)
        run_lay.addLayout(dev_form)
        self.run_form = ConfigForm(RunConfig, skip=("device",))
        run_lay.addWidget(self.run_form)
        lay.addWidget(run_box)

        self.meta_form = ConfigForm(MetaInfo)
        lay.addWidget(_group("Preset", self.meta_form))
        lay.addStretch(1)

        self.family_form: ConfigForm | None = None
        self.algorithm_form: ConfigForm | None = None
        self.family_combo.currentTextChanged.connect(self._on_family_changed)
        self.algorithm_combo.currentTextChanged.connect(self._on_algorithm_changed)
        self.device_combo.currentIndexChanged.connect(self._mark_modified)
        for form in (self.model_form, self.run_form, self.meta_form):
            form.changed.connect(self._mark_modified)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(panel)
        scroll.setMinimumWidth(330)
        self.config_panel = panel
        self.config_dock = self._dock("Configuration", "configDock", scroll, Qt.DockWidgetArea.LeftDockWidgetArea)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_plots(self) -> None:
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
        self.splitDockWidget(self.meta_loss_dock, self.adaptation_dock, Qt.Orientation.Vertical)
        self.splitDockWidget(self.adaptation_dock, self.rollout_dock, Qt.Orientation.Horizontal)

        from .runs_panel import RunsPanel

        self.runs_panel = RunsPanel(self.runs_dir)
        self.runs_dock = self._dock("Runs", "runsDock", self.runs_panel, right)
        self.tabifyDockWidget(self.rollout_dock, self.runs_dock)
        self.rollout_dock.raise_()
        self.runs_panel.openModelRequested.connect(self.open_model)
        self.runs_panel.runsDirChanged.connect(self.set_runs_dir)

        from .playground import PlaygroundTab

        self.playground = PlaygroundTab(self.runs_dir)
        self.playground_dock = self._dock("Playground", "playgroundDock", self.playground, right)
        self.tabifyDockWidget(self.runs_dock, self.playground_dock)
        self.rollout_dock.raise_()
        self.sweep_dialog = None

    def _action(self, text: str, slot, shortcut=None, name: str | None = None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if name:
            a.setObjectName(name)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.act_start = self._action("Start", self.start, "Ctrl+R", "startAction")
        self.act_pause = self._action("Pause", self.toggle_pause, Qt.Key.Key_Space, "pauseAction")
        self.act_stop = self._action("Stop", self.stop, "Ctrl+.", "stopAction")
        self.act_clear = self._action("Clear plots", self.clear_plots, None, "clearAction")
        self.act_open_preset = self._action("Open preset…", self._open_preset_dialog, "Ctrl+O", "openPresetAction")
        self.act_save_preset = self._action("Save preset as…", self._save_preset_dialog, "Ctrl+S", "savePresetAction")
        self.act_export = self._action("Export model…", self._export_model_dialog, "Ctrl+E", "exportModelAction")
        self.act_open_model = self._action("Open model…", self._open_model_dialog, None, "openModelAction")
        self.act_export_plots = self._action("Export plots…", self._export_plots_dialog, None, "exportPlotsAction")
        self.act_sweep = self._action("Sweep…", self.open_sweep_dialog, None, "sweepAction")
        self.act_quit = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)

        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.act_open_preset)
        self.shipped_menu = menu.addMenu("Shipped presets")
        self.shipped_menu.setObjectName("shippedPresetsMenu")
        self._fill_shipped_menu(list_presets())
        self.recent_menu = menu.addMenu("Recent presets")
        menu.addAction(self.act_save_preset)
        menu.addSeparator()
        menu.addAction(self.act_open_model)
        menu.addAction(self.act_export)
        menu.addAction(self.act_export_plots)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        run = self.menuBar().addMenu("&Run")
        for a in (self.act_start, self.act_pause, self.act_stop, self.act_clear):
            run.addAction(a)
        run.addSeparator()
        run.addAction(self.act_sweep)
        view = self.menuBar().addMenu("&View")
        for dock in (self.config_dock, self.meta_loss_dock, self.adaptation_dock, self.rollout_dock, self.runs_dock,
                     self.playground_dock):
            view.addAction(dock.toggleViewAction())

        bar = QToolBar("Run")
        bar.setObjectName("runToolbar")
        bar.setMovable(False)
        style = self.style()
        self._icons = {k: style.standardIcon(v) for k, v in (
            ("start", QStyle.StandardPixmap.SP_MediaPlay), ("pause", QStyle.StandardPixmap.SP_MediaPause),
            ("stop", QStyle.StandardPixmap.SP_MediaStop))}
        self.start_button = QPushButton(self._icons["start"], "Start")
        self.start_button.setObjectName("startButton")
        self.start_button.setToolTip("Start training (Ctrl+R)")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton(self._icons["pause"], "Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Pause / resume (Space)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton(self._icons["stop"], "Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop after this iteration, keeping a checkpoint (Ctrl+.)")
        self.stop_button.clicked.connect(self.stop)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("clearButton")
        self.clear_button.clicked.connect(self.clear_plots)
        for b in (self.start_button, self.pause_button, self.stop_button, self.clear_button):
            b.setMinimumWidth(96)  # Pause / Resume without shifting the other buttons
            bar.addWidget(b)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.iteration_label = QLabel("iteration –")
        self.iteration_label.setObjectName("iterationLabel")
        self.speed_label = QLabel("")
        self.speed_label.setObjectName("speedLabel")
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("etaLabel")
        self.device_label = QLabel("")
        self.device_label.setObjectName("deviceLabel")
        self.elapsed_label = QLabel("")
        self.elapsed_label.setObjectName("elapsedLabel")
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        for w in (self.iteration_label, self.speed_label, self.eta_label, self.device_label, self.elapsed_label):
            sb.addPermanentWidget(w)
        sb.addPermanentWidget(self.progress)

    # -- settings --------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geo = self.settings.value("geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1400, 880)
        state = self.settings.value("windowState")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self._refresh_recent()

    def _save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.settings.sync()

    def _recent(self) -> list[str]:
        value = self.settings.value("recentPresets") or []
        return [value] if isinstance(value, str) else list(value)

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        recent = self._recent()
        for p in recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, path=p: self.load_preset(path))
        self.recent_menu.setEnabled(bool(recent) and not self.running)

    def _remember_preset(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self._recent() if r != p]
        self.settings.setValue("recentPresets", [p, *recent][:MAX_RECENT])
        self.settings.setValue("lastPreset", p)
        self.settings.setValue("lastPresetDir", str(Path(p).parent))
        self._refresh_recent()

    def _default_preset(self) -> Path | None:
        for info in list_presets():
            if info.name == "maml-sinusoid" and info.readable:
                return info.path
        return None

    # -- panels <-> config -----------------------------------------------------------------------
    def _replace_form(self, holder, old: ConfigForm | None, cls, values: dict | None, skip) -> ConfigForm:
        if old is not None:
            holder.removeWidget(old)
            old.deleteLater()
        form = ConfigForm(cls, values, skip=skip)
        form.changed.connect(self._mark_modified)
        holder.addWidget(form)
        return form

    def _set_family(self, name: str, values: dict | None = None) -> None:
        cls = FAMILIES.get(name)
        self.family_form = self._replace_form(self.family_form_holder, self.family_form, cls.Config, values, ())
        current = self.algorithm_combo.currentText()
        self.algorithm_combo.blockSignals(True)
        self.algorithm_combo.clear()
        for algo_name, algo_cls in ALGORITHMS.items():
            if name in algo_cls.families:
                self.algorithm_combo.addItem(algo_name)
                self.algorithm_combo.setItemData(self.algorithm_combo.count() - 1, algo_cls.summary,
                                                 Qt.ItemDataRole.ToolTipRole)
        index = self.algorithm_combo.findText(current)
        self.algorithm_combo.setCurrentIndex(max(0, index))
        self.algorithm_combo.blockSignals(False)
        if index < 0 or self.algorithm_form is None:
            self._set_algorithm(self.algorithm_combo.currentText())

    def _set_algorithm(self, name: str, values: dict | None = None) -> None:
        if not name:
            return
        cls = ALGORITHMS.get(name)
        self.algorithm_summary.setText(f"<b>{cls.title}</b>: {cls.summary}")
        self.algorithm_form = self._replace_form(self.algorithm_form_holder, self.algorithm_form, cls.Config,
                                                 values, ())

    def _on_family_changed(self, name: str) -> None:
        if self._loading or not name:
            return
        self._set_family(name)
        self._mark_modified()

    def _on_algorithm_changed(self, name: str) -> None:
        if self._loading or not name:
            return
        self._set_algorithm(name)
        self._mark_modified()

    def apply_config(self, config: ExperimentConfig) -> None:
        """Fill every panel from a validated config."""
        import dataclasses

        self._loading = True
        try:
            self.family_combo.setCurrentText(config.family)
            self._set_family(config.family, dataclasses.asdict(config.task))
            self.algorithm_combo.setCurrentText(config.algorithm_name)
            self._set_algorithm(config.algorithm_name, dataclasses.asdict(config.algorithm))
            self.model_form.set_values(dataclasses.asdict(config.model))
            run = dataclasses.asdict(config.run)
            self.run_form.set_values(run)
            if self.device_combo.findText(run["device"]) < 0:
                self.device_combo.addItem(run["device"])
            self.device_combo.blockSignals(True)
            self.device_combo.setCurrentText(run["device"])
            self.device_combo.blockSignals(False)
            self.meta_form.set_values(dataclasses.asdict(config.meta))
        finally:
            self._loading = False

    def current_config(self) -> ExperimentConfig:
        """The experiment the panels describe, validated like a preset."""
        run = self.run_form.values()
        run["device"] = self.device_combo.currentText()
        data = {
            "meta": self.meta_form.values(),
            "task": {"family": self.family_combo.currentText(), **self.family_form.values()},
            "algorithm": {"name": self.algorithm_combo.currentText(), **self.algorithm_form.values()},
            "model": self.model_form.values(),
            "run": run,
        }
        return ExperimentConfig.from_dict(data, where="settings")

    def _mark_modified(self, *_) -> None:
        if self._loading:
            return
        self.modified = True
        self._update_title()

    def _update_title(self) -> None:
        name = self.preset_path.stem if self.preset_path else "untitled"
        self.setWindowTitle(f"{name}{'*' if self.modified else ''} — {APP_TITLE}")
        where = str(self.preset_path) if self.preset_path else "not saved"
        self.preset_label.setText(f"<b>{name}</b>{' (modified)' if self.modified else ''}<br><small>{where}</small>")

    # -- presets ---------------------------------------------------------------------------------
    def load_preset(self, path, quiet: bool = False) -> bool:
        """Load a preset into the panels; on any error show it and change nothing."""
        if self.running:
            self.statusBar().showMessage("Stop the run before loading another preset", 5000)
            return False
        path = Path(path)
        try:
            config = ExperimentConfig.load(path)  # never blocks on a FIFO or reads a device (read_toml)
        except WorkbenchError as e:
            if not quiet:
                self.show_error("Cannot open preset", str(e))
            return False
        self.apply_config(config)
        self.preset_path = path
        self.modified = False
        self._remember_preset(path)
        self._update_title()
        self.clear_plots()  # the views showed another experiment: its axes and rollouts do not fit this one
        self.set_metric(ALGORITHMS.get(config.algorithm_name).train_metric, FAMILIES.get(config.family).metric)
        self.elapsed_label.setText("")
        self.statusBar().setToolTip("")
        self.statusBar().showMessage(f"Loaded preset {path}", 5000)
        return True

    def save_preset(self, path) -> bool:
        from workbench.core.storage import atomic_write_text

        path = Path(path)
        try:
            config = self.current_config()
            atomic_write_text(path, config.to_toml())
        except (WorkbenchError, OSError) as e:
            self.show_error("Cannot save preset", f"{path}: {e}")
            return False
        self.preset_path = path
        self.modified = False
        self._remember_preset(path)
        self._update_title()
        self.statusBar().showMessage(f"Saved preset {path}", 5000)
        return True

    def _open_preset_dialog(self) -> None:
        start = self.settings.value("lastPresetDir") or str(self._default_preset_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open preset", start, "Presets (*.toml);;All files (*)")
        if path:
            self.load_preset(path)

    def _default_preset_dir(self) -> Path:
        presets = list_presets()
        return presets[0].path.parent if presets else Path.home()

    def _save_preset_dialog(self) -> None:
        from workbench.services.paths import user_data_dir

        name = safe_run_name(self.meta_form.values().get("name", "preset"))
        shipped = {p.path.resolve() for p in list_presets()}
        if self.preset_path is not None and self.preset_path.resolve() not in shipped:
            start = str(self.preset_path)  # the user's own preset: save over it by default
        else:  # never suggest overwriting a shipped preset
            start = str(Path(self.settings.value("lastPresetDir") or user_data_dir() / "presets") / f"{name}.toml")
        path, _ = QFileDialog.getSaveFileName(self, "Save preset as", start, "Presets (*.toml)")
        if path:
            self.save_preset(path if path.endswith(".toml") else path + ".toml")

    # -- runs ------------------------------------------------------------------------------------
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
        """The Runs panel, raised, with the sweep's runs selected and grouped over seeds."""
        self.runs_dock.show()
        self.runs_dock.raise_()
        self.runs_panel.refresh()
        self.runs_panel.show_sweep(sweep_id)

    def _fill_shipped_menu(self, presets) -> None:
        """One submenu per task family, entries by name; the description is the entry's tooltip and status
        tip (whole descriptions made the menu as wide as the screen)."""
        by_family: dict[str, list] = {}
        for info in presets:
            by_family.setdefault(info.family if info.readable else "unreadable", []).append(info)
        for family in sorted(by_family):
            sub = self.shipped_menu.addMenu(family)
            sub.setToolTipsVisible(True)
            for info in sorted(by_family[family], key=lambda i: i.name):
                a = sub.addAction(info.name)
                a.triggered.connect(lambda _=False, p=info.path: self.load_preset(p))
                tip = info.description if info.readable else f"{info.path}: {info.error}"
                a.setToolTip(tip)
                a.setStatusTip(tip)
                a.setEnabled(info.readable)  # an unreadable one is listed with the reason, not offered

    @property
    def running(self) -> bool:
        return self.thread is not None

    def start(self) -> bool:
        if self.running:
            return False
        try:
            config = self.current_config()
        except WorkbenchError as e:
            self.show_error("Cannot start", str(e))
            return False
        self.clear_plots()
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = safe_run_name(config.meta.name)
        runs = self.runs_dir
        self.run_dir = runs / f"{name}-{stamp}"
        n = 1
        while self.run_dir.exists():
            n += 1
            self.run_dir = runs / f"{name}-{stamp}-{n}"
        self.bundle_path = None
        self.total_iterations = config.run.iterations
        self.buffer = EventBuffer()
        self.worker = TrainerWorker(config, self.run_dir, self.buffer)
        self.thread = QThread(self)
        self.thread.setObjectName("trainerThread")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # direct: QThread.quit is thread-safe, and the GUI thread may be blocked in wait() (closing)
        self.worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.worker.runStarted.connect(self._on_started)
        # bound methods of the window: queued to the GUI thread (a lambda would run on the worker thread)
        self.worker.paused.connect(self._on_paused)
        self.worker.resumed.connect(self._on_resumed)
        self.worker.checkpointSaved.connect(self._on_checkpoint)
        self.worker.runFinished.connect(self._on_finished)
        self.worker.error.connect(self._on_error)
        self.thread.finished.connect(self._on_thread_finished)
        self.statusBar().clearMessage()  # "Run finished … model saved in …" belongs to the last run
        self.statusBar().setToolTip("")
        self.started_at = time.monotonic()
        self._paused_at = self._ended_at = None
        self._paused_for = 0.0
        self.device_label.setText("")
        self._set_state("running")
        self.thread.start()
        return True

    def toggle_pause(self) -> None:
        if self.worker is None or self.run_state == "stopping":
            return
        paused = self.run_state != "paused"
        self.worker.set_paused(paused)
        self._set_state("paused" if paused else "running")

    def stop(self) -> None:
        """Ask the worker to stop; returns at once (the worker checkpoints on its own)."""
        if self.worker is None:
            return
        self.worker.stop()
        self._set_state("stopping")

    def _set_state(self, state: str) -> None:
        self.run_state = state
        self._update_controls()

    def _update_controls(self) -> None:
        running = self.running
        self.config_panel.setEnabled(not running)
        for w in (self.start_button, self.act_start, self.act_open_preset, self.act_open_model):
            w.setEnabled(not running)
        self.shipped_menu.setEnabled(not running)
        self.recent_menu.setEnabled(not running and bool(self._recent()))
        can_pause = running and self.run_state in ("running", "paused")
        for w in (self.pause_button, self.act_pause):
            w.setEnabled(can_pause)
        for w in (self.stop_button, self.act_stop):
            w.setEnabled(running and self.run_state != "stopping")
        paused = self.run_state == "paused"
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setIcon(self._icons["start" if paused else "pause"])
        self.act_pause.setText("Resume" if self.run_state == "paused" else "Pause")
        self.act_export.setEnabled(self.bundle_path is not None and not running)
        if self.run_state == "stopping":
            self.statusBar().showMessage("Stopping after this iteration…")

    def _on_paused(self, iteration: int) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic()
        if self.run_state != "stopping":
            self._set_state("paused")
            self._set_text(self.speed_label, "paused")
            self._set_text(self.eta_label, "")

    def _on_resumed(self, iteration: int) -> None:
        if self._paused_at is not None:
            self._paused_for += time.monotonic() - self._paused_at
            self._paused_at = None
        if self.run_state != "stopping":
            self._set_state("running")

    def _on_started(self, event) -> None:
        self.device_label.setText(f"device {event.device}")
        self.meta_loss.x_extent = event.total_iterations
        self.set_metric(event.train_metric, event.eval_metric)
        self.total_iterations = event.total_iterations

    def _on_checkpoint(self, iteration: int, path: str) -> None:
        self.statusBar().showMessage(f"Checkpoint at iteration {iteration}", 3000)

    def _on_finished(self, event) -> None:
        self._ended_at = self._paused_at or time.monotonic()
        self._set_text(self.elapsed_label, f"elapsed {fmt_time(self.elapsed())}")
        self.drain()
        self.runs_panel.refresh()
        self.meta_loss.redraw(force_range=True)
        if event.bundle_path:
            self.bundle_path = Path(event.bundle_path)
            if not self.playground.busy():  # the current run's model, ready to play with
                self.playground.set_runs_dir(self.runs_dir)
                self.playground.set_model(self.bundle_path)
        if event.status == "failed":
            self.show_error("Training stopped", event.message)
        else:
            where = Path(event.bundle_path).parent.name if event.bundle_path else "the run folder"
            self.statusBar().showMessage(f"Run {event.status} at iteration {event.iteration}; model saved in {where}",
                                         0)
            self.statusBar().setToolTip(str(event.bundle_path or ""))

    def _on_error(self, message: str, details: str) -> None:
        self.show_error("Training failed", message, details)

    def _on_thread_finished(self) -> None:
        self.drain()
        if self.thread is not None:
            self.thread.deleteLater()
        if self.worker is not None:
            self.worker.deleteLater()
        self.thread = None
        self.worker = None
        self._set_state("idle")
        self._set_text(self.speed_label, "")
        self._set_text(self.eta_label, "")

    def show_error(self, title: str, text: str, details: str = "") -> None:
        """A window-modal message that does not block the event loop (the app stays usable)."""
        self.last_error = (title, text)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- live data -------------------------------------------------------------------------------
    def drain(self) -> None:
        """Move what the worker produced into the plots (called ~30 times a second)."""
        iterations, evaluations, renders = self.buffer.drain()
        if iterations:
            x = np.fromiter((e.iteration for e in iterations), np.float64, len(iterations))
            key = self._train_metric
            y = np.fromiter((e.metrics.get(key, np.nan) for e in iterations), np.float64, len(iterations))
            self.meta_loss.add_iterations(x, y)
            self._last_iteration = iterations[-1]
        now = time.monotonic()
        if now - self._status_at > STATUS_EVERY or not self.running:
            self._status_at = now
            self._update_status()
        for e in evaluations:
            self.meta_loss.add_evaluation(e.iteration, e.before, e.after)
            self.adaptation.add_evaluation(e)
        if renders:  # the newest replaces any waiting one; drawn at most once a second
            self._pending_render = renders[-1]
        # one heavy redraw per tick: a new evaluation this tick defers the rollouts to a later one
        if self._pending_render is not None and not (evaluations and self.running) and (
                now - self._render_at > RENDER_EVERY or not self.running):
            self._render_at = now
            render, self._pending_render = self._pending_render, None
            self.rollouts.show_render(render.iteration, render.payload)
        if evaluations and self.running and not self._deferred:  # spread the work over two ticks
            self._deferred = True
            return
        self._deferred = False
        if self.meta_loss.redraw():
            self.redraws += 1

    def set_metric(self, train_metric: str, eval_metric: str | None = None) -> None:
        """Plot this training metric (loss: log scale; return: linear, can be negative) and held-out metric
        (a loss such as mse: log scale; accuracy or return, where higher is better: linear)."""
        self._train_metric = train_metric
        self.meta_loss.set_metric(train_metric)
        self.meta_loss.set_heldout(eval_metric or train_metric)
        self.adaptation.log.setChecked(not higher_is_better(eval_metric or train_metric))
        try:
            steps = self.run_form.values().get("eval_steps")
        except WorkbenchError:  # a field still being typed: the axis range waits for the first evaluation
            steps = None
        self.adaptation.set_metric(eval_metric or train_metric, steps)

    def _update_status(self) -> None:
        """Status bar text (a few times a second: styled labels are slow to repaint)."""
        last = self._last_iteration
        if last is not None:
            self._set_text(self.iteration_label, f"iteration {last.iteration} / {self.total_iterations}")
            if self.run_state == "running":  # speed and ETA only mean something while training
                self._set_text(self.speed_label, fmt_speed(last.its_per_sec))
                eta = (self.total_iterations - last.iteration) / max(last.its_per_sec, 1e-9)
                self._set_text(self.eta_label, f"ETA {fmt_time(eta)}")
            self.progress.setValue(int(1000 * last.iteration / max(1, self.total_iterations)))
        if self.running:
            self._set_text(self.elapsed_label, f"elapsed {fmt_time(self.elapsed())}")

    def elapsed(self) -> float:
        """Seconds the current (or last) run has been training: paused time left out, frozen once it ends."""
        if self._ended_at is not None:
            end = self._ended_at
        elif self._paused_at is not None:
            end = self._paused_at
        else:
            end = time.monotonic()
        return max(0.0, end - self.started_at - self._paused_for)

    @staticmethod
    def _set_text(label: QLabel, text: str) -> None:
        if label.text() != text:
            label.setText(text)

    def clear_plots(self) -> None:
        self.meta_loss.clear()
        self.adaptation.clear()
        self.rollouts.clear()
        self._pending_render = None
        self.iteration_label.setText("iteration –")
        self.speed_label.setText("")
        self.eta_label.setText("")
        self.progress.setValue(0)
        self._last_iteration = None

    # -- models and plots out ------------------------------------------------------------------
    def export_model(self, path) -> bool:
        from workbench.services.bundle import load_bundle
        from workbench.core.storage import MAX_TENSOR_BYTES, UnreadableFile, atomic_write_bytes, read_regular_bytes

        path = Path(path)
        if self.bundle_path is None:
            self.show_error("Nothing to export", "Train a model (or let a run finish or stop) first.")
            return False
        try:
            if path.suffix == ".onnx":
                load_bundle(self.bundle_path).to_onnx(path)
            else:
                atomic_write_bytes(path, read_regular_bytes(self.bundle_path, MAX_TENSOR_BYTES))
        except (WorkbenchError, OSError, UnreadableFile) as e:
            self.show_error("Cannot export model", f"{path}: {e}")
            return False
        self.settings.setValue("lastModelDir", str(path.parent))
        self.statusBar().showMessage(f"Exported the model to {path}", 0)
        return True

    def export_choices(self) -> tuple[Path, str]:
        """Where the export dialog starts (the last export folder, else the run's; named after the run) and
        the formats it offers (ONNX only for a model that has an ONNX form)."""
        from workbench.services.bundle import load_bundle

        folder = Path(self.settings.value("lastModelDir") or self.bundle_path.parent)
        filters = "Model bundle (*.safetensors)"
        try:
            if load_bundle(self.bundle_path).onnx_exportable:
                filters += ";;ONNX network (*.onnx)"
        except WorkbenchError:
            pass
        return folder / f"{bundle_label(self.bundle_path)}.safetensors", filters

    def _export_model_dialog(self) -> None:
        if self.bundle_path is None:
            return
        start, filters = self.export_choices()
        path, chosen = QFileDialog.getSaveFileName(self, "Export model", str(start), filters)
        if path:
            suffix = ".onnx" if "onnx" in chosen else ".safetensors"
            self.export_model(path if Path(path).suffix in (".onnx", ".safetensors") else path + suffix)

    def open_model(self, path, tasks: int = 100, seed: int = 0) -> bool:
        """Load a bundle, then evaluate it on fresh tasks off the GUI thread and show its adaptation curves
        and rollouts.  Returns False (with a dialog) if the bundle cannot be loaded."""
        from workbench.services.bundle import load_bundle

        path = Path(path)
        if self.running:
            self.statusBar().showMessage("Stop the run before opening a model", 5000)
            return False
        try:
            model = load_bundle(path)
        except WorkbenchError as e:
            self.show_error("Cannot open model", str(e))
            return False
        self.clear_plots()
        self.bundle_path = path
        self.settings.setValue("lastModelDir", str(path.parent))
        if not self.playground.busy():  # its own copy: its thread and the evaluation's share no learner state
            self.playground.set_model(path)
        self.act_open_model.setEnabled(False)
        self.statusBar().showMessage(f"Evaluating {bundle_label(path)} on {tasks} fresh tasks…", 0)
        info = f"{model.algorithm} on {model.meta['family']}"

        cancel = threading.Event()

        def work():
            try:
                result = model.evaluation_events(tasks=tasks, seed=seed, cancel=cancel)
                self._relay.done.emit((path, info, tasks, seed, result), None)
            except Cancelled:  # the window is closing
                pass
            except Exception as e:  # shown in a dialog, the app carries on
                self._relay.done.emit(path, f"{type(e).__name__}: {e}")

        thread = threading.Thread(target=work, name="model-evaluation")
        self._evaluations = [(t, c) for t, c in self._evaluations if t.is_alive()] + [(thread, cancel)]
        thread.start()
        self._update_controls()
        return True

    def _on_model_evaluated(self, payload, error) -> None:
        self.act_open_model.setEnabled(not self.running)
        if error is not None:
            self.show_error("Cannot evaluate model", f"{payload}: {error}")
            return
        path, info, tasks, seed, (evaluation, render) = payload
        self.set_metric("return" if evaluation.metric == "return" else "loss", evaluation.metric)
        self.adaptation.add_evaluation(evaluation)
        if render is not None:
            self.rollouts.show_render(render.iteration, render.payload)
        self.statusBar().showMessage(f"Model {bundle_label(path)}: {info}, evaluated on {tasks} fresh tasks "
                                     f"(seed {seed})", 0)

    def _open_model_dialog(self) -> None:
        start = self.settings.value("lastModelDir") or str(default_runs_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, "Model bundles (*.safetensors)")
        if path:
            self.open_model(path)

    def export_plots(self, folder) -> list[Path]:
        """Every plot as PNG and its data as CSV into ``folder`` (the data as emitted: every iteration,
        in the metric's own units)."""
        from workbench.core.storage import atomic_write_text

        folder = Path(folder)
        written = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
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
        except OSError as e:
            self.show_error("Cannot export plots", f"{folder}: {e.strerror or e}")
            return written
        self.settings.setValue("lastExportDir", str(folder))
        self.statusBar().showMessage(f"Exported {len(written)} files to {folder}", 5000)
        return written

    def _export_plots_dialog(self) -> None:
        start = self.settings.value("lastExportDir") or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Export plots to folder", start)
        if folder:
            self.export_plots(folder)

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.running:
            self.worker.stop()
            if not self.thread.wait(2000):
                # still inside a long step or evaluation: stop listening; the trainer process finishes that
                # step, writes its checkpoint and exits on its own (the app's process waits for it at exit)
                self.worker.detach()
                self.thread.wait(2000)
        if self.sweep_dialog is not None:
            self.sweep_dialog.close()  # stops a running sweep
        self.playground.cancel()
        for thread, cancel in self._evaluations:  # File → Open model… still evaluating: stop it and wait for it
            cancel.set()                        # (a thread left running when the app ends aborts the process)
        for thread, _ in self._evaluations:
            thread.join()
        self._evaluations = []
        self.timer.stop()
        self._save_settings()
        super().closeEvent(event)
