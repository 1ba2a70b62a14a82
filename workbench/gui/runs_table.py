"""The runs table: one row per run of the folder, sortable, its columns fitted to the width it has.

Rows come from :func:`workbench.services.run_series.row_texts` and sort by
:func:`~workbench.services.run_series.sort_keys`.  Column widths follow the table's width
(:func:`fit_widths`): every column gets at least its header's width, the long ones (name, final value,
preset, sweep) give up room first and elide their cells with "…" (the full text is in the tooltip), so
no column is cut off at the right edge.  A column the user drags keeps the width it was given.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

from workbench.services.run_series import (COL_DATE, COL_FINAL, COL_ITERATIONS, COL_NAME, COL_PRESET, COL_SEED,
                                           COL_STATUS, COL_SWEEP, COLUMNS, path_key, row_texts, run_tooltip,
                                           sort_keys, status_text)
from workbench.services.runs import RunInfo

GREY = "#7d808a"
STATUS_COLORS = {"running": "#4e9af1", "finished": "#59a14f", "stopped": "#edc948", "stopped early": "#b07aa1",
                 "failed": "#e15759",
                 "interrupted": "#f28e2b", "unreadable": GREY}
# the most a column asks for before the table is short of room (px), and the columns that give up room first
CAPS = {COL_NAME: 360, COL_PRESET: 220, COL_FINAL: 260, COL_SWEEP: 160}
ELASTIC = (COL_NAME, COL_FINAL, COL_PRESET, COL_SWEEP)
MIN_NAME = 110  # px: a name column narrower than this says little


def fit_widths(desired: list[int], minimum: list[int], available: int, elastic=ELASTIC) -> list[int]:
    """Column widths that fit ``available`` pixels: the ``desired`` widths when they fit, else the
    ``elastic`` columns shrunk in proportion to their room above ``minimum`` (never below it).  When even
    the minimums do not fit, the minimums (the table scrolls)."""
    widths = [max(d, m) for d, m in zip(desired, minimum)]
    over = sum(widths) - available
    if over <= 0:
        return widths
    slack = {c: widths[c] - minimum[c] for c in elastic if widths[c] > minimum[c]}
    total = sum(slack.values())
    if total <= 0:
        return widths
    take = min(over, total)
    for c, s in slack.items():
        widths[c] -= int(round(take * s / total))
    extra = sum(widths) - available  # rounding: the first elastic column with room pays the rest
    for c in slack:
        if extra <= 0:
            break
        give = min(extra, widths[c] - minimum[c])
        widths[c] -= give
        extra -= give
    return widths


class RunItem(QTreeWidgetItem):
    """A row of the runs table; sorts by typed keys (numbers as numbers, missing values last)."""

    def __init__(self, info: RunInfo):
        super().__init__()
        self.keys: tuple = ()
        self.set_info(info)

    def set_info(self, info: RunInfo) -> None:
        self.info = info
        bad = info.error is not None
        self.keys = sort_keys(info)
        tip = run_tooltip(info)
        grey = QBrush(QColor(GREY))
        for c, t in enumerate(row_texts(info)):
            if self.text(c) != t:
                self.setText(c, t)
            self.setToolTip(c, tip)
            if bad:
                self.setForeground(c, grey)
            else:
                self.setData(c, Qt.ItemDataRole.ForegroundRole, None)
        self.setForeground(COL_STATUS, QBrush(QColor(STATUS_COLORS.get(status_text(info), "#dcdde1"))))
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
            return self.keys[col] < other.keys[col]  # the date's key is minus the time: ascending is newest first
        except (AttributeError, IndexError, TypeError):
            return super().__lt__(other)


class RunsTable(QTreeWidget):
    """Every run of a folder, newest first; extended selection of whole rows.  The panel's main element:
    it takes the room it is given, and its columns fit that room (see the module docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("runsTable")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setSortingEnabled(True)
        self.sortByColumn(COL_DATE, Qt.SortOrder.AscendingOrder)  # newest first (see RunItem)
        header = self.header()
        header.setStretchLastSection(False)  # fit_columns gives the last column what is left
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setMinimumSectionSize(36)
        header.sectionResized.connect(self._on_section_resized)
        self._items: dict[str, RunItem] = {}  # path key -> row
        self._fitting = False
        self._user_sized: set[int] = set()  # columns the user dragged: their width is kept

    # -- rows ------------------------------------------------------------------------------------------
    def set_runs(self, listed: list[RunInfo]) -> None:
        """Show exactly these runs: rows are updated in place, so the selection of runs still listed stays
        (no selection signal is emitted)."""
        keys = set()
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)
        self.blockSignals(True)
        try:
            for info in listed:
                key = path_key(info.path)
                keys.add(key)
                item = self._items.get(key)
                if item is None:
                    item = self._items[key] = RunItem(info)
                    self.addTopLevelItem(item)
                else:
                    item.set_info(info)
            for key in [k for k in self._items if k not in keys]:
                self.takeTopLevelItem(self.indexOfTopLevelItem(self._items.pop(key)))
        finally:
            self.blockSignals(False)
            self.setSortingEnabled(sorting)
        self.fit_columns()

    def clear_runs(self) -> None:
        self.blockSignals(True)
        self.clear()
        self.blockSignals(False)
        self._items.clear()

    def infos(self) -> list[RunInfo]:
        """Every listed run, in the table's order."""
        return [self.topLevelItem(i).info for i in range(self.topLevelItemCount())]

    def selected_infos(self) -> list[RunInfo]:
        """The selected rows' runs in the table's order."""
        items = self.selectedItems()
        items.sort(key=self.indexOfTopLevelItem)
        return [it.info for it in items]

    def select_paths(self, paths) -> None:
        """Select exactly the runs at these paths, scrolled into view (no selection signal is emitted)."""
        want = {path_key(p) for p in paths}
        first = None
        self.blockSignals(True)
        try:
            self.clearSelection()
            for i in range(self.topLevelItemCount()):
                item = self.topLevelItem(i)
                if path_key(item.info.path) in want:
                    item.setSelected(True)
                    first = first or item
        finally:
            self.blockSignals(False)
        if first is not None:
            self.scrollToItem(first)

    # -- columns ---------------------------------------------------------------------------------------
    def fit_columns(self) -> None:
        """Fit the columns to the viewport's width; the last one takes what is left."""
        header = self.header()
        n = len(COLUMNS)
        pad = 12
        desired = [max(header.sectionSizeHint(c), self.sizeHintForColumn(c) + pad) for c in range(n)]
        desired = [min(d, CAPS[c]) if c in CAPS else d for c, d in enumerate(desired)]
        minimum = [header.sectionSizeHint(c) for c in range(n)]
        minimum[COL_NAME] = max(minimum[COL_NAME], min(MIN_NAME, desired[COL_NAME]))
        for c in self._user_sized:
            desired[c] = minimum[c] = header.sectionSize(c)
        available = max(1, self.viewport().width())
        widths = fit_widths(desired, minimum, available)
        widths[-1] += max(0, available - sum(widths))  # the last column takes what is left
        self._fitting = True
        try:
            for c, w in enumerate(widths):
                if header.sectionSize(c) != w:
                    header.resizeSection(c, w)
        finally:
            self._fitting = False

    def _on_section_resized(self, index: int, old: int, new: int) -> None:
        if not self._fitting and index < len(COLUMNS) - 1 and self.isVisible():
            self._user_sized.add(index)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.fit_columns()
