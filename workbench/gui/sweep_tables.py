"""The Sweep dialog's tables: each trial's live progress, and the comparison grouped over seeds."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QProgressBar, QTableWidget, QTableWidgetItem

from workbench.services import sweep
from workbench.services.sweep import format_value

from .sweep_form import ERROR_COLOR

__all__ = ["TrialsTable", "ResultsTable", "STATUS_COLORS"]

STATUS_COLORS = {"running": "#4e9af1", "retrying": "#e0a040", "finished": "#5cb85c", "stopped": "#e0a040",
                 "stopped early": "#b07aa1", "failed": ERROR_COLOR, "cancelled": "#8a8f9c"}
TRIAL_COLUMNS = ["Trial", "Values", "Seed", "Status", "Progress", "Held-out"]
PROGRESS_COLUMN = TRIAL_COLUMNS.index("Progress")
STATUS_COLUMN = TRIAL_COLUMNS.index("Status")
HELD_OUT_COLUMN = TRIAL_COLUMNS.index("Held-out")
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def item(text: str, tooltip: str = "", align=None) -> QTableWidgetItem:
    """A read-only cell."""
    out = QTableWidgetItem(text)
    out.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tooltip:
        out.setToolTip(tooltip)
    if align is not None:
        out.setTextAlignment(align)
    return out


class TrialsTable(QTableWidget):
    """One row per trial: name, grid values, seed, status (coloured), a progress bar and the newest
    held-out score.  :meth:`show_event` updates a row and touches only what changed."""

    def __init__(self, parent=None):
        super().__init__(0, len(TRIAL_COLUMNS), parent)
        self.setObjectName("sweepTrialsTable")
        self.setHorizontalHeaderLabels(TRIAL_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        head = self.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setSectionResizeMode(TRIAL_COLUMNS.index("Values"), QHeaderView.ResizeMode.Stretch)
        for col, width in (("Trial", 150), ("Seed", 50), ("Status", 100), ("Progress", 190), ("Held-out", 130)):
            self.setColumnWidth(TRIAL_COLUMNS.index(col), width)
        self.setMinimumHeight(100)
        self._bars: list[QProgressBar] = []
        self._status: list[str] = []

    def fill(self, trials: list[sweep.Trial]) -> None:
        """The planned trials, queued."""
        self.setUpdatesEnabled(False)
        self.clearContents()
        self.setRowCount(len(trials))
        self._bars, self._status = [], []
        for row, t in enumerate(trials):
            self._describe(row, t)
            self.setItem(row, STATUS_COLUMN, item("queued"))
            bar = QProgressBar()
            bar.setRange(0, max(1, int(t.config["run"]["iterations"])))
            bar.setValue(0)
            bar.setFormat("%v / %m")
            self.setCellWidget(row, PROGRESS_COLUMN, bar)
            self._bars.append(bar)
            self.setItem(row, HELD_OUT_COLUMN, item("—", align=RIGHT))
            self._status.append("queued")
        self.setUpdatesEnabled(True)

    def _describe(self, row: int, t: sweep.Trial) -> None:
        drawn = bool(t.name)
        values = ", ".join(f"{k.split('.', 1)[1]}={format_value(v)}" for k, v in t.values.items())
        self.setItem(row, 0, item(t.name if drawn else f"{row} (to draw)", t.name))
        self.setItem(row, 1, item((values or "—") if drawn else "drawn by the search when it starts",
                                  ", ".join(f"{k} = {format_value(v)}" for k, v in t.values.items())))
        self.setItem(row, 2, item(str(t.seed) if drawn else "", align=RIGHT))

    def status(self, row: int) -> str:
        return self._status[row]

    def statuses(self) -> list[str]:
        """Every row's status, in row order."""
        return list(self._status)

    def show_event(self, row: int, e: sweep.TrialEvent) -> None:
        """Row ``row`` as of event ``e``."""
        if not 0 <= row < len(self._bars):
            return
        if self.item(row, 0).text() != e.trial.name:  # a trial the search drew: its name, values and seed now
            self._describe(row, e.trial)
        if e.status != self._status[row]:
            self._status[row] = e.status
            cell = self.item(row, STATUS_COLUMN)
            cell.setText(e.status if e.attempt <= 1 else f"{e.status} (try {e.attempt})")
            color = STATUS_COLORS.get(e.status)
            cell.setForeground(QBrush(QColor(color)) if color else QBrush())
            cell.setToolTip(e.message)
        bar = self._bars[row]
        total = max(1, e.total or bar.maximum())
        if bar.maximum() != total:
            bar.setMaximum(total)
        iteration = min(max(0, e.iteration), total)
        if bar.value() != iteration:
            bar.setValue(iteration)
        if e.value is not None:
            text = f"{e.metric or 'metric'} {e.value:.4g}"
            cell = self.item(row, HELD_OUT_COLUMN)
            if cell.text() != text:
                cell.setText(text)
                cell.setToolTip(f"held-out {e.metric or 'metric'} after adaptation, at the latest evaluation")


class ResultsTable(QTableWidget):
    """The sweep's groups (one per grid point, over its seeds): values, seeds, finished, mean ± sd of the
    held-out score after adaptation; the best group in bold."""

    def __init__(self, parent=None):
        super().__init__(0, 0, parent)
        self.setObjectName("sweepResultsTable")
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.horizontalHeader().setStretchLastSection(True)
        self.setMinimumHeight(80)

    def clear_results(self) -> None:
        self.clear()
        self.setRowCount(0)
        self.setColumnCount(0)

    def fill(self, result: sweep.SweepResult) -> None:
        metric = next((g.metric for g in result.groups if g.metric), None) or "metric"
        keys = result.grid_keys
        heads = (keys or ["Config"]) + ["Seeds", "Finished", f"{metric} after (mean ± sd)"]
        self.setColumnCount(len(heads))
        self.setHorizontalHeaderLabels(heads)
        self.setRowCount(len(result.groups))
        higher = any(t.higher_is_better for t in result.trials)
        scored = [g for g in result.groups if g.mean is not None]
        best = (max if higher else min)(scored, key=lambda g: g.mean) if len(scored) > 1 else None
        bold = QFont()
        bold.setBold(True)
        for row, g in enumerate(result.groups):
            cells = [format_value(g.values[k]) for k in keys] if keys else ["as configured"]
            if g.mean is None:
                score = "n/a"
            else:
                score = f"{g.mean:.4g}" + (f" ± {g.std:.2g}" if g.std is not None else "")
            trials = "\n".join(f"seed {t.trial.seed}: {t.status}" + (f" ({t.message})" if t.message else "")
                               for t in g.trials)
            cells += [", ".join(map(str, g.seeds)), f"{g.finished}/{len(g.trials)}", score]
            for col, text in enumerate(cells):
                cell = item(text, trials, RIGHT if col >= len(cells) - 2 else None)
                if g is best:
                    cell.setFont(bold)
                    if col == len(cells) - 1:
                        cell.setText(f"{text}  (best)")
                self.setItem(row, col, cell)
        self.resizeColumnsToContents()
        self.horizontalHeader().setStretchLastSection(True)
