"""The configuration panel: task family, algorithm, model, run and preset forms of one experiment.

Forms come from the config dataclasses (gui/forms.py).  The panel knows nothing of files: the preset
controller fills it (``apply_config``) and reads it (``current_config``).  When the user switches the
family or the algorithm it emits ``pairChanged``: the preset controller then loads that pair's defaults,
since the old preset's iterations, network and name do not belong to the new pair.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from workbench.core.config import ExperimentConfig, MetaInfo, RunConfig
from workbench.core.registry import ALGORITHMS, FAMILIES, family_availability
from workbench.services.trainer import available_devices

from .elide import ElidedLabel
from .forms import ConfigForm, ModelForm

__all__ = ["ConfigPanel", "algorithms_for"]


def algorithms_for(family: str) -> list[str]:
    """The registered algorithms that can train on ``family``, in registry order."""
    return [name for name, cls in ALGORITHMS.items() if family in cls.families]


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(widget)
    return box


class ConfigPanel(QScrollArea):
    """Every form of one experiment, in a scroll area (objectName ``configPanel`` on the inner widget).

    Signals: ``changed()`` on any edit by the user; ``pairChanged(family, algorithm)`` when the user picks
    another task family or algorithm.
    """

    changed = Signal()
    pairChanged = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._loading = False
        panel = QWidget()
        panel.setObjectName("configPanel")
        self.panel = panel
        lay = QVBoxLayout(panel)

        self.preset_name = ElidedLabel("no preset", mode=Qt.TextElideMode.ElideRight)
        self.preset_name.setObjectName("presetLabel")
        font = self.preset_name.font()
        font.setBold(True)
        self.preset_name.setFont(font)
        self.preset_where = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle)
        self.preset_where.setObjectName("presetPathLabel")
        lay.addWidget(self.preset_name)
        lay.addWidget(self.preset_where)

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
        self.device_combo.currentIndexChanged.connect(self._edited)
        for form in (self.model_form, self.run_form, self.meta_form):
            form.changed.connect(self._edited)

        self.setWidgetResizable(True)
        self.setWidget(panel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(300)

    def sizeHint(self) -> QSize:  # the dock starts this wide; the views get the rest of the page
        return QSize(340, super().sizeHint().height())

    # -- forms -------------------------------------------------------------------------------------
    def _replace_form(self, holder, old: ConfigForm | None, cls, values: dict | None) -> ConfigForm:
        if old is not None:
            holder.removeWidget(old)
            old.deleteLater()
        form = ConfigForm(cls, values)
        form.changed.connect(self._edited)
        holder.addWidget(form)
        return form

    def set_family(self, name: str, values: dict | None = None) -> None:
        """Show ``name``'s form (``values`` or its defaults) and the algorithms that can train on it."""
        cls = FAMILIES.get(name)
        self.family_form = self._replace_form(self.family_form_holder, self.family_form, cls.Config, values)
        current = self.algorithm_combo.currentText()
        self.algorithm_combo.blockSignals(True)
        self.algorithm_combo.clear()
        for algo_name in algorithms_for(name):
            self.algorithm_combo.addItem(algo_name)
            self.algorithm_combo.setItemData(self.algorithm_combo.count() - 1, ALGORITHMS.get(algo_name).summary,
                                             Qt.ItemDataRole.ToolTipRole)
        index = self.algorithm_combo.findText(current)
        self.algorithm_combo.setCurrentIndex(max(0, index))
        self.algorithm_combo.blockSignals(False)
        if index < 0 or self.algorithm_form is None:
            self.set_algorithm(self.algorithm_combo.currentText())

    def set_algorithm(self, name: str, values: dict | None = None) -> None:
        if not name:
            return
        cls = ALGORITHMS.get(name)
        self.algorithm_summary.setText(f"<b>{cls.title}</b>: {cls.summary}")
        self.algorithm_form = self._replace_form(self.algorithm_form_holder, self.algorithm_form, cls.Config, values)

    def _on_family_changed(self, name: str) -> None:
        if not self._loading and name:
            self.pairChanged.emit(name, self.algorithm_combo.currentText())

    def _on_algorithm_changed(self, name: str) -> None:
        if not self._loading and name:
            self.pairChanged.emit(self.family_combo.currentText(), name)

    def _edited(self, *_) -> None:
        if not self._loading:
            self.changed.emit()

    # -- config in and out ---------------------------------------------------------------------------
    def apply_config(self, config: ExperimentConfig) -> None:
        """Fill every form from a validated config (emits no ``changed`` / ``pairChanged``)."""
        self._loading = True
        try:
            self.family_combo.setCurrentText(config.family)
            self.set_family(config.family, dataclasses.asdict(config.task))
            self.algorithm_combo.setCurrentText(config.algorithm_name)
            self.set_algorithm(config.algorithm_name, dataclasses.asdict(config.algorithm))
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
        """The experiment the forms describe, validated like a preset (raises ConfigError).  Pending typed
        values are committed first (a value typed without Enter counts)."""
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

    def show_identity(self, name: str, where: str, modified: bool) -> None:
        """The preset's name (bold, "(modified)" when edited) and where it lives, each elided to the panel."""
        self.preset_name.setText(f"{name}{' (modified)' if modified else ''}")
        self.preset_where.setText(where)
