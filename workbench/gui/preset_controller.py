"""Presets in the app: open, save, recent and shipped presets, and what a family / algorithm switch loads.

The controller owns the preset's identity (its file, whether it was edited) and fills the configuration
panel.  It never trains and draws nothing; the window listens to ``loaded`` (clear the views, set the
metric) and ``identityChanged`` (window title).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from workbench.core.config import ExperimentConfig
from workbench.core.errors import WorkbenchError
from workbench.services.paths import user_data_dir
from workbench.services.rundir import safe_run_name
from workbench.services.presets import list_presets

from .config_panel import ConfigPanel, algorithms_for

__all__ = ["PresetController", "pair_defaults"]

MAX_RECENT = 8


def pair_defaults(family: str, algorithm: str, presets=None) -> tuple[ExperimentConfig, str]:
    """The configuration a switch to (``family``, ``algorithm``) starts from, and where it comes from.

    A shipped preset of that pair if there is one (the one named ``<algorithm>-<family>``, else the one
    with the shortest name), else the dataclass defaults named ``<algorithm>-<family>``.  An algorithm that
    cannot train on the family is replaced by one that can (a shipped preset's for that family first).
    """
    presets = [p for p in (list_presets() if presets is None else presets) if p.readable]
    allowed = algorithms_for(family)
    if algorithm not in allowed:
        shipped = [p.algorithm for p in sorted(presets, key=lambda p: (len(p.name), p.name))
                   if p.family == family and p.algorithm in allowed]
        algorithm = shipped[0] if shipped else (allowed[0] if allowed else algorithm)
    matching = sorted((p for p in presets if p.family == family and p.algorithm == algorithm),
                      key=lambda p: (p.name != f"{algorithm}-{family}", len(p.name), p.name))
    for info in matching:
        try:
            return ExperimentConfig.load(info.path), f"shipped preset {info.name}"
        except WorkbenchError:
            continue
    config = ExperimentConfig.from_dict({"meta": {"name": f"{algorithm}-{family}"}, "task": {"family": family},
                                         "algorithm": {"name": algorithm}}, where="defaults")
    return config, f"the defaults of {algorithm} on {family}"


class PresetController(QObject):
    """Loads and saves presets into a :class:`ConfigPanel`; keeps the recent list and the shipped menu.

    :param parent: the window: dialogs open over it and messages go to its status bar.
    """

    loaded = Signal(object)  # the ExperimentConfig now in the panel (after a load or a pair switch)
    identityChanged = Signal(str, bool)  # preset name ("untitled" when not saved), modified
    failed = Signal(str, str)  # title, message

    def __init__(self, panel: ConfigPanel, settings: QSettings, parent: QWidget):
        super().__init__(parent)
        self.panel, self.settings, self.window = panel, settings, parent
        self.path: Path | None = None
        self.modified = False
        self.based_on = ""  # what an unsaved configuration came from (a pair switch)
        self.locked = False  # a run is active: nothing may load another configuration
        self.recent_menu: QMenu | None = None
        panel.changed.connect(self.mark_modified)
        panel.pairChanged.connect(self.switch_pair)

    # -- identity ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.stem if self.path else "untitled"

    def mark_modified(self) -> None:
        self.modified = True
        self._show_identity()

    def _show_identity(self) -> None:
        where = str(self.path) if self.path else f"not saved; from {self.based_on}" if self.based_on else "not saved"
        self.panel.show_identity(self.name, where, self.modified)
        self.identityChanged.emit(self.name, self.modified)

    def _message(self, text: str, ms: int = 5000) -> None:
        self.window.statusBar().showMessage(text, ms)

    # -- loading -------------------------------------------------------------------------------------
    def load(self, path, quiet: bool = False) -> bool:
        """Load a preset into the panel; on any error say so (unless ``quiet``) and change nothing."""
        path = Path(path)
        if self.locked:
            self._message("Stop the run before loading another preset")
            return False
        try:
            config = ExperimentConfig.load(path)  # never blocks on a FIFO or reads a device (read_toml)
        except WorkbenchError as e:
            if not quiet:
                self.failed.emit("Cannot open preset", str(e))
            return False
        self.panel.apply_config(config)
        self.path, self.modified, self.based_on = path, False, ""
        self.remember(path)
        self._show_identity()
        self.loaded.emit(config)
        self._message(f"Loaded preset {path}")
        return True

    def switch_pair(self, family: str, algorithm: str) -> None:
        """The user picked another family or algorithm: start from that pair's defaults, unnamed and modified
        (the old preset's name, iterations and network belong to the old pair)."""
        if self.locked:
            return
        config, source = pair_defaults(family, algorithm)
        device = self.panel.device_combo.currentText()
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, device=device))
        self.panel.apply_config(config)
        self.path, self.modified, self.based_on = None, True, source
        self._show_identity()
        self.loaded.emit(config)
        self._message(f"{config.algorithm_name} on {config.family}: settings from {source}")

    def save(self, path) -> bool:
        from workbench.core.storage import atomic_write_text

        path = Path(path)
        try:
            config = self.panel.current_config()
            atomic_write_text(path, config.to_toml())
        except (WorkbenchError, OSError) as e:
            self.failed.emit("Cannot save preset", f"{path}: {e}")
            return False
        self.path, self.modified, self.based_on = path, False, ""
        self.remember(path)
        self._show_identity()
        self._message(f"Saved preset {path}")
        return True

    # -- dialogs -------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        presets = list_presets()
        start = self.settings.value("lastPresetDir") or str(presets[0].path.parent if presets else Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open preset", start, "Presets (*.toml);;All files (*)")
        if path:
            self.load(path)

    def save_dialog(self) -> None:
        name = safe_run_name(self.panel.meta_form.values().get("name", "preset"))
        shipped = {p.path.resolve() for p in list_presets()}
        if self.path is not None and self.path.resolve() not in shipped:
            start = str(self.path)  # the user's own preset: save over it by default
        else:  # never suggest overwriting a shipped preset
            start = str(Path(self.settings.value("lastPresetDir") or user_data_dir() / "presets") / f"{name}.toml")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save preset as", start, "Presets (*.toml)")
        if path:
            self.save(path if path.endswith(".toml") else path + ".toml")

    # -- recent and shipped ----------------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("recentPresets") or []
        return [value] if isinstance(value, str) else list(value)

    def remember(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self.recent() if r != p]
        self.settings.setValue("recentPresets", [p, *recent][:MAX_RECENT])
        self.settings.setValue("lastPreset", p)
        self.settings.setValue("lastPresetDir", str(Path(p).parent))
        self.fill_recent(enabled=not self.locked)

    def fill_recent(self, enabled: bool = True) -> None:
        if self.recent_menu is None:
            return
        self.recent_menu.clear()
        recent = self.recent()
        for p in recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, path=p: self.load(path))
        self.recent_menu.setEnabled(bool(recent) and enabled)

    def fill_shipped(self, menu: QMenu, presets=None) -> None:
        """One submenu per task family, entries by name; the description is the entry's tooltip and status
        tip (whole descriptions made the menu as wide as the screen)."""
        by_family: dict[str, list] = {}
        for info in list_presets() if presets is None else presets:
            by_family.setdefault(info.family if info.readable else "unreadable", []).append(info)
        for family in sorted(by_family):
            sub = menu.addMenu(family)
            sub.setToolTipsVisible(True)
            for info in sorted(by_family[family], key=lambda i: i.name):
                a = sub.addAction(info.name)
                a.triggered.connect(lambda _=False, p=info.path: self.load(p))
                tip = info.description if info.readable else f"{info.path}: {info.error}"
                a.setToolTip(tip)
                a.setStatusTip(tip)
                a.setEnabled(info.readable)  # an unreadable one is listed with the reason, not offered

    def default_preset(self) -> Path | None:
        for info in list_presets():
            if info.name == "maml-sinusoid" and info.readable:
                return info.path
        return None
