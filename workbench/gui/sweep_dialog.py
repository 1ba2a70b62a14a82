"""Run → Sweep…: seeds × grid values of the current experiment on Ray, per-trial progress live, then the
grouped comparison.

The dialog puts together the inputs (:class:`~workbench.gui.sweep_form.SweepForm`), the tables
(:mod:`workbench.gui.sweep_tables`) and the runner (:class:`~workbench.gui.sweep_runner.SweepRun`, a job
of :mod:`workbench.gui.jobs` that never touches a widget).  A QTimer at ~30 Hz moves the runner's newest
event of each trial into the trials table and notices the end of the sweep.

Names and paths never widen the dialog: the preset name, the runs folder and the summary are elided with
"…" and keep their full text as tooltip.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QApplication, QDialog, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPushButton,
                               QSizePolicy, QSplitter, QVBoxLayout)

from workbench.core.config import ExperimentConfig
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.services import sweep

from .elide import ElidedLabel, elided
from .run_status import fmt_time
from .sweep_form import MessageLabel, SweepForm, for_dialog
from .sweep_runner import SweepRun
from .sweep_tables import ResultsTable, TrialsTable

__all__ = ["SweepDialog"]

DRAIN_MS = 33  # ~30 Hz
TITLE_PX = 360  # the preset name in the window title is elided to this width
QUIT_TIMEOUT = 60.0  # seconds the app's exit waits for a running sweep (forced after half; run_sweep's grace is 30)


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
        self._run: SweepRun | None = None
        self._seen: dict[int, list[str]] = {}  # statuses each trial went through, once the sweep ended
        self._close_when_done = False
        name = config.meta.name or "untitled"
        self.setWindowTitle(f"Sweep — {elided(name, self, TITLE_PX, Qt.TextElideMode.ElideRight)}")
        self.resize(980, 680)
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
        lay = QVBoxLayout(self)
        self.form = SweepForm(self.config, self.runs_dir, self.num_cpus)
        self.form.changed.connect(self._update_count)
        lay.addWidget(self.form)

        buttons = QHBoxLayout()
        self.count_label = QLabel("")
        self.count_label.setObjectName("sweepTrialCountLabel")
        buttons.addWidget(self.count_label)
        buttons.addStretch(1)
        self.start_button = self._button("Start sweep", "sweepStartButton", self.start, buttons)
        self.start_button.setDefault(True)
        self.stop_button = self._button("Stop", "sweepStopButton", self._on_stop_clicked, buttons)
        self.stop_button.setToolTip("Running trials stop after their current iteration and keep a checkpoint; "
                                    "trials not started yet are cancelled")
        self.show_runs_button = self._button("Show in Runs panel", "sweepShowRunsButton", self._on_show_runs, buttons)
        self.close_button = self._button("Close", "sweepCloseButton", self.reject, buttons)
        self.close_button.setAutoDefault(False)
        lay.addLayout(buttons)

        self.message = MessageLabel()
        self.message.setObjectName("sweepMessage")
        lay.addWidget(self.message)
        self.summary = ElidedLabel("", mode=Qt.TextElideMode.ElideRight, min_chars=16)
        self.summary.setObjectName("sweepSummaryLabel")
        lay.addWidget(self.summary)

        split = QSplitter(Qt.Orientation.Vertical)
        self.trials_table = TrialsTable()
        split.addWidget(self.trials_table)
        results_box = QGroupBox("Comparison (grouped over seeds)")
        self.results_table = ResultsTable()
        QVBoxLayout(results_box).addWidget(self.results_table)
        split.addWidget(results_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay.addWidget(split, 1)

    def _button(self, text: str, name: str, slot, row: QHBoxLayout) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.clicked.connect(slot)
        row.addWidget(button)
        return button

    # -- inputs ----------------------------------------------------------------------------------
    def grid_lines(self) -> list[str]:
        """The grid editor's items; blank lines and ``#`` comments are skipped."""
        return self.form.grid_lines()

    def plan(self) -> sweep.SweepPlan:
        """The sweep from the inputs; raises :class:`ConfigError` naming what is wrong."""
        return self.form.plan()

    def _update_count(self) -> None:
        text, tooltip = self.form.trial_count()
        self.count_label.setText(text)
        self.count_label.setToolTip(tooltip)

    # -- messages --------------------------------------------------------------------------------
    def message_text(self) -> str:
        return self.message.text()

    def _set_summary(self, text: str) -> None:
        if text != self.summary.text():
            self.summary.setText(text)

    # -- running ---------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._run is not None

    def start(self) -> bool:
        """Plan the sweep from the inputs and start it; False (with the reason in sweepMessage) if refused."""
        if self._run is not None:
            return False
        try:
            sweep.require_ray()  # "pip install 'workbench[cluster]'" when Ray is missing
            plan = self.plan()  # an unknown key or a bad value: refused here, before Ray starts
            if self.runs_dir.exists() and not self.runs_dir.is_dir():
                raise ConfigError(f"runs folder {self.runs_dir}: not a folder")
            address = self.form.address()
            sweep.check_address(address)  # a malformed one: refused here; one that does not answer: by the sweep
        except WorkbenchError as e:
            self.message.show_message(for_dialog(str(e)), error=True)
            return False
        self.trials, self.result = sweep.planned_trials(plan), None
        self._close_when_done = False
        self.trials_table.fill(self.trials)
        self.results_table.clear_results()
        self.message.show_message("")
        self._seen = {}
        run = self._run = SweepRun(plan, self.runs_dir, address, self.num_cpus if address is None else None)
        # the dialog deleted while its sweep runs (its window gone with the app): cancel the trials, so that
        # the sweep ends and shuts Ray down
        self.destroyed.connect(lambda *_: run.stop(force=True))
        run.start()
        self._set_summary(f"Connecting to Ray at {address}…" if address else "Starting a local Ray…")
        self.timer.start()
        self._update_controls()
        return True

    def stop(self, force: bool = False) -> None:
        """Stop the sweep: running trials stop after their iteration (with a checkpoint), queued ones are
        cancelled; ``force`` cancels the running trials now (no final checkpoint).  Returns at once."""
        if self._run is None:
            return
        self._run.stop(force)
        self._update_controls()
        self._update_summary()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop a running sweep and wait for it (the main window closing): cleanly, by force once half of
        ``timeout`` seconds has passed.  True when nothing is left running; the dialog then shows the end."""
        run = self._run
        if run is None:
            return True
        if not run.shutdown(timeout):
            return False
        self.drain()
        return True

    def _on_stop_clicked(self) -> None:
        run = self._run
        if run is None:
            return
        if not run.stopping:
            self.stop()
        elif not run.forced and self._ask(
                "Cancel the trials now?", "The running trials are stopping after their current iteration.\n\n"
                "Cancel them now instead? Their runs keep the last checkpoint written before, not this iteration."):
            self.stop(force=True)

    def _ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace it)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _update_controls(self) -> None:
        run = self._run
        self.form.set_editable(run is None)
        self.start_button.setEnabled(run is None)
        self.stop_button.setEnabled(run is not None and not run.forced)
        self.stop_button.setText("Cancel now" if run is not None and run.stopping else "Stop")
        self.show_runs_button.setEnabled(self.result is not None and run is None)

    # -- progress --------------------------------------------------------------------------------
    def drain(self) -> None:
        """Move the sweep's newest events into the table (~30 times a second); notice its end."""
        run = self._run
        if run is None:
            return
        ended = not run.running  # looked at before draining, so that no event of a finished sweep is left behind
        for index, event in run.events.drain().items():
            self.trials_table.show_event(index, event)
        if ended:
            self._finish(run)
        else:
            self._update_summary()

    def row_status(self, row: int) -> str:
        return self.trials_table.status(row)

    def statuses_seen(self, row: int) -> list[str]:
        """The statuses trial ``row`` went through (queued, running, finished, ...)."""
        return self._run.events.statuses(row) if self._run is not None else list(self._seen.get(row, []))

    def _update_summary(self) -> None:
        if self._run is not None:
            self._set_summary(self._run.progress_text(self.trials_table.statuses(), fmt_time(self._run.elapsed())))

    # -- the end ---------------------------------------------------------------------------------
    def _finish(self, run: SweepRun) -> None:
        self.timer.stop()
        self._seen = {i: run.events.statuses(i) for i in range(len(self.trials))}
        self._run = None
        summary, message, error = run.end_texts(fmt_time(run.result.wall_seconds) if run.result else "")
        self._set_summary(summary)
        self.message.show_message(for_dialog(message), error=error, details=run.details)
        if run.error is not None:
            for row, status in enumerate(self.trials_table.statuses()):
                if status == "queued":
                    self.trials_table.show_event(row, sweep.TrialEvent(self.trials[row], "cancelled"))
        else:
            self.result = run.result
            self.results_table.fill(run.result)
        self._update_controls()
        if run.result is not None:
            self.sweepFinished.emit(run.result.sweep_id, run.result.runs_dir)
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    def _on_show_runs(self) -> None:
        if self.result is not None:
            self.showRunsRequested.emit(self.result.sweep_id)

    # -- closing ---------------------------------------------------------------------------------
    def reject(self) -> None:  # Esc, the Close button
        if self._run is not None:
            self._request_close()
            return
        super().reject()

    def closeEvent(self, event) -> None:
        if self._run is None:
            super().closeEvent(event)
            return
        if event.spontaneous():  # the window's close box: ask, as the Close button does
            event.ignore()
            self._request_close()
            return
        # close() from the program (the main window closing): stop cleanly without asking; the sweep
        # finishes stopping in the background and the dialog still reports its end (shutdown() waits for it)
        self.stop()
        super().closeEvent(event)

    def _request_close(self) -> None:
        run = self._run
        if not run.stopping:
            if not self._ask("Stop the sweep?", "The sweep is still running. Stop it and close?\n\nRunning trials "
                             "stop after their current iteration and keep a checkpoint; trials not started yet "
                             "are cancelled."):
                return
            self.stop()
        elif not run.forced:
            if not self._ask("Cancel the trials now?", "The trials are stopping. Cancel them now and close? Their "
                             "runs keep the last checkpoint written before."):
                return
            self.stop(force=True)
        self._close_when_done = True
        self.message.show_message("The dialog closes when the trials have stopped…")

    def _on_quit(self) -> None:
        """The app is quitting: stop the sweep cleanly (force it after a while) so that Ray shuts down."""
        if self._run is not None:
            self._run.shutdown(QUIT_TIMEOUT)
