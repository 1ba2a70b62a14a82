"""The Sweep dialog's inputs: the experiment's name, seeds, iterations, Ray address and runs folder, and the
grid of values; and the dialog's message line.

:class:`SweepForm` plans the trials (:meth:`SweepForm.plan`) and counts them as the user types
(:meth:`SweepForm.trial_count`); it runs nothing.  A long preset name or runs folder is elided with "…"
(full text in the tooltip), so that it never widens the dialog.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from workbench.core.config import ExperimentConfig, RunConfig, fields_of
from workbench.core.errors import ConfigError
from workbench.services import sweep

from .elide import ElidedLabel, elided

__all__ = ["SweepForm", "MessageLabel", "MAX_SEEDS", "for_dialog"]

MAX_SEEDS = 1000
ERROR_COLOR = "#ff5c5c"
# keys the grid does not offer: identity, and what the form has its own input for
NOT_IN_GRID = {"task.family", "algorithm.name", "run.seed", "run.iterations"}
COMBO_ITEM_PX = 480  # a "key = value" item of the key menu is elided to this width (a long path as value)


def literal(value) -> str:
    """A config value as a grid value (a TOML literal; bare words are strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def for_dialog(message: str) -> str:
    """Core messages name command-line flags (``--grid``, ``--address``); the dialog names its inputs."""
    for flag, name in (("--grid ", "Grid "), ("--seeds ", "Seeds "), ("--address ", "Ray address ")):
        if message.startswith(flag):
            return name + message[len(flag):]
    return message


class MessageLabel(QLabel):
    """A message under the buttons (red for an error, its details as tooltip), wrapped at the width the
    dialog gives it: an error naming a long path never widens the dialog."""

    def __init__(self, parent=None):
        super().__init__("", parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumWidth(1)
        self.setVisible(False)

    def show_message(self, text: str, error: bool = False, details: str = "") -> None:
        """``text`` (hidden when empty); ``details`` as tooltip, else the text itself."""
        self.setProperty("error", error)
        self.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.setText(text)
        self.setToolTip(details or text)
        self.setVisible(bool(text))


class SweepForm(QWidget):
    """The inputs of a sweep of ``config`` into ``runs_dir``: a title line (the preset's name, elided, and
    what runs), then a "Sweep" box (seeds, iterations, Ray address, runs folder) beside a "Grid" box (one
    ``section.key=v1,v2`` per line, and a menu that adds a key).

    ``changed`` is emitted when the number of trials may have changed.
    """

    changed = Signal()

    def __init__(self, config: ExperimentConfig, runs_dir: Path, num_cpus: int | None = None, parent=None):
        super().__init__(parent)
        self.config = config
        self.keys = self._grid_keys()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self._title_row())
        boxes = QHBoxLayout()
        boxes.addWidget(self._sweep_box(runs_dir, num_cpus), 2)
        boxes.addWidget(self._grid_box(), 3)
        lay.addLayout(boxes)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # the tables get the height
        self.seeds_spin.valueChanged.connect(self.changed)
        self.grid_edit.textChanged.connect(self.changed)
        self.samples_spin.valueChanged.connect(self.changed)

    def _title_row(self) -> QHBoxLayout:
        c = self.config
        row = QHBoxLayout()
        row.setSpacing(0)  # "name: what runs", the name elided
        self.name_label = ElidedLabel(c.meta.name or "untitled", mode=Qt.TextElideMode.ElideRight, min_chars=8)
        self.name_label.setObjectName("sweepNameLabel")
        bold = QFont(self.name_label.font())
        bold.setBold(True)
        self.name_label.setFont(bold)
        # as wide as the name up to ~40 characters, narrower when the dialog is: no gap after a short name
        self.name_label.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        row.addWidget(self.name_label)
        title = QLabel(f": {c.algorithm_name} on {c.family} — every grid point × every seed is an independent run")
        title.setObjectName("sweepTitle")
        title.setWordWrap(True)
        row.addWidget(title, 1)
        return row

    def _sweep_box(self, runs_dir: Path, num_cpus: int | None) -> QGroupBox:
        c = self.config
        box = QGroupBox("Sweep")
        form = QFormLayout(box)
        self.seeds_spin = QSpinBox()
        self.seeds_spin.setObjectName("sweepSeedsSpin")
        self.seeds_spin.setRange(1, MAX_SEEDS)
        self.seeds_spin.setValue(3)
        self.seeds_spin.setToolTip(f"Runs per grid point, with seeds run.seed = {c.run.seed}, {c.run.seed + 1}, …")
        form.addRow("Seeds", self.seeds_spin)
        self.iterations_spin = QSpinBox()
        self.iterations_spin.setObjectName("sweepIterationsSpin")
        it = fields_of(RunConfig)["iterations"].metadata
        self.iterations_spin.setRange(max(1, int(it.get("low") or 1)), int(it.get("high") or 2**31 - 1))
        self.iterations_spin.setValue(max(1, c.run.iterations))
        self.iterations_spin.setGroupSeparatorShown(True)
        self.iterations_spin.setToolTip("Meta-iterations of each trial (run.iterations)")
        form.addRow("Iterations", self.iterations_spin)
        self.address_edit = QLineEdit()
        self.address_edit.setObjectName("sweepAddressEdit")
        cores = num_cpus or os.cpu_count() or 1
        self.address_edit.setPlaceholderText(f"empty: a local Ray here ({cores} cores)")
        self.address_edit.setToolTip("A Ray cluster to run on: host:6379, auto, or ray://host:10001.\n"
                                     "Empty: start a local Ray here for the sweep and shut it down after.")
        self.address_edit.setMinimumWidth(220)
        form.addRow("Ray address", self.address_edit)
        self.search_combo = QComboBox()
        self.search_combo.setObjectName("sweepSearchCombo")
        for name, tip in (("random", "each sample drawn independently (Ray Tune)"),
                          ("optuna", "Optuna's TPE proposes each trial from the results so far")):
            self.search_combo.addItem(name)
            self.search_combo.setItemData(self.search_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.search_combo.setToolTip("How the searched keys (uniform / loguniform / choice lines) are drawn")
        self.samples_spin = QSpinBox()
        self.samples_spin.setObjectName("sweepSamplesSpin")
        self.samples_spin.setRange(1, 1000)
        self.samples_spin.setToolTip("Samples drawn from the searched keys; trials = samples × grid points × seeds")
        self.scheduler_combo = QComboBox()
        self.scheduler_combo.setObjectName("sweepSchedulerCombo")
        self.scheduler_combo.addItems(["none", "asha"])
        self.scheduler_combo.setToolTip("asha: stop trials whose held-out metric after adaptation falls behind at an "
                                        "evaluation (the best half go on at each rung)\nnone: every trial runs to the end")
        self.concurrent_spin = QSpinBox()
        self.concurrent_spin.setObjectName("sweepMaxConcurrentSpin")
        self.concurrent_spin.setRange(0, 10_000)
        self.concurrent_spin.setSpecialValueText("as many as fit")
        self.concurrent_spin.setToolTip("Trials running at once (0: as many as the CPUs / GPUs allow)")
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_combo)
        search_row.addWidget(QLabel("×"))
        search_row.addWidget(self.samples_spin)
        search_row.addWidget(QLabel("samples"))
        form.addRow("Search", search_row)
        stop_row = QHBoxLayout()
        stop_row.addWidget(self.scheduler_combo)
        stop_row.addWidget(QLabel("at once"))
        stop_row.addWidget(self.concurrent_spin, 1)
        form.addRow("Early stop", stop_row)
        self.runs_label = ElidedLabel(str(runs_dir), mode=Qt.TextElideMode.ElideMiddle, min_chars=16)
        self.runs_label.setObjectName("sweepRunsDirLabel")
        form.addRow("Runs folder", self.runs_label)
        return box  # as high as the grid box beside it

    def _grid_box(self) -> QGroupBox:
        box = QGroupBox("Grid and search space (one key per line)")
        box.setToolTip("section.key=v1,v2,...: every value (the grid)\n"
                       "uniform section.key=lo,hi · loguniform section.key=lo,hi · choice section.key=a,b,...:\n"
                       "drawn by the search, once per sample")
        lay = QVBoxLayout(box)
        self.grid_edit = QPlainTextEdit()
        self.grid_edit.setObjectName("sweepGridEdit")
        self.grid_edit.setPlaceholderText(f"{self._example_line()}\nloguniform algorithm.outer_lr=0.0001,0.01\n"
                                          "# no lines: only the seeds vary")
        self.grid_edit.setTabChangesFocus(True)
        self.grid_edit.setMinimumHeight(60)
        self.grid_edit.setMaximumHeight(110)
        lay.addWidget(self.grid_edit)
        row = QHBoxLayout()
        keys = list(self.keys)
        shown = [k for k in keys if k.startswith("algorithm.")][:4] + [k for k in keys if k.startswith("model.")][:1]
        self.grid_hint = QLabel("Keys of this config: " + ", ".join(shown) + ", …")
        self.grid_hint.setObjectName("sweepGridHint")
        self.grid_hint.setWordWrap(True)
        self.grid_hint.setToolTip("\n".join(f"{k} = {literal(v)}" for k, v in self.keys.items()))
        row.addWidget(self.grid_hint, 1)
        self.key_combo = QComboBox()
        self.key_combo.setObjectName("sweepKeyCombo")
        # as wide as "Add a key…", not as its widest item (a value may be a long path)
        self.key_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.key_combo.setMinimumContentsLength(12)
        self.key_combo.addItem("Add a key…")
        for key, value in self.keys.items():
            text = f"{key} = {literal(value)}"
            self.key_combo.addItem(elided(text, self.key_combo, COMBO_ITEM_PX, Qt.TextElideMode.ElideRight), key)
            self.key_combo.setItemData(self.key_combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.key_combo.setToolTip("Adds a line with the key and its current value; add the other values after a comma")
        self.key_combo.activated.connect(self._on_key_chosen)
        row.addWidget(self.key_combo)
        lay.addLayout(row)
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        return box

    def _grid_keys(self) -> dict:
        """``section.key`` -> current value, for every key a grid may vary."""
        out = {}
        for section, values in self.config.to_dict().items():
            if section == "meta":
                continue
            for key, value in values.items():
                if f"{section}.{key}" not in NOT_IN_GRID:
                    out[f"{section}.{key}"] = value
        return out

    def _example_line(self) -> str:
        for key, value in self.keys.items():  # the first float of the algorithm, e.g. inner_lr: value and twice it
            if key.startswith("algorithm.") and isinstance(value, float) and value > 0:
                return f"{key}={literal(value)},{literal(float(f'{2 * value:.6g}'))}"
        return "model.hidden=[40,40],[80,80]"

    # -- reading the inputs --------------------------------------------------------------------------
    def lines(self) -> list[str]:
        """The grid editor's items; blank lines and ``#`` comments are skipped."""
        lines = (ln.strip() for ln in self.grid_edit.toPlainText().splitlines())
        return [ln for ln in lines if ln and not ln.startswith("#")]

    def grid_lines(self) -> list[str]:
        """The grid's items (lines without a uniform / loguniform / choice word)."""
        return [ln for ln in self.lines() if ln.split(None, 1)[0] not in sweep.DIST_KINDS]

    def search_lines(self) -> dict[str, list[str]]:
        """kind -> the ``section.key=...`` items of the lines that start with that kind."""
        out: dict[str, list[str]] = {k: [] for k in sweep.DIST_KINDS}
        for ln in self.lines():
            word, _, rest = ln.partition(" ")
            if word in out:
                out[word].append(rest.strip())
        return out

    def address(self) -> str | None:
        """The Ray address typed, or None for a local Ray."""
        return self.address_edit.text().strip() or None

    def plan(self) -> sweep.SweepPlan:
        """The sweep from the inputs; raises :class:`ConfigError` naming what is wrong."""
        overrides = [f"run.iterations={self.iterations_spin.value()}"]
        d = self.search_lines()
        return sweep.plan_search(self.config, self.seeds_spin.value(), self.grid_lines(), overrides, d["uniform"],
                                 d["loguniform"], d["choice"], self.samples_spin.value(),
                                 self.search_combo.currentText(), self.scheduler_combo.currentText(),
                                 self.concurrent_spin.value())

    def trial_count(self) -> tuple[str, str]:
        """"18 trials (3 seeds × 6 grid points)" from the grid's syntax (its values are checked at Start),
        and a tooltip: why the count is "?" when a line cannot be read."""
        seeds, samples = self.seeds_spin.value(), self.samples_spin.value()
        try:
            grid = sweep.parse_grid(self.grid_lines())
            d = self.search_lines()
            sweep.parse_dists(d["uniform"], d["loguniform"], d["choice"])
        except ConfigError as e:
            return "? trials", for_dialog(str(e))
        points = math.prod(len(v) for _, v in grid)
        n = seeds * points * samples
        parts = [f"{samples} sample{'s' * (samples != 1)}"] if samples > 1 else []
        parts += [f"{seeds} seed{'s' * (seeds != 1)}"] + ([f"{points} grid point{'s' * (points != 1)}"] if grid else [])
        detail = f" ({' × '.join(parts)})" if len(parts) > 1 else ""
        return f"{n} trial{'s' * (n != 1)}{detail}", ""

    def set_editable(self, editable: bool) -> None:
        for w in (self.seeds_spin, self.iterations_spin, self.grid_edit, self.address_edit, self.key_combo,
                  self.search_combo, self.samples_spin, self.scheduler_combo, self.concurrent_spin):
            w.setEnabled(editable)

    def _on_key_chosen(self, index: int) -> None:
        key = self.key_combo.itemData(index)
        self.key_combo.setCurrentIndex(0)
        if not key:
            return
        text = self.grid_edit.toPlainText()
        if text and not text.endswith("\n"):
            text += "\n"
        self.grid_edit.setPlainText(f"{text}{key}={literal(self._grid_keys()[key])},")
        cursor = self.grid_edit.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.grid_edit.setTextCursor(cursor)
        self.grid_edit.setFocus()
