"""The Runs page: every run of a runs folder in a table, the selected runs' curves compared below it.

A page of its own, in parts a newcomer can find:

- :mod:`.runs_table`: :class:`~.runs_table.RunsTable`, every run as a sortable row whose columns fit the
  width they are given (the page's main, stretching element);
- :mod:`.runs_bars`: :class:`~.runs_bars.FolderBar` (which folder, choose another, refresh) and
  :class:`~.runs_bars.ActionBar` (open, rename, delete the selection; the page's message line);
- :mod:`.runs_comparison`: :class:`~.runs_comparison.ComparisonView`, the selected runs' training and
  adaptation curves overlaid (seeds grouped, smoothing, band, log axis, export), its controls in a
  :class:`~.runs_flow.FlowLayout` that wraps on a narrow page;
- :class:`RunsPanel` (here) puts them together: polling, selection, open / rename / delete.

What they show comes from :mod:`workbench.services.run_series` and :mod:`workbench.services.runs`:
nothing is computed here.  A bad directory in the folder is a row that says why it is unreadable, never
an exception.

The listing is read when the panel is first shown (or on :meth:`RunsPanel.refresh`), then every few
seconds while the panel is visible (a GUI-side timer: a few file stats, no thread), and only re-read
when something in the folder changed.  Curves are read on selection and cached per run until its files
change.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QSplitter, QVBoxLayout, QWidget

from workbench.services.run_series import (BANDS, COLUMNS, CurveCache, delete_planned, describe_folder,
                                           files_key, folder_snapshot, make_series, path_key, plan_delete, shorten,
                                           split_by_kind, still_running)
from workbench.services import rundir
from workbench.services.runs import Curves, RunError, RunInfo, check_run_name, rename_run, run_bundle, scan_runs

from .runs_bars import OPEN_TIP, ActionBar, FolderBar
from .runs_comparison import ComparisonView, series_color
from .runs_table import RunsTable

__all__ = ["RunsPanel", "COLUMNS", "BANDS"]
POLL_MS = 3000  # auto-refresh while visible
PANEL_STYLE = """
QTreeWidget#runsTable { background: #1e1f24; alternate-background-color: #23242a; border: 1px solid #3a3d46; }
QTreeWidget#runsTable::item { padding: 2px 4px; }
QTreeWidget#runsTable::item:selected { background: #3a5f9a; }
QHeaderView::section { background: #2e3037; color: #dcdde1; border: none; border-right: 1px solid #3a3d46;
    padding: 3px 6px; }
QLabel#runsMessage[warn="true"] { color: #f0b35a; }
"""


class RunsPanel(QWidget):
    """The runs of a folder: list, compare (seeds grouped), export, open, rename, delete."""

    openModelRequested = Signal(str)  # the path of a run's model bundle
    runsDirChanged = Signal(str)  # the user chose another runs folder (the "Folder…" button)

    def __init__(self, runs_dir, parent=None):
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.setStyleSheet(PANEL_STYLE)
        self.runs_dir = Path(runs_dir)
        self._cache = CurveCache()
        self._snapshot = None
        self._loaded = False
        self._plotted = None  # what the plots show: (selection, its files, settings)
        self._notes: list[str] = []
        self._folder_state = ("", False)
        self._bundle: Path | None = None
        self._split_sized = False
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    def _build(self) -> None:
        self.folder_bar = FolderBar(str(self.runs_dir))
        self.table = RunsTable()
        self.actions = ActionBar()
        self.comparison = ComparisonView()
        self.folder_label = self.folder_bar.folder_label
        for name in ("folder_button", "refresh_button"):
            setattr(self, name, getattr(self.folder_bar, name))
        for name in ("open_button", "rename_button", "delete_button", "message"):
            setattr(self, name, getattr(self.actions, name))
        for name in ("group_check", "band_combo", "ema_spin", "log_check", "export_png_button", "export_csv_button",
                     "meta_plot", "adaptation_plot"):
            setattr(self, name, getattr(self.comparison, name))
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(self.folder_bar)
        ul.addWidget(self.table, 1)
        ul.addWidget(self.actions)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("runsSplitter")
        self.splitter.addWidget(upper)
        self.splitter.addWidget(self.comparison)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.splitter)

        self.folder_button.clicked.connect(self._choose_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda *_: self.open_model())
        self.open_button.clicked.connect(self.open_model)
        self.rename_button.clicked.connect(self._rename_dialog)
        self.delete_button.clicked.connect(lambda: self.delete(self.selected_runs()) if self.selected_runs() else None)
        self.comparison.seriesChanged.connect(lambda: self._update_plots(force=True))
        self.comparison.exportRequested.connect(self._export_dialog)
        self._update_buttons()

    # what the plots show (kept on the panel for its callers)
    series = property(lambda self: self.comparison.series)
    meta_items = property(lambda self: self.comparison.meta_items)
    adaptation_items = property(lambda self: self.comparison.adaptation_items)

    # -- visibility and polling ----------------------------------------------------------------------
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

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._split_sized and self.splitter.height() > 0:  # once: half the page to the table
            self._split_sized = True
            h = self.splitter.height()
            self.splitter.setSizes([h - h // 2, h // 2])

    def shutdown(self) -> None:
        """Stop re-reading the folder (the main window calls it on close); the panel has no thread to join."""
        self._timer.stop()

    def invalidate(self) -> None:
        """The folder changed (a run ended): read it now if the panel is on show, else when it is next shown
        or asked (reading every run's files at the end of a run stalled the window)."""
        if self.isVisible():
            self.refresh()
        else:
            self._loaded = False

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.refresh()

    def poll(self) -> bool:
        """Re-read the folder if anything in it changed since the last look; returns whether it did."""
        if not self._loaded:
            self.refresh()
            return True
        if folder_snapshot(self.runs_dir, self.table.infos()) == self._snapshot:
            return False
        self.refresh()
        return True

    # -- the folder ----------------------------------------------------------------------------------
    def set_runs_dir(self, path) -> None:
        """List another folder (does not emit runsDirChanged: that is for the user's choice)."""
        self.runs_dir = Path(path)
        self.folder_bar.set_folder(str(self.runs_dir))
        self._cache.clear()
        self.table.clear_runs()
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
        return self.table.infos()

    def refresh(self) -> None:
        """Read the runs folder again, keeping the selection (runs that are gone drop out of it)."""
        self._loaded = True
        listed = scan_runs(self.runs_dir)
        self.table.set_runs(listed)
        self._cache.keep_only({path_key(r.path) for r in listed})
        self._snapshot = folder_snapshot(self.runs_dir, self.table.infos())
        self._folder_state = describe_folder(self.runs_dir, listed)
        self._on_selection()

    # -- selection ----------------------------------------------------------------------------------
    def selected_runs(self) -> list[RunInfo]:
        """The selected rows' runs in the table's order, unreadable ones included."""
        self._ensure_loaded()
        return self.table.selected_infos()

    def select_runs(self, paths) -> None:
        """Select exactly these runs (paths of run folders) and draw them."""
        self._ensure_loaded()
        self.table.select_paths(paths)
        self._on_selection()

    def show_sweep(self, sweep_id: str) -> None:
        """Select every run of a sweep, seeds grouped."""
        self.refresh()
        paths = [r.path for r in self.runs() if r.sweep_id == sweep_id]
        self.comparison.set_grouped(True)
        self.select_runs(paths)
        if not paths:
            self._say(f"no runs of sweep {sweep_id} in {self.runs_dir}", warn=True)

    def _on_selection(self) -> None:
        self._update_buttons()
        self._update_plots()

    def _update_buttons(self) -> None:
        sel = self.selected_runs() if self._loaded else []
        one = sel[0] if len(sel) == 1 else None
        self._bundle = run_bundle(one) if one is not None and one.error is None and not still_running(one) else None
        self.open_button.setEnabled(self._bundle is not None)
        if one is not None and self._bundle is None:
            why = ("it is still running" if still_running(one) else "it is unreadable" if one.error
                   else f"it has no model bundle ({rundir.BUNDLE})")
            self.open_button.setToolTip(f"Cannot open {shorten(one.name)}'s model: {why}")
        else:
            self.open_button.setToolTip(OPEN_TIP)
        self.rename_button.setEnabled(one is not None)
        self.delete_button.setEnabled(bool(sel))

    def _say(self, text: str, warn: bool = False) -> None:
        self.actions.say(text, warn)

    # -- curves ---------------------------------------------------------------------------------------
    def curves(self, info: RunInfo) -> Curves:
        """A run's curves, cached until its files change; :class:`RunError` when they cannot be read."""
        return self._cache.get(info)

    def _update_plots(self, force: bool = False) -> None:
        selected = self.selected_runs() if self._loaded else []
        view = self.comparison
        state = (tuple((path_key(r.path), r.error or files_key(r.path)) for r in selected), view.grouped, view.weight)
        if force or state != self._plotted:
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
            loaded, kind, note = split_by_kind(loaded)
            self._notes = notes + ([note] if note else [])
            view.show_series(make_series(loaded, view.grouped, view.weight, series_color), kind)
        if not selected:
            self._say(*self._folder_state)
        elif self._notes:
            self._say("; ".join(self._notes), warn=True)
        else:
            groups = sum(s.grouped for s in self.series)
            more = f", {groups} group{'s' if groups > 1 else ''} of seeds (mean and band)" if groups else ""
            self._say(f"{len(selected)} selected{more}")

    # -- export ---------------------------------------------------------------------------------------
    def meta_loss_csv(self) -> str:
        """The meta-loss plot's data (see :func:`workbench.services.run_series.meta_loss_csv`)."""
        return self.comparison.meta_loss_csv()

    def adaptation_csv(self) -> str:
        """The adaptation plot's data (see :func:`workbench.services.run_series.adaptation_csv`)."""
        return self.comparison.adaptation_csv()

    def export(self, folder, png: bool = True, csv: bool = True) -> list[Path]:
        """Both plots as PNG and their data as CSV into ``folder``; returns the files written."""
        self._ensure_loaded()
        folder, written = Path(folder), []
        try:
            for path in self.comparison.export_files(folder, png, csv):
                written.append(path)
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
        if len(sel) == 1:
            text, ok = QInputDialog.getText(self, "Rename run", f"New name for {shorten(sel[0].name)}:",
                                            QLineEdit.EchoMode.Normal, sel[0].path.name)
            if ok:
                self.rename(sel[0], text)

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
        self._cache.forget(info.path)
        self.refresh()
        self.select_runs([renamed.path])
        self._say(f"renamed {info.name} to {renamed.name}")
        return renamed

    def delete(self, runs: list[RunInfo]) -> list[RunInfo]:
        """Delete runs after a confirmation that lists them; nothing is deleted unless it is answered Yes.
        Runs still running are refused.  Returns the runs deleted."""
        plan = plan_delete(runs)
        if not plan.todo:
            self._say("; ".join(plan.refusals), warn=True)
            return []
        answer = QMessageBox.question(self, "Delete runs", plan.question(self.runs_dir),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self._say("nothing deleted")
            return []
        deleted, notes = delete_planned(plan, self.runs_dir)
        for r in deleted:
            self._cache.forget(r.path)
        self.refresh()
        done = f"deleted {len(deleted)} run{'s' if len(deleted) != 1 else ''}"
        self._say("; ".join([done, *notes]), warn=bool(notes))
        return deleted
