"""The main window's actions, menus and run toolbar (names are contracts: ``startAction``, ``startButton`` …)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QPushButton, QStyle, QToolBar

__all__ = ["build_actions"]


def _action(w, text: str, slot, shortcut=None, name: str | None = None) -> QAction:
    a = QAction(text, w)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if name:
        a.setObjectName(name)
    a.triggered.connect(slot)
    w.addAction(a)
    return a


def _button(w, icon, text: str, name: str, tip: str, slot) -> QPushButton:
    b = QPushButton(w.style().standardIcon(icon), text)
    b.setObjectName(name)
    b.setToolTip(tip)
    b.setMinimumWidth(96)  # Pause / Resume without shifting the other buttons
    b.clicked.connect(slot)
    return b


def build_actions(w) -> None:
    """The window's actions (``act_*``), File / Run / View menus and the run toolbar (``start_button`` …)."""
    w.act_start = _action(w, "Start", w.start, "Ctrl+R", "startAction")
    w.act_pause = _action(w, "Pause", w.runner.toggle_pause, Qt.Key.Key_Space, "pauseAction")
    w.act_stop = _action(w, "Stop", w.runner.stop, "Ctrl+.", "stopAction")
    w.act_clear = _action(w, "Clear plots", w.runner.clear, None, "clearAction")
    w.act_open_preset = _action(w, "Open preset…", w.presets.open_dialog, "Ctrl+O", "openPresetAction")
    w.act_save_preset = _action(w, "Save preset as…", w.presets.save_dialog, "Ctrl+S", "savePresetAction")
    w.act_export = _action(w, "Export model…", w.models.export_model_dialog, "Ctrl+E", "exportModelAction")
    w.act_open_model = _action(w, "Open model…", w.models.open_model_dialog, None, "openModelAction")
    w.act_export_plots = _action(w, "Export plots…", w.models.export_plots_dialog, None, "exportPlotsAction")
    w.act_sweep = _action(w, "Sweep…", w.open_sweep_dialog, None, "sweepAction")
    w.act_quit = _action(w, "Quit", w.close, QKeySequence.StandardKey.Quit)

    menu = w.menuBar().addMenu("&File")
    menu.addAction(w.act_open_preset)
    w.shipped_menu = menu.addMenu("Shipped presets")
    w.shipped_menu.setObjectName("shippedPresetsMenu")
    w.presets.fill_shipped(w.shipped_menu)
    w.recent_menu = w.presets.recent_menu = menu.addMenu("Recent presets")
    for a in (w.act_save_preset, None, w.act_open_model, w.act_export, w.act_export_plots, None, w.act_quit):
        menu.addSeparator() if a is None else menu.addAction(a)
    run = w.menuBar().addMenu("&Run")
    for a in (w.act_start, w.act_pause, w.act_stop, w.act_clear):
        run.addAction(a)
    run.addSeparator()
    run.addAction(w.act_sweep)
    view = w.menuBar().addMenu("&View")
    for i, title in enumerate(("Train", "Runs", "Playground")):
        view.addAction(_action(w, title, lambda _=False, i=i: w.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}"))
    view.addSeparator()
    for dock in w.train.docks:
        view.addAction(dock.toggleViewAction())

    bar = QToolBar("Run")
    bar.setObjectName("runToolbar")
    bar.setMovable(False)
    px = QStyle.StandardPixmap
    w._icons = {"start": w.style().standardIcon(px.SP_MediaPlay), "pause": w.style().standardIcon(px.SP_MediaPause)}
    w.start_button = _button(w, px.SP_MediaPlay, "Start", "startButton", "Start training (Ctrl+R)", w.start)
    w.pause_button = _button(w, px.SP_MediaPause, "Pause", "pauseButton", "Pause / resume (Space)",
                             w.runner.toggle_pause)
    w.stop_button = _button(w, px.SP_MediaStop, "Stop", "stopButton",
                            "Stop after this iteration, keeping a checkpoint (Ctrl+.)", w.runner.stop)
    w.clear_button = _button(w, px.SP_DialogResetButton, "Clear", "clearButton", "Clear the plots", w.runner.clear)
    for b in (w.start_button, w.pause_button, w.stop_button, w.clear_button):
        bar.addWidget(b)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
