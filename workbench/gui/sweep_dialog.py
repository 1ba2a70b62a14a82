"""Run → Sweep…: seeds × grid values of the current experiment on Ray, per-trial progress live, then the
grouped comparison.

The sweep runs :func:`workbench.services.sweep.run_sweep` on a plain thread (it blocks, waiting on Ray) that
never touches a widget.  Its callback keeps the latest event of each trial in a small lock-protected dict
(a trial's newer event replaces a waiting one, so the buffer holds at most one event per trial); a QTimer
at ~30 Hz moves them into the trials table.  The end of the sweep is noticed by the same timer.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar,
                               QPushButton, QSizePolicy, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from workbench.services import sweep
from workbench.core.config import ExperimentConfig, RunConfig, fields_of
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.services.sweep import format_value

from .main_window import fmt_time

DRAIN_MS = 33  # ~30 Hz
MAX_SEEDS = 1000
ERROR_COLOR = "#ff5c5c"
STATUS_COLORS = {"running": "#4e9af1", "retrying": "#e0a040", "finished": "#5cb85c", "stopped": "#e0a040",
                 "failed": ERROR_COLOR, "cancelled": "#8a8f9c"}
TRIAL_COLUMNS = ["Trial", "Values", "Seed", "Status", "Progress", "Held-out"]
PROGRESS_COLUMN = TRIAL_COLUMNS.index("Progress")
STATUS_COLUMN = TRIAL_COLUMNS.index("Status")
HELD_OUT_COLUMN = TRIAL_COLUMNS.index("Held-out")
# keys the grid does not offer: identity, and what the dialog has its own input for
NOT_IN_GRID = {"task.family", "algorithm.name", "run.seed", "run.iterations"}


class SweepEvents:
    """The sweep thread's callback: the latest :class:`~workbench.services.sweep.TrialEvent` of each trial.

    Also keeps each trial's status changes (a few entries: queued, running, finished; more only with retries),
    so that a trial that ran and finished between two GUI ticks is still seen to have run.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: dict[int, sweep.TrialEvent] = {}
        self._statuses: dict[int, list[str]] = {}

    def __call__(self, event: sweep.TrialEvent) -> None:  # on the sweep thread
        with self._lock:
            self._latest[event.trial.index] = event
            seen = self._statuses.setdefault(event.trial.index, [])
            if not seen or seen[-1] != event.status:
                seen.append(event.status)

    def drain(self) -> dict[int, sweep.TrialEvent]:
        with self._lock:
            out, self._latest = self._latest, {}
        return out

    def statuses(self, index: int) -> list[str]:
        with self._lock:
            return list(self._statuses.get(index, []))


class SweepJob:
    """One sweep on its own thread; the dialog polls it.  Touches no widget."""

    def __init__(self, trials: list, runs_dir: Path, address: str | None, num_cpus: int | None):
        self.trials, self.runs_dir, self.address, self.num_cpus = trials, runs_dir, address, num_cpus
        self.events = SweepEvents()
        self.stop_event = threading.Event()
        self.force_event = threading.Event()
        self.result: sweep.SweepResult | None = None
        self.error: str | None = None
        self.details = ""
        self.started_at = _dt.datetime.now()
        # Not a daemon: Ray is shut down in run_sweep's own ``finally``, so the app's exit waits for it
        # (the dialog stops the sweep first; see SweepDialog._on_quit).
        self.thread = threading.Thread(target=self._run, name="workbench-sweep")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = sweep.run_sweep(self.trials, self.runs_dir, address=self.address, num_cpus=self.num_cpus,
                                          callback=self.events, stop_event=self.stop_event,
                                          force_event=self.force_event)
        except WorkbenchError as e:  # Ray cannot start, a cluster address unreachable, a trial it cannot place
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown in the dialog, with the traceback as its tooltip
            self.error = f"{type(e).__name__}: {e}"
            self.details = traceback.format_exc()

    def stop(self, force: bool = False) -> None:
        self.stop_event.set()
        if force:
            self.force_event.set()

    def done(self) -> bool:
        return not self.thread.is_alive()


def _literal(value) -> str:
    """A config value as a grid value (a TOML literal; bare words are strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _item(text: str, tooltip: str = "", align=None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tooltip:
        item.setToolTip(tooltip)
    if align is not None:
        item.setTextAlignment(align)
    return item


class SweepDialog(QDialog):
    """Seeds × grid of ``config`` as independent runs on Ray, into ``runs_dir``; non-modal.

    ``num_cpus``: cores of the local Ray this dialog starts (None: all); a cluster address has its own.
    """

    sweepFinished = Signal(str, str)  # sweep_id, runs_dir: the sweep ended (finished, stopped or with failures)
    showRunsRequested = Signal(str)  # sweep_id: "Show in Runs panel"

    def __init__(self, config: ExperimentConfig, runs_dir: str | Path, parent=None, num_cpus: int | None = None):
        super().__init__(parent)
        self.setObjectName("sweepDialog")
        self.setModal(False)
        self.config = config
        self.runs_dir = Path(runs_dir)
        self.num_cpus = num_cpus
        self.trials: list[sweep.Trial] = []
        self.result: sweep.SweepResult | None = None
        self._job: SweepJob | None = None
        self._bars: list[QProgressBar] = []
        self._row_status: list[str] = []
        self._seen: dict[int, list[str]] = {}  # statuses each trial went through, once the sweep ended
        self._close_when_done = False
        self._last_summary = ""
        name = config.meta.name or "untitled"
        self.setWindowTitle(f"Sweep — {name}")
        self.resize(980, 720)

        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self.drain)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_quit)
        self._update_count()
        self._update_controls()

    # -- construction ----------------------------------------------------------------------------
    def _build(self) -> None:
        c = self.config
        lay = QVBoxLayout(self)

        title = QLabel(f"<b>{c.meta.name or 'untitled'}</b>: {c.algorithm_name} on {c.family} — every grid point "
                       f"× every seed is an independent run")
        title.setObjectName("sweepTitle")
        title.setWordWrap(True)
        lay.addWidget(title)

        inputs = QHBoxLayout()
        form_box = QGroupBox("Sweep")
        form = QFormLayout(form_box)
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
        cores = self.num_cpus or os.cpu_count() or 1
        self.address_edit.setPlaceholderText(f"empty: a local Ray here ({cores} cores)")
        self.address_edit.setToolTip("A Ray cluster to run on: host:6379, auto, or ray://host:10001.\n"
                                     "Empty: start a local Ray here for the sweep and shut it down after.")
        self.address_edit.setMinimumWidth(260)
        form.addRow("Ray address", self.address_edit)
        runs = QLabel(str(self.runs_dir))
        runs.setObjectName("sweepRunsDirLabel")
        runs.setWordWrap(True)
        runs.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Runs folder", runs)
        inputs.addWidget(form_box, 2)

        grid_box = QGroupBox("Grid (one key per line: section.key=v1,v2,...)")
        grid_lay = QVBoxLayout(grid_box)
        self.grid_edit = QPlainTextEdit()
        self.grid_edit.setObjectName("sweepGridEdit")
        keys = self._grid_keys()
        example = self._example_line(keys)
        self.grid_edit.setPlaceholderText(f"{example}\n# no lines: only the seeds vary")
        self.grid_edit.setTabChangesFocus(True)
        self.grid_edit.setMinimumHeight(60)
        self.grid_edit.setMaximumHeight(110)
        grid_lay.addWidget(self.grid_edit)
        hint_row = QHBoxLayout()
        shown = [k for k in keys if k.startswith("algorithm.")][:4] + [k for k in keys if k.startswith("model.")][:1]
        self.grid_hint = QLabel("Keys of this config: " + ", ".join(shown) + ", …")
        self.grid_hint.setObjectName("sweepGridHint")
        self.grid_hint.setWordWrap(True)
        self.grid_hint.setToolTip("\n".join(f"{k} = {_literal(v)}" for k, v in keys.items()))
        hint_row.addWidget(self.grid_hint, 1)
        self.key_combo = QComboBox()
        self.key_combo.setObjectName("sweepKeyCombo")
        self.key_combo.addItem("Add a key…")
        for key, value in keys.items():
            self.key_combo.addItem(f"{key} = {_literal(value)}", key)
        self.key_combo.setToolTip("Adds a line with the key and its current value; add the other values after a comma")
        self.key_combo.activated.connect(self._on_key_chosen)
        hint_row.addWidget(self.key_combo)
        grid_lay.addLayout(hint_row)
        inputs.addWidget(grid_box, 3)
        for box in (form_box, grid_box):  # the tables get the height
            box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        lay.addLayout(inputs)

        buttons = QHBoxLayout()
        self.count_label = QLabel("")
        self.count_label.setObjectName("sweepTrialCountLabel")
        buttons.addWidget(self.count_label)
        buttons.addStretch(1)
        self.start_button = QPushButton("Start sweep")
        self.start_button.setObjectName("sweepStartButton")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        buttons.addWidget(self.start_button)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("sweepStopButton")
        self.stop_button.setToolTip("Running trials stop after their current iteration and keep a checkpoint; "
                                    "trials not started yet are cancelled")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        buttons.addWidget(self.stop_button)
        self.show_runs_button = QPushButton("Show in Runs panel")
        self.show_runs_button.setObjectName("sweepShowRunsButton")
        self.show_runs_button.clicked.connect(self._on_show_runs)
        buttons.addWidget(self.show_runs_button)
        self.close_button = QPushButton("Close")
        self.close_button.setObjectName("sweepCloseButton")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.close_button)
        lay.addLayout(buttons)

        self.message = QLabel("")
        self.message.setObjectName("sweepMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setVisible(False)
        lay.addWidget(self.message)
        self.summary = QLabel("")
        self.summary.setObjectName("sweepSummaryLabel")
        lay.addWidget(self.summary)

        split = QSplitter(Qt.Orientation.Vertical)
        self.trials_table = QTableWidget(0, len(TRIAL_COLUMNS))
        self.trials_table.setObjectName("sweepTrialsTable")
        self.trials_table.setHorizontalHeaderLabels(TRIAL_COLUMNS)
        self.trials_table.verticalHeader().setVisible(False)
        self.trials_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        head = self.trials_table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setSectionResizeMode(TRIAL_COLUMNS.index("Values"), QHeaderView.ResizeMode.Stretch)
        for col, width in (("Trial", 150), ("Seed", 50), ("Status", 80), ("Progress", 190), ("Held-out", 130)):
            self.trials_table.setColumnWidth(TRIAL_COLUMNS.index(col), width)
        split.addWidget(self.trials_table)

        results_box = QGroupBox("Comparison (grouped over seeds)")
        results_lay = QVBoxLayout(results_box)
        self.results_table = QTableWidget(0, 0)
        self.results_table.setObjectName("sweepResultsTable")
        self.results_table.verticalHeader().setVisible(False)
        self.results_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.results_table.horizontalHeader().setStretchLastSection(True)
        results_lay.addWidget(self.results_table)
        split.addWidget(results_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay.addWidget(split, 1)

        self.seeds_spin.valueChanged.connect(self._update_count)
        self.grid_edit.textChanged.connect(self._update_count)

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

    @staticmethod
    def _example_line(keys: dict) -> str:
        for key, value in keys.items():  # the first float of the algorithm, e.g. inner_lr: value and twice it
            if key.startswith("algorithm.") and isinstance(value, float) and value > 0:
                return f"{key}={_literal(value)},{_literal(float(f'{2 * value:.6g}'))}"
        return "model.hidden=[40,40],[80,80]"

    # -- inputs ----------------------------------------------------------------------------------
    def grid_lines(self) -> list[str]:
        """The grid editor's items; blank lines and ``#`` comments are skipped."""
        lines = (ln.strip() for ln in self.grid_edit.toPlainText().splitlines())
        return [ln for ln in lines if ln and not ln.startswith("#")]

    def plan(self) -> list[sweep.Trial]:
        """The sweep's trials from the inputs; raises :class:`ConfigError` naming what is wrong."""
        overrides = [f"run.iterations={self.iterations_spin.value()}"]
        return sweep.plan_sweep(self.config, self.seeds_spin.value(), self.grid_lines(), overrides)

    def _update_count(self) -> None:
        seeds = self.seeds_spin.value()
        try:
            grid = sweep.parse_grid(self.grid_lines())  # the syntax only; values are checked at Start
        except ConfigError as e:
            self.count_label.setText("? trials")
            self.count_label.setToolTip(_for_dialog(str(e)))
            return
        points = math.prod(len(v) for _, v in grid)
        n = seeds * points
        detail = f" ({seeds} seed{'s' * (seeds != 1)} × {points} grid point{'s' * (points != 1)})" if grid else ""
        self.count_label.setText(f"{n} trial{'s' * (n != 1)}{detail}")
        self.count_label.setToolTip("")

    def _on_key_chosen(self, index: int) -> None:
        key = self.key_combo.itemData(index)
        self.key_combo.setCurrentIndex(0)
        if not key:
            return
        value = _literal(self._grid_keys()[key])
        text = self.grid_edit.toPlainText()
        if text and not text.endswith("\n"):
            text += "\n"
        self.grid_edit.setPlainText(f"{text}{key}={value},")
        cursor = self.grid_edit.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.grid_edit.setTextCursor(cursor)
        self.grid_edit.setFocus()

    # -- messages --------------------------------------------------------------------------------
    def _set_message(self, text: str, error: bool = False, details: str = "") -> None:
        self.message.setProperty("error", error)
        self.message.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.message.setText(text)
        self.message.setToolTip(details)
        self.message.setVisible(bool(text))

    def message_text(self) -> str:
        return self.message.text()

    def _set_summary(self, text: str) -> None:
        if text != self._last_summary:
            self._last_summary = text
            self.summary.setText(text)

    # -- running ---------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._job is not None

    def start(self) -> bool:
        """Plan the sweep from the inputs and start it; False (with the reason in sweepMessage) if refused."""
        if self._job is not None:
            return False
        try:
            sweep.require_ray()  # "pip install 'workbench[cluster]'" when Ray is missing
            trials = self.plan()  # an unknown key or a bad value: refused here, before Ray starts
            if self.runs_dir.exists() and not self.runs_dir.is_dir():
                raise ConfigError(f"runs folder {self.runs_dir}: not a folder")
            address = self.address_edit.text().strip() or None
            sweep.check_address(address)  # a malformed one: refused here; one that does not answer: by the sweep
        except WorkbenchError as e:
            self._set_message(_for_dialog(str(e)), error=True)
            return False
        self.trials, self.result = trials, None
        self._close_when_done = False
        self._fill_trials(trials)
        self._clear_results()
        self._set_message("")
        self._seen = {}
        job = self._job = SweepJob(trials, self.runs_dir, address, self.num_cpus if address is None else None)
        # the dialog deleted while its sweep runs (its window gone with the app): cancel the trials, so that
        # the sweep thread ends and shuts Ray down
        self.destroyed.connect(lambda *_: job.stop(force=True))
        job.start()
        self._set_summary(f"Connecting to Ray at {address}…" if address else "Starting a local Ray…")
        self.timer.start()
        self._update_controls()
        return True

    def stop(self, force: bool = False) -> None:
        """Stop the sweep: running trials stop after their iteration (with a checkpoint), queued ones are
        cancelled; ``force`` cancels the running trials now (no final checkpoint)."""
        job = self._job
        if job is None:
            return
        job.stop(force)
        self._update_controls()
        self._update_summary()

    def _on_stop_clicked(self) -> None:
        job = self._job
        if job is None:
            return
        if not job.stop_event.is_set():
            self.stop()
        elif not job.force_event.is_set() and self._ask(
                "Cancel the trials now?", "The running trials are stopping after their current iteration.\n\n"
                "Cancel them now instead? Their runs keep the last checkpoint written before, not this iteration."):
            self.stop(force=True)

    def _ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace it)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _update_controls(self) -> None:
        running = self._job is not None
        for w in (self.seeds_spin, self.iterations_spin, self.grid_edit, self.address_edit, self.key_combo,
                  self.start_button):
            w.setEnabled(not running)
        stopping = running and self._job.stop_event.is_set()
        forced = running and self._job.force_event.is_set()
        self.stop_button.setEnabled(running and not forced)
        self.stop_button.setText("Cancel now" if stopping else "Stop")
        self.show_runs_button.setEnabled(self.result is not None and not running)

    # -- the trials table ------------------------------------------------------------------------
    def _fill_trials(self, trials: list[sweep.Trial]) -> None:
        table = self.trials_table
        table.setUpdatesEnabled(False)
        table.clearContents()
        table.setRowCount(len(trials))
        self._bars, self._row_status = [], []
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for row, t in enumerate(trials):
            values = ", ".join(f"{k.split('.', 1)[1]}={format_value(v)}" for k, v in t.values.items())
            table.setItem(row, 0, _item(t.name, t.name))
            table.setItem(row, 1, _item(values or "—", ", ".join(f"{k} = {format_value(v)}"
                                                                 for k, v in t.values.items())))
            table.setItem(row, 2, _item(str(t.seed), align=right))
            table.setItem(row, STATUS_COLUMN, _item("queued"))
            bar = QProgressBar()
            total = int(t.config["run"]["iterations"])
            bar.setRange(0, max(1, total))
            bar.setValue(0)
            bar.setFormat("%v / %m")
            table.setCellWidget(row, PROGRESS_COLUMN, bar)
            self._bars.append(bar)
            table.setItem(row, HELD_OUT_COLUMN, _item("—", align=right))
            self._row_status.append("queued")
        table.setUpdatesEnabled(True)

    def drain(self) -> None:
        """Move the sweep thread's newest events into the table (~30 times a second); notice its end."""
        job = self._job
        if job is None:
            return
        ended = job.done()  # looked at before draining, so that no event of a finished sweep is left behind
        for index, event in job.events.drain().items():
            self._show_event(index, event)
        if ended:
            self._finish(job)
        else:
            self._update_summary()

    def _show_event(self, row: int, e: sweep.TrialEvent) -> None:
        if not 0 <= row < len(self._bars):
            return
        table = self.trials_table
        if e.status != self._row_status[row]:
            self._row_status[row] = e.status
            item = table.item(row, STATUS_COLUMN)
            text = e.status if e.attempt <= 1 else f"{e.status} (try {e.attempt})"
            item.setText(text)
            color = STATUS_COLORS.get(e.status)
            item.setForeground(QBrush(QColor(color)) if color else QBrush())
            item.setToolTip(e.message)
        bar = self._bars[row]
        total = max(1, e.total or bar.maximum())
        if bar.maximum() != total:
            bar.setMaximum(total)
        iteration = min(max(0, e.iteration), total)
        if bar.value() != iteration:
            bar.setValue(iteration)
        if e.value is not None:
            text = f"{e.metric or 'metric'} {e.value:.4g}"
            item = table.item(row, HELD_OUT_COLUMN)
            if item.text() != text:
                item.setText(text)
                item.setToolTip(f"held-out {e.metric or 'metric'} after adaptation, at the latest evaluation")

    def row_status(self, row: int) -> str:
        return self._row_status[row]

    def statuses_seen(self, row: int) -> list[str]:
        """The statuses trial ``row`` went through (queued, running, finished, ...)."""
        return self._job.events.statuses(row) if self._job is not None else list(self._seen.get(row, []))

    def _update_summary(self) -> None:
        job = self._job
        if job is None:
            return
        counts: dict[str, int] = {}
        for s in self._row_status:
            counts[s] = counts.get(s, 0) + 1
        elapsed = fmt_time((_dt.datetime.now() - job.started_at).total_seconds())
        if job.force_event.is_set():
            lead = "Cancelling the trials…"
        elif job.stop_event.is_set():
            lead = "Stopping: running trials stop after their current iteration, queued ones are cancelled…"
        elif set(counts) == {"queued"}:
            lead = f"Connecting to Ray at {job.address}…" if job.address else "Starting a local Ray…"
        else:
            lead = ""
        order = ["running", "retrying", "queued", "finished", "stopped", "failed", "cancelled"]
        parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
        self._set_summary(f"{lead}  {' · '.join(parts)}  —  {elapsed}".strip())

    # -- the end ---------------------------------------------------------------------------------
    def _finish(self, job: SweepJob) -> None:
        self.timer.stop()
        job.thread.join()
        self._seen = {i: job.events.statuses(i) for i in range(len(self.trials))}
        self._job = None
        if job.error is not None:
            self._set_message(_for_dialog(job.error), error=True, details=job.details)
            self._set_summary("The sweep did not run.")
            for row, status in enumerate(self._row_status):
                if status == "queued":
                    self._show_event(row, sweep.TrialEvent(self.trials[row], "cancelled"))
        else:
            result = self.result = job.result
            self._fill_results(result)
            counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
            self._set_summary(f"Sweep {result.sweep_id}: {len(result.trials)} trial(s), {counts} "
                              f"in {fmt_time(result.wall_seconds)}; runs in {result.runs_dir}")
            failed = [t for t in result.trials if t.status == "failed"]
            if failed:
                more = f" (and {len(failed) - 1} more; see the Status tooltips)" if len(failed) > 1 else ""
                self._set_message(f"Trial {failed[0].trial.name} failed: {failed[0].message}{more}", error=True)
            elif result.interrupted:
                self._set_message("Stopped: stopped runs keep their last checkpoint; cancelled trials left no run.")
        self._update_controls()
        if job.result is not None:
            self.sweepFinished.emit(job.result.sweep_id, job.result.runs_dir)
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    def _clear_results(self) -> None:
        self.results_table.clear()
        self.results_table.setRowCount(0)
        self.results_table.setColumnCount(0)

    def _fill_results(self, result: sweep.SweepResult) -> None:
        table = self.results_table
        metric = next((g.metric for g in result.groups if g.metric), None) or "metric"
        keys = result.grid_keys
        heads = (keys or ["Config"]) + ["Seeds", "Finished", f"{metric} after (mean ± sd)"]
        table.setColumnCount(len(heads))
        table.setHorizontalHeaderLabels(heads)
        table.setRowCount(len(result.groups))
        higher = any(t.higher_is_better for t in result.trials)
        scored = [g for g in result.groups if g.mean is not None]
        best = (max if higher else min)(scored, key=lambda g: g.mean) if len(scored) > 1 else None
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
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
                item = _item(text, trials, right if col >= len(cells) - 2 else None)
                if g is best:
                    item.setFont(bold)
                    if col == len(cells) - 1:
                        item.setText(f"{text}  (best)")
                table.setItem(row, col, item)
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)

    def _on_show_runs(self) -> None:
        if self.result is not None:
            self.showRunsRequested.emit(self.result.sweep_id)

    # -- closing ---------------------------------------------------------------------------------
    def reject(self) -> None:  # Esc, the Close button
        if self._job is not None:
            self._request_close()
            return
        super().reject()

    def closeEvent(self, event) -> None:
        if self._job is None:
            super().closeEvent(event)
            return
        if event.spontaneous():  # the window's close box: ask, as the Close button does
            event.ignore()
            self._request_close()
            return
        # close() from the program (the main window closing): stop cleanly without asking; the sweep
        # thread finishes stopping in the background and the dialog still reports its end
        self.stop()
        super().closeEvent(event)

    def _request_close(self) -> None:
        job = self._job
        if not job.stop_event.is_set():
            if not self._ask("Stop the sweep?", "The sweep is still running. Stop it and close?\n\nRunning trials "
                             "stop after their current iteration and keep a checkpoint; trials not started yet "
                             "are cancelled."):
                return
            self.stop()
        elif not job.force_event.is_set():
            if not self._ask("Cancel the trials now?", "The trials are stopping. Cancel them now and close? Their "
                             "runs keep the last checkpoint written before."):
                return
            self.stop(force=True)
        self._close_when_done = True
        self._set_message("The dialog closes when the trials have stopped…")

    def _on_quit(self) -> None:
        """The app is quitting: stop the sweep cleanly (force it after a while) so that Ray shuts down."""
        job = self._job
        if job is None:
            return
        job.stop()
        job.thread.join(35.0)  # run_sweep's grace is 30 s
        if job.thread.is_alive():
            job.stop(force=True)
            job.thread.join(30.0)


def _for_dialog(message: str) -> str:
    """Core messages name command-line flags (``--grid``, ``--address``); the dialog names its inputs."""
    for flag, name in (("--grid ", "Grid "), ("--seeds ", "Seeds "), ("--address ", "Ray address ")):
        if message.startswith(flag):
            return name + message[len(flag):]
    return message
