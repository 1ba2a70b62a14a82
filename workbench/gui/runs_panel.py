"""The Runs panel: every run of a runs folder in a table, the selected runs' curves overlaid.

What it shows comes from :mod:`workbench.services.runs` (listing, grouping by seed, the mean and its 95% CI
band, min and max) and :func:`workbench.core.stats.ema_tensorboard` (smoothing): nothing is computed
here.  A bad directory in the folder is a row that says why it is unreadable, never an exception.

The listing is read when the panel is first shown (or on :meth:`RunsPanel.refresh`), then every few
seconds while the panel is visible, and only re-read when something in the folder changed.  Curves are
read on selection and cached per run until its files change.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout,
                               QHeaderView, QInputDialog, QLabel, QLineEdit, QMessageBox, QPushButton, QSizePolicy,
                               QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from workbench.services import runs as core_runs
from workbench.services.runs import (GROUP_IGNORED, Aggregate, Curves, RunError, RunInfo, aggregate, check_run_name,
                                 delete_run, load_curves, read_run, rename_run, run_bundle, scan_runs)
from workbench.core.stats import ema_tensorboard
from workbench.core.storage import atomic_write_text

from .plots import PALETTE, cache_static_parts, export_plot_item, make_plot

COLUMNS = ["Name", "Preset", "Family", "Algorithm", "Seed", "Status", "Iterations", "Final", "Date", "Sweep"]
(COL_NAME, COL_PRESET, COL_FAMILY, COL_ALGORITHM, COL_SEED, COL_STATUS, COL_ITERATIONS, COL_FINAL, COL_DATE,
 COL_SWEEP) = range(len(COLUMNS))
BANDS = ("95% CI", "min–max")
POLL_MS = 3000  # auto-refresh while visible
GREY = "#7d808a"
STATUS_COLORS = {"running": "#4e9af1", "finished": "#59a14f", "stopped": "#edc948", "failed": "#e15759",
                 "interrupted": "#f28e2b", "unreadable": GREY}
MAX_LISTED = 15  # runs named in the delete confirmation
PANEL_STYLE = """
QTreeWidget#runsTable { background: #1e1f24; alternate-background-color: #23242a; border: 1px solid #3a3d46; }
QTreeWidget#runsTable::item { padding: 2px 4px; }
QTreeWidget#runsTable::item:selected { background: #3a5f9a; }
QHeaderView::section { background: #2e3037; color: #dcdde1; border: none; border-right: 1px solid #3a3d46;
    padding: 3px 6px; }
QLabel#runsMessage[warn="true"] { color: #f0b35a; }
"""


# -- what a row says -----------------------------------------------------------------------------------
def status_text(info: RunInfo) -> str:
    if info.error is not None:
        return "unreadable"
    if info.interrupted:
        return "interrupted"
    return info.status or "?"


def final_text(info: RunInfo) -> str:
    """The last held-out value after adaptation with its metric ("mse 0.512", "return -14.3")."""
    if info.error is not None:
        return info.error
    if not info.metric:
        return "–"
    return f"{info.metric} –" if info.final is None else f"{info.metric} {info.final:.3g}"


def date_text(info: RunInfo) -> str:
    return info.date.astimezone().strftime("%Y-%m-%d %H:%M") if info.date is not None else ""


def still_running(info: RunInfo) -> bool:
    """Says "running" and its process is not known to be gone."""
    return info.error is None and info.status == "running" and not info.interrupted


def _tooltip(info: RunInfo) -> str:
    lines = [str(info.path)]
    if info.error is not None:
        lines.append(f"unreadable: {info.error}")
    if info.interrupted:
        lines.append("status.json says running, but the process that wrote it is gone (crashed or killed)")
    elif info.status == "running" and info.process_alive is None:
        lines.append("running (its process is on another machine or unknown)")
    if info.message:
        lines.append(f"{info.status}: {info.message}")
    if info.sweep_id is not None:
        trial = f", trial {info.trial}" if info.trial is not None else ""
        values = ", ".join(f"{k}={v}" for k, v in info.sweep_values.items())
        lines.append(f"sweep {info.sweep_id}{trial}" + (f" ({values})" if values else ""))
    if info.warning:
        lines.append(f"note: {info.warning}")
    return "\n".join(lines)


def _path_key(path) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


class _RunItem(QTreeWidgetItem):
    """A row; sorts by typed keys (numbers as numbers, missing values last)."""

    def __init__(self, info: RunInfo):
        super().__init__()
        self.keys: tuple = ()
        self.set_info(info)

    def set_info(self, info: RunInfo) -> None:
        self.info = info
        bad = info.error is not None
        status = status_text(info)
        done = str(info.iterations) if not bad or info.iterations else ""
        iters = f"{done} / {info.total_iterations}" if info.total_iterations is not None and done else done
        sweep = info.sweep_id or ""
        texts = [info.name, info.preset, info.family, info.algorithm, "" if info.seed is None else str(info.seed),
                 status, iters, final_text(info), date_text(info), sweep]

        def num(v):
            return (0, v) if v is not None else (1, 0)

        final_key = (2, 0) if bad else num(info.final)
        self.keys = (info.name.lower(), info.preset, info.family, info.algorithm, num(info.seed), status,
                     num(info.iterations if not bad else None), final_key,
                     (0, -info.date.timestamp()) if info.date is not None else (1, 0), sweep)
        tip = _tooltip(info)
        grey = QBrush(QColor(GREY))
        for c, t in enumerate(texts):
            if self.text(c) != t:
                self.setText(c, t)
            self.setToolTip(c, tip)
            if bad:
                self.setForeground(c, grey)
            else:
                self.setData(c, Qt.ItemDataRole.ForegroundRole, None)
        self.setForeground(COL_STATUS, QBrush(QColor(STATUS_COLORS.get(status, "#dcdde1"))))
        for c in (COL_SEED, COL_ITERATIONS):
            self.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        font = QFont(self.font(COL_NAME))
        font.setItalic(bad)
        for c in range(len(COLUMNS)):
            self.setFont(c, font)

    def __lt__(self, other):
        tree = self.treeWidget()
        col = tree.sortColumn() if tree is not None else 0
        try:
            # Date sorts newest first in ascending order: its key is minus the time
            return self.keys[col] < other.keys[col]
        except (AttributeError, IndexError, TypeError):
            return super().__lt__(other)


class _ElidedLabel(QLabel):
    """A one-line label that elides the middle of a long text (a path) and shows it whole as a tooltip."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(60)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(20, self.width() - 4)
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, width))


# -- what the plots draw --------------------------------------------------------------------------------
@dataclass
class DrawnSeries:
    """One legend entry: a run, or runs that differ only in their seed."""
    label: str
    runs: list[RunInfo]
    color: str
    train: Aggregate  # training metric vs iteration, as logged
    smoothed: Aggregate  # each run smoothed (TensorBoard's EMA) before aggregating: what is drawn
    adaptation: Aggregate  # held-out metric vs inner step at each run's last evaluation

    @property
    def grouped(self) -> bool:
        return len(self.runs) > 1

    def band(self, agg: Aggregate, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of the band drawn around ``agg``'s mean; None for a single run."""
        if not self.grouped:
            return None
        return (agg.min, agg.max) if kind == BANDS[1] else (agg.low, agg.high)


def _kind(info: RunInfo, curves: Curves) -> str:
    """"return" (higher is better — a return or an accuracy —, linear axis) or "loss": runs of different kinds
    are not overlaid."""
    return "return" if info.higher_is_better or curves.train_metric == "return" else "loss"


def _flat(config: dict | None) -> dict[str, str]:
    out = {}
    for section, values in (config or {}).items():
        if section == "meta" or not isinstance(values, dict):
            continue
        ignored = GROUP_IGNORED.get(section, ())
        for k, v in values.items():
            if k not in ignored:
                out[f"{section}.{k}"] = json.dumps(v, sort_keys=True, default=str)
    return out


def _short(value: str) -> str:
    try:
        v = json.loads(value)
    except ValueError:
        return value
    return f"{v:g}" if isinstance(v, float) else str(v)


def _differences(configs: list[dict | None], limit: int = 3) -> list[str]:
    """For configs that share a name, the settings that tell them apart ("inner_lr=0.02")."""
    flats = [_flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({f.get(k) for f in flats}) > 1]
    out = []
    for f in flats:
        parts = [f"{k.split('.')[-1]}={_short(f[k]) if k in f else '–'}" for k in differ[:limit]]
        out.append(", ".join(parts) + (", …" if len(differ) > limit else ""))
    return out


def _color(i: int) -> str:
    if i < len(PALETTE):
        return PALETTE[i]
    return pg.intColor(i, hues=13, values=1, minValue=200).name()


def _fmt(v) -> str:
    return repr(float(v))


# -- the panel ------------------------------------------------------------------------------------------
class RunsPanel(QWidget):
    """The runs of a folder: list, compare (seeds grouped), export, open, rename, delete."""

    openModelRequested = Signal(str)  # the path of a run's model bundle
    runsDirChanged = Signal(str)  # the user chose another runs folder (the "Folder…" button)

    def __init__(self, runs_dir, parent=None):
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.setStyleSheet(PANEL_STYLE)
        self.runs_dir = Path(runs_dir)
        self.series: list[DrawnSeries] = []
        self.meta_items: dict[str, tuple] = {}  # label -> (line, band or None) as drawn
        self.adaptation_items: dict[str, tuple] = {}
        self._items: dict[str, _RunItem] = {}  # path key -> row
        self._cache: dict[str, tuple] = {}  # path key -> (files key, Curves or RunError)
        self._snapshot = None
        self._loaded = False
        self._plotted = None  # what the plots show: (selection, its files, settings)
        self._metric_kind = "loss"
        self._notes: list[str] = []
        self._folder_state = ("", False)
        self._sized = False
        self._bundle: Path | None = None
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    # -- building ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.folder_label = _ElidedLabel(str(self.runs_dir))
        self.folder_label.setObjectName("runsFolderLabel")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setObjectName("runsFolderButton")
        self.folder_button.setToolTip("Choose the folder the runs are listed from (and new runs go to)")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("runsRefreshButton")
        self.refresh_button.setToolTip("Read the runs folder again (it is also re-read every few seconds)")
        top = QHBoxLayout()
        top.addWidget(QLabel("Runs folder:"))
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.folder_button)
        top.addWidget(self.refresh_button)

        self.table = QTreeWidget()
        self.table.setObjectName("runsTable")
        self.table.setColumnCount(len(COLUMNS))
        self.table.setHeaderLabels(COLUMNS)
        self.table.setRootIsDecorated(False)
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_DATE, Qt.SortOrder.AscendingOrder)  # newest first (see _RunItem.keys)
        header = self.table.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setToolTip("")

        self.open_button = QPushButton("Open model")
        self.open_button.setObjectName("openRunModelButton")
        self.open_button.setToolTip("Evaluate the selected run's model on fresh tasks in the main views")
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setObjectName("renameRunButton")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("deleteRunButton")
        self.delete_button.setToolTip("Delete the selected runs' folders (asks first)")
        self.message = QLabel("")
        self.message.setObjectName("runsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        actions = QHBoxLayout()
        for b in (self.open_button, self.rename_button, self.delete_button):
            actions.addWidget(b)
        actions.addWidget(self.message, 1)

        self.group_check = QCheckBox("Group seeds")
        self.group_check.setObjectName("groupSeedsCheck")
        self.group_check.setChecked(True)
        self.group_check.setToolTip("Runs that differ only in their seed are drawn as one mean line with a band")
        self.band_combo = QComboBox()
        self.band_combo.setObjectName("bandCombo")
        self.band_combo.addItems(BANDS)
        self.band_combo.setToolTip("The band around a group's mean: the 95% confidence interval of the mean "
                                   "over seeds (Student t), or the range of the seeds")
        self.ema_spin = QDoubleSpinBox()
        self.ema_spin.setObjectName("runsEmaSpin")
        self.ema_spin.setRange(0.0, 0.999)
        self.ema_spin.setDecimals(3)
        self.ema_spin.setSingleStep(0.05)
        self.ema_spin.setValue(0.6)
        self.ema_spin.setToolTip("Smoothing of the training curves, TensorBoard's debiased EMA, applied to each run "
                                 "before the seeds are averaged; 0 = none.  The adaptation curves are not smoothed.")
        self.log_check = QCheckBox("log scale")
        self.log_check.setObjectName("runsLogCheck")
        self.log_check.setChecked(True)
        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.setObjectName("exportRunsPngButton")
        self.export_png_button.setToolTip("Both plots as PNG images into a folder")
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setObjectName("exportRunsCsvButton")
        self.export_csv_button.setToolTip("The data drawn in both plots (mean, band, n; raw and smoothed) as CSV")
        controls = QHBoxLayout()
        controls.addWidget(self.group_check)
        controls.addWidget(QLabel("band"))
        controls.addWidget(self.band_combo)
        controls.addSpacing(12)
        controls.addWidget(QLabel("smoothing"))
        controls.addWidget(self.ema_spin)
        controls.addWidget(self.log_check)
        controls.addStretch(1)
        controls.addWidget(self.export_png_button)
        controls.addWidget(self.export_csv_button)

        self.meta_plot = make_plot("runsMetaLossPlot", "meta-iteration", "training loss")
        self.adaptation_plot = make_plot("runsAdaptationPlot", "inner step (0 = before adaptation)", "held-out loss")
        for w in (self.meta_plot, self.adaptation_plot):
            p = w.getPlotItem()
            p.setLogMode(y=True)
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
            # long group labels sit over the curves: keep them readable
            p.legend.setBrush(pg.mkBrush(30, 31, 36, 210))
            p.legend.setPen(pg.mkPen(58, 61, 70))
            p.legend.setLabelTextSize("8pt")
            cache_static_parts(p)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.meta_plot)
        plots.addWidget(self.adaptation_plot)

        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addLayout(top)
        ul.addWidget(self.table, 1)
        ul.addLayout(actions)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(controls)
        ll.addWidget(plots, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 520])
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        self.folder_button.clicked.connect(self._choose_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda *_: self.open_model())
        self.open_button.clicked.connect(self.open_model)
        self.rename_button.clicked.connect(self._rename_dialog)
        self.delete_button.clicked.connect(self._delete_dialog)
        self.group_check.toggled.connect(lambda _: self._update_plots(force=True))
        self.band_combo.currentIndexChanged.connect(lambda _: self._draw())
        self.ema_spin.valueChanged.connect(lambda _: self._update_plots(force=True))
        self.log_check.toggled.connect(lambda _: self._draw())
        self.export_png_button.clicked.connect(lambda: self._export_dialog(png=True, csv=False))
        self.export_csv_button.clicked.connect(lambda: self._export_dialog(png=False, csv=True))
        self._update_buttons()

    # -- visibility and polling --------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.refresh()
        else:
            self.poll()
        self._timer.start()

    def hideEvent(self, event) -> None:
        self._timer.stop()
        super().hideEvent(event)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.refresh()

    def _stat(self, path: Path):
        try:
            s = path.stat()
            return s.st_mtime_ns, s.st_size
        except OSError:
            return None

    def _take_snapshot(self) -> tuple:
        """What changes when the listing may have: the folder's and its sub-folders' mtimes, each run's
        status.json, and the files of running or half-written runs (appending to a CSV does not touch the
        folder).  A few stats per run: cheap next to re-reading every run."""
        root = self.runs_dir
        parts = [self._stat(root)]
        try:
            with os.scandir(root) as it:
                for e in it:
                    if not e.name.startswith("."):
                        try:
                            if e.is_dir():
                                parts.append((e.name, e.stat().st_mtime_ns))
                        except OSError:
                            continue
        except OSError:
            pass
        for key, item in self._items.items():
            info = item.info
            if info.path.parent != root:  # runs in a sweep's folder
                parts.append((key, self._stat(info.path)))
            parts.append((key, self._stat(info.path / core_runs.STATUS)))  # also when written in place
            if info.status == "running" or info.error is not None:
                parts.append((key, *(self._stat(info.path / f) for f in (core_runs.CONFIG, core_runs.STATUS,
                                                                           core_runs.METRICS, core_runs.EVAL))))
                if info.status == "running" and info.error is None:  # has its process died since?
                    parts.append((key, read_run(info.path, root).interrupted))
        return tuple(parts)

    def poll(self) -> bool:
        """Re-read the folder if anything in it changed since the last look; returns whether it did."""
        if not self._loaded:
            self.refresh()
            return True
        if self._take_snapshot() == self._snapshot:
            return False
        self.refresh()
        return True

    # -- the folder ----------------------------------------------------------------------------------
    def set_runs_dir(self, path) -> None:
        """List another folder (does not emit runsDirChanged: that is for the user's choice)."""
        self.runs_dir = Path(path)
        self.folder_label.set_full_text(str(self.runs_dir))
        self._cache.clear()
        self.table.blockSignals(True)
        self.table.clear()
        self.table.blockSignals(False)
        self._items.clear()
        self._plotted = None
        self.refresh()

    def _choose_folder(self) -> None:
        start = str(self.runs_dir if self.runs_dir.is_dir() else Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Runs folder", start)
        if folder:
            self.set_runs_dir(folder)
            self.runsDirChanged.emit(str(Path(folder)))

    def runs(self) -> list[RunInfo]:
        """Every listed run (readable or not), in the table's order."""
        self._ensure_loaded()
        return [self.table.topLevelItem(i).info for i in range(self.table.topLevelItemCount())]

    def refresh(self) -> None:
        """Read the runs folder again, keeping the selection (runs that are gone drop out of it)."""
        self._loaded = True
        root = self.runs_dir
        listed = scan_runs(root)
        keys = set()
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)
        self.table.blockSignals(True)
        try:
            for info in listed:
                key = _path_key(info.path)
                keys.add(key)
                item = self._items.get(key)
                if item is None:
                    item = self._items[key] = _RunItem(info)
                    self.table.addTopLevelItem(item)
                else:
                    item.set_info(info)
            for key in [k for k in self._items if k not in keys]:
                item = self._items.pop(key)
                self.table.takeTopLevelItem(self.table.indexOfTopLevelItem(item))
                self._cache.pop(key, None)
        finally:
            self.table.blockSignals(False)
            self.table.setSortingEnabled(sorting)
        if listed and not self._sized:
            self._size_columns()
        self._snapshot = self._take_snapshot()
        self._folder_state = self._describe_folder(listed)
        self._on_selection()

    def _size_columns(self) -> None:
        self._sized = True
        for c in range(len(COLUMNS)):
            self.table.resizeColumnToContents(c)
        self.table.setColumnWidth(COL_NAME, min(max(self.table.columnWidth(COL_NAME), 120), 320))
        self.table.setColumnWidth(COL_FINAL, min(max(self.table.columnWidth(COL_FINAL), 90), 260))
        self.table.setColumnWidth(COL_DATE, max(self.table.columnWidth(COL_DATE), 110))

    def _describe_folder(self, listed: list[RunInfo]) -> tuple[str, bool]:
        """What the message says with nothing selected, and whether it is a warning."""
        root = self.runs_dir
        if not root.exists():
            return f"no runs yet in {root}", False
        if not root.is_dir():
            return f"{root} is not a folder", True
        if not os.access(root, os.R_OK | os.X_OK):
            return f"cannot read {root} (permission denied)", True
        if not listed:
            return f"no runs yet in {root}", False
        bad = sum(r.error is not None for r in listed)
        text = f"{len(listed)} run{'s' if len(listed) > 1 else ''}"
        text += f", {bad} unreadable (hover over a row for why)" if bad else ""
        return text + "; select runs to compare their curves", False

    # -- selection ----------------------------------------------------------------------------------
    def selected_runs(self) -> list[RunInfo]:
        """The selected rows' runs in the table's order, unreadable ones included."""
        self._ensure_loaded()
        items = self.table.selectedItems()
        items.sort(key=self.table.indexOfTopLevelItem)
        return [it.info for it in items]

    def select_runs(self, paths) -> None:
        """Select exactly these runs (paths of run folders) and draw them."""
        self._ensure_loaded()
        want = {_path_key(p) for p in paths}
        first = None
        self.table.blockSignals(True)
        try:
            self.table.clearSelection()
            for i in range(self.table.topLevelItemCount()):
                item = self.table.topLevelItem(i)
                if _path_key(item.info.path) in want:
                    item.setSelected(True)
                    first = first or item
        finally:
            self.table.blockSignals(False)
        if first is not None:
            self.table.scrollToItem(first)
        self._on_selection()

    def show_sweep(self, sweep_id: str) -> None:
        """Select every run of a sweep, seeds grouped."""
        self.refresh()
        paths = [r.path for r in self.runs() if r.sweep_id == sweep_id]
        self.group_check.blockSignals(True)
        self.group_check.setChecked(True)
        self.group_check.blockSignals(False)
        self.select_runs(paths)
        if not paths:
            self._say(f"no runs of sweep {sweep_id} in {self.runs_dir}", warn=True)

    def _on_selection(self) -> None:
        self._update_buttons()
        self._update_plots()

    def _update_buttons(self) -> None:
        sel = self.selected_runs() if self._loaded else []
        one = sel[0] if len(sel) == 1 else None
        self._bundle = None
        if one is not None and one.error is None and not still_running(one):
            self._bundle = run_bundle(one)
        self.open_button.setEnabled(self._bundle is not None)
        if one is not None and self._bundle is None:
            why = ("it is still running" if still_running(one) else "it is unreadable" if one.error
                   else "it has no model bundle (model.safetensors)")
            self.open_button.setToolTip(f"Cannot open {one.name}'s model: {why}")
        else:
            self.open_button.setToolTip("Evaluate the selected run's model on fresh tasks in the main views")
        self.rename_button.setEnabled(one is not None)
        self.delete_button.setEnabled(bool(sel))

    def _say(self, text: str, warn: bool = False) -> None:
        self.message.setProperty("warn", warn)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setText(text)
        self.message.setToolTip(text if len(text) > 80 else "")

    # -- curves ---------------------------------------------------------------------------------------
    def _files_key(self, path: Path) -> tuple:
        return tuple(self._stat(path / f) for f in (core_runs.CONFIG, core_runs.STATUS, core_runs.METRICS,
                                                     core_runs.EVAL))

    def curves(self, info: RunInfo) -> Curves:
        """A run's curves, cached until its files change; :class:`RunError` when they cannot be read."""
        key = _path_key(info.path)
        files = self._files_key(info.path)
        hit = self._cache.get(key)
        if hit is None or hit[0] != files:
            try:
                hit = (files, load_curves(info))
            except RunError as e:
                hit = (files, e)
            except Exception as e:  # noqa: BLE001 - a file changing under the reader, a foreign file: never a crash
                hit = (files, RunError(f"{info.name}: cannot read its curves ({type(e).__name__}: {e})"))
            self._cache[key] = hit
        if isinstance(hit[1], RunError):
            raise hit[1]
        return hit[1]

    def _update_plots(self, force: bool = False) -> None:
        selected = self.selected_runs() if self._loaded else []
        state = (tuple((_path_key(r.path), r.error or self._files_key(r.path)) for r in selected),
                 self.group_check.isChecked(), self.ema_spin.value())
        if not force and state == self._plotted:
            self._say_selection(selected)
            return
        self._plotted = state
        notes, loaded = [], []
        for r in selected:
            if r.error is not None:
                notes.append(f"{r.name} is unreadable: {r.error}")
                continue
            try:
                loaded.append((r, self.curves(r)))
            except RunError as e:
                notes.append(str(e))
        if loaded:
            kinds = [_kind(r, c) for r, c in loaded]
            first = kinds[0]
            left_out = [r.name for (r, _), k in zip(loaded, kinds) if k != first]
            if left_out:
                other = "return" if first == "loss" else "loss"
                notes.append(f"the selection mixes metrics ({first} and {other}): showing only the {first} runs; "
                             f"left out: {', '.join(left_out)}")
            loaded = [rc for rc, k in zip(loaded, kinds) if k == first]
            if first != self._metric_kind:
                self._metric_kind = first
                self.log_check.blockSignals(True)
                self.log_check.setChecked(first == "loss")
                self.log_check.blockSignals(False)
        self.series = self._make_series(loaded)
        self._notes = notes
        self._draw()
        self._say_selection(selected)

    def _say_selection(self, selected: list[RunInfo]) -> None:
        if not selected:
            self._say(*self._folder_state)
        elif self._notes:
            self._say("; ".join(self._notes), warn=True)
        else:
            groups = sum(s.grouped for s in self.series)
            text = f"{len(selected)} selected"
            if groups:
                text += f", {groups} group{'s' if groups > 1 else ''} of seeds (mean and band)"
            self._say(text)

    def _make_series(self, loaded: list[tuple[RunInfo, Curves]]) -> list[DrawnSeries]:
        buckets: dict[str, list] = {}
        for r, c in loaded:
            key = r.group_key if self.group_check.isChecked() else _path_key(r.path)
            buckets.setdefault(key, []).append((r, c))
        bucket_list = list(buckets.values())
        for b in bucket_list:
            b.sort(key=lambda rc: (rc[0].seed is None, rc[0].seed or 0, rc[0].name))
        labels = self._labels(bucket_list)
        weight = self.ema_spin.value()
        out = []
        for i, (bucket, label) in enumerate(zip(bucket_list, labels)):
            infos = [r for r, _ in bucket]
            curves = [c for _, c in bucket]
            # a seed that has not logged anything yet would empty the group's common x: it waits
            trained = [c for c in curves if len(c.iterations)] or curves
            smoothed = [dataclasses.replace(c, train=ema_tensorboard(c.train, weight)) for c in trained]
            evaluated = [c for c in curves if len(c.eval_iterations)] or curves
            out.append(DrawnSeries(label, infos, _color(i), aggregate(trained, "train"), aggregate(smoothed, "train"),
                                   aggregate(evaluated, "adaptation")))
        return out

    @staticmethod
    def _labels(buckets: list[list]) -> list[str]:
        base = []
        for b in buckets:
            r = b[0][0]
            base.append(r.name if len(b) == 1 else (r.preset or f"{r.algorithm}-{r.family}"))
        grouped = [i for i, b in enumerate(buckets) if len(b) > 1]
        by_name: dict[str, list[int]] = {}
        for i in grouped:
            by_name.setdefault(base[i], []).append(i)
        for name, idxs in by_name.items():
            if len(idxs) < 2:
                continue
            diffs = _differences([buckets[i][0][0].config for i in idxs])
            for i, d in zip(idxs, diffs):
                base[i] = f"{name} {d}" if d else f"{name} [{buckets[i][0][0].name}…]"
        def count(b) -> str:  # reruns of one seed are not seeds: say so rather than count them as such
            seeds = {rc[0].seed for rc in b}
            return f"n={len(b)} seeds" if len(seeds) == len(b) else f"n={len(b)} runs, {len(seeds)} seeds"

        return [f"{base[i]} ({count(b)})" if len(b) > 1 else base[i] for i, b in enumerate(buckets)]

    # -- drawing ---------------------------------------------------------------------------------------
    def _draw(self) -> None:
        log = self.log_check.isChecked()
        band_kind = self.band_combo.currentText()
        mp, ap = self.meta_plot.getPlotItem(), self.adaptation_plot.getPlotItem()
        for p in (mp, ap):
            p.clear()
            p.setLogMode(y=log)
        self.meta_items, self.adaptation_items = {}, {}
        first = self.series[0] if self.series else None
        train_name = "loss"
        eval_name = "loss"
        if first is not None:
            r = first.runs[0]
            c = self._cache.get(_path_key(r.path))
            if c is not None and isinstance(c[1], Curves) and c[1].train_metric:
                train_name = c[1].train_metric
            eval_name = r.metric or ("return" if self._metric_kind == "return" else "loss")
        mp.setLabel("left", f"training {train_name}" + (" (smoothed)" if self.ema_spin.value() > 0 else ""))
        ap.setLabel("left", f"held-out {eval_name}")
        floor = self._log_floor() if log else None
        smoothing = self.ema_spin.value() > 0
        steps = set()
        drawn: dict = {mp: [], ap: []}  # (x, y) of everything drawn, for the view range
        for s in self.series:
            if smoothing and len(s.train.x):  # the unsmoothed mean, faint, as TensorBoard shows it
                faint = QColor(s.color)
                faint.setAlpha(60)
                x = s.train.x.astype(np.float64)
                mp.plot(x, s.train.mean, pen=pg.mkPen(faint, width=1), connect="finite")
                drawn[mp].append((x, s.train.mean))
            self.meta_items[s.label] = self._add_series(mp, s, s.smoothed, band_kind, floor, False, drawn[mp])
            self.adaptation_items[s.label] = self._add_series(ap, s, s.adaptation, band_kind, floor, True, drawn[ap])
            steps.update(int(v) for v in s.adaptation.x)
        axis = ap.getAxis("bottom")
        axis.setTicks([[(float(v), str(v)) for v in sorted(steps)]] if 0 < len(steps) <= 25 else None)
        for p in (mp, ap):
            self._fit(p, drawn[p], log)

    def _fit(self, p, drawn: list, log: bool) -> None:
        """Fit the view to what is drawn, with room at the top for the legend (it sits over the curves)."""
        x = np.concatenate([a for a, _ in drawn]) if drawn else np.zeros(0)
        y = np.concatenate([b for _, b in drawn]) if drawn else np.zeros(0)
        if log:
            y = y[y > 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        if not len(x) or not len(y):
            p.enableAutoRange()
            return
        x0, x1 = float(x.min()), float(x.max())
        y0, y1 = float(y.min()), float(y.max())
        if x1 - x0 < 1e-12:
            x0, x1 = x0 - 0.5, x1 + 0.5
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - (0.5 if log else max(abs(y0) * 0.1, 0.5)), y1 + (0.5 if log else max(abs(y1) * 0.1, 0.5))
        rows = len(self.series)
        y1 += (y1 - y0) * min(0.5, 0.08 * rows + 0.04)
        p.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)

    def _log_floor(self) -> float:
        """The smallest positive value drawn: a band reaching zero or below is cut there on a log axis."""
        vals = [a.mean for s in self.series for a in (s.smoothed, s.adaptation)]
        vals = np.concatenate(vals) if vals else np.zeros(0)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        return float(vals.min()) / 10 if len(vals) else 1e-6

    def _add_series(self, p, s: DrawnSeries, agg: Aggregate, band_kind: str, floor: float | None, symbols: bool,
                    drawn: list):
        x = agg.x.astype(np.float64)
        fill = None
        band = s.band(agg, band_kind)
        if band is not None and len(x):
            lo, hi = band
            if floor is not None:  # a CI reaching zero or below: drawn down to the lowest run's value instead
                lowest = np.where(np.isfinite(agg.min) & (agg.min > 0), agg.min, floor)
                lo = np.where(np.isfinite(lo) & (lo > 0), lo, np.minimum(lowest, agg.mean))
            lower = pg.PlotDataItem(x, lo, pen=pg.mkPen(None), connect="finite")
            upper = pg.PlotDataItem(x, hi, pen=pg.mkPen(None), connect="finite")
            p.addItem(lower)  # first: the plot puts them on its log axis, the fill takes their drawn paths
            p.addItem(upper)
            color = QColor(s.color)
            color.setAlpha(60)
            fill = pg.FillBetweenItem(lower, upper, brush=pg.mkBrush(color))
            p.addItem(fill)
            drawn += [(x, lo), (x, hi)]
        extra = dict(symbol="o", symbolSize=6, symbolBrush=s.color, symbolPen=None) if symbols else {}
        line = p.plot(x, agg.mean, pen=pg.mkPen(s.color, width=2), name=s.label, connect="finite", **extra)
        drawn.append((x, agg.mean))
        return line, fill

    # -- export ---------------------------------------------------------------------------------------
    def meta_loss_csv(self) -> str:
        """The meta-loss plot's data: per series and iteration, n, the mean and band as logged and as drawn
        (smoothed); the band is empty for a single run."""
        band_kind = self.band_combo.currentText()
        band_name = "min-max" if band_kind == BANDS[1] else "ci95"
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["series", "metric", "band", "ema_weight", "iteration", "n", "mean", "low", "high",
                    "mean_smoothed", "low_smoothed", "high_smoothed"])
        weight = self.ema_spin.value()
        for s in self.series:
            raw_band, sm_band = s.band(s.train, band_kind), s.band(s.smoothed, band_kind)
            metric = self._train_metric_of(s)
            for k, x in enumerate(s.train.x):
                j = int(np.searchsorted(s.smoothed.x, x))
                lo, hi = ((_fmt(raw_band[0][k]), _fmt(raw_band[1][k])) if raw_band else ("", ""))
                slo, shi = ((_fmt(sm_band[0][j]), _fmt(sm_band[1][j])) if sm_band else ("", ""))
                w.writerow([s.label, metric, band_name if raw_band else "", repr(weight), int(x), int(s.train.n[k]),
                            _fmt(s.train.mean[k]), lo, hi, _fmt(s.smoothed.mean[j]), slo, shi])
        return buf.getvalue()

    def adaptation_csv(self) -> str:
        """The adaptation plot's data: per series and inner step, n, the mean and its band."""
        band_kind = self.band_combo.currentText()
        band_name = "min-max" if band_kind == BANDS[1] else "ci95"
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["series", "metric", "band", "inner_step", "n", "mean", "low", "high"])
        for s in self.series:
            a = s.adaptation
            band = s.band(a, band_kind)
            metric = s.runs[0].metric
            for k, x in enumerate(a.x):
                lo, hi = (_fmt(band[0][k]), _fmt(band[1][k])) if band else ("", "")
                w.writerow([s.label, metric, band_name if band else "", int(x), int(a.n[k]), _fmt(a.mean[k]), lo, hi])
        return buf.getvalue()

    def _train_metric_of(self, s: DrawnSeries) -> str:
        hit = self._cache.get(_path_key(s.runs[0].path))
        return hit[1].train_metric if hit is not None and isinstance(hit[1], Curves) else ""

    def export(self, folder, png: bool = True, csv: bool = True) -> list[Path]:
        """Both plots as PNG and their data as CSV into ``folder``; returns the files written."""
        self._ensure_loaded()
        folder = Path(folder)
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, widget, text in (("runs_meta_loss", self.meta_plot, self.meta_loss_csv),
                                       ("runs_adaptation", self.adaptation_plot, self.adaptation_csv)):
                if png:
                    export_plot_item(widget.getPlotItem(), folder / f"{name}.png", None)
                    written.append(folder / f"{name}.png")
                if csv:
                    atomic_write_text(folder / f"{name}.csv", text())
                    written.append(folder / f"{name}.csv")
        except OSError as e:
            self._say(f"cannot export to {folder}: {e.strerror or e}", warn=True)
            return written
        self._say(f"exported {len(written)} files to {folder}")
        return written

    def _export_dialog(self, png: bool, csv: bool) -> None:
        what = "PNG" if png else "CSV"
        folder = QFileDialog.getExistingDirectory(self, f"Export the runs plots ({what}) to folder", str(Path.home()))
        if folder:
            self.export(folder, png=png, csv=csv)

    # -- open, rename, delete -------------------------------------------------------------------------
    def open_model(self) -> bool:
        """Ask the main window to open the selected run's model bundle (exactly one readable run)."""
        self._update_buttons()
        if self._bundle is None:
            if len(self.selected_runs()) == 1:
                self._say(self.open_button.toolTip(), warn=True)
            return False
        self.openModelRequested.emit(str(self._bundle))
        return True

    def _rename_dialog(self) -> None:
        sel = self.selected_runs()
        if len(sel) != 1:
            return
        info = sel[0]
        text, ok = QInputDialog.getText(self, "Rename run", f"New name for {info.name}:", QLineEdit.EchoMode.Normal,
                                        info.path.name)
        if ok:
            self.rename(info, text)

    def rename(self, info: RunInfo, new_name: str) -> RunInfo | None:
        """Rename a run's folder; a refusal (bad name, taken, still running, not a run) goes to the message."""
        try:
            check_run_name(new_name)
            renamed = rename_run(info, new_name)
        except RunError as e:
            self._say(str(e), warn=True)
            return None
        except OSError as e:
            self._say(f"{info.name}: not renamed: {e.strerror or e}", warn=True)
            return None
        self._cache.pop(_path_key(info.path), None)
        self.refresh()
        self.select_runs([renamed.path])
        self._say(f"renamed {info.name} to {renamed.name}")
        return renamed

    def _delete_dialog(self) -> None:
        sel = self.selected_runs()
        if not sel:
            return
        self.delete(sel)

    def delete(self, runs: list[RunInfo]) -> list[RunInfo]:
        """Delete runs after a confirmation that lists them; nothing is deleted unless it is answered Yes.
        Runs still running are refused.  Returns the runs deleted."""
        # a run whose process is alive here is refused; one whose process cannot be checked (written on another
        # machine, or before runs kept their pid) is deleted only when the confirmation names it as such
        busy = [r for r in runs if still_running(r) and r.process_alive is not False and r.process_alive is not None]
        todo = [r for r in runs if r not in busy]
        unknown = [r for r in todo if still_running(r)]
        notes = [f"{r.name}: not deleted: it is still running; stop it first" for r in busy]
        if not todo:
            self._say("; ".join(notes), warn=True)
            return []
        names = "\n".join(f"  {r.name}" + (" (unreadable)" if r.error else "") + (
            " (says running; its process cannot be checked from here)" if r in unknown else "")
            for r in todo[:MAX_LISTED])
        if len(todo) > MAX_LISTED:
            names += f"\n  … and {len(todo) - MAX_LISTED} more"
        skipped = f"\n\nNot deleted (still running): {', '.join(r.name for r in busy)}" if busy else ""
        text = (f"Delete {len(todo)} run{'s' if len(todo) > 1 else ''} and the files the workbench wrote for "
                f"{'them' if len(todo) > 1 else 'it'} from {self.runs_dir}?\n\n{names}{skipped}\n\n"
                f"Files you added to a run's folder are kept, with the folder.  This cannot be undone.")
        answer = QMessageBox.question(self, "Delete runs", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self._say("nothing deleted")
            return []
        deleted = []
        for r in todo:
            try:
                kept = delete_run(r, force=r in unknown, root=self.runs_dir)
            except RunError as e:
                notes.append(str(e))
            except OSError as e:
                notes.append(f"{r.name}: not deleted: {e.strerror or e}")
            else:
                deleted.append(r)
                self._cache.pop(_path_key(r.path), None)
                if kept:  # files the workbench did not write: left where they were, with their folder
                    shown = ", ".join(p.name for p in kept[:3])
                    shown += f" and {len(kept) - 3} more" if len(kept) > 3 else ""
                    notes.append(f"{r.name}: its folder was kept for {len(kept)} file{'s' if len(kept) > 1 else ''} "
                                 f"the workbench did not write ({shown})")
        self.refresh()
        done = f"deleted {len(deleted)} run{'s' if len(deleted) != 1 else ''}"
        self._say("; ".join([done, *notes]), warn=bool(notes))
        return deleted
