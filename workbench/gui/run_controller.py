"""One training run in the app: the trainer worker and its thread, pause / stop, and the live drain.

The worker (gui/worker.py) writes the trainer's events into an :class:`EventBuffer`; a 30 Hz QTimer here
drains it into the views and the status bar.  Only lifecycle travels as signals.

The run is over for the user when the trainer reports ``RunFinished``: the controls come back at once.
The worker thread then still joins the trainer process in the background (``retiring``), so a slow
process exit never greys out the window (Stop used to leave every button disabled for 2–4 s).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal

from .run_status import RunClock, RunStatus
from .train_page import TrainPage
from .worker import EventBuffer, TrainerWorker

__all__ = ["RunController"]

DRAIN_MS = 33  # ~30 Hz
STATUS_EVERY = 0.25  # seconds between status-bar updates
RENDER_EVERY = 1.0  # seconds between rollout redraws while training


class RunController(QObject):
    """Starts, pauses and stops runs and feeds their events to the Train page's views.

    ``state`` is ``idle``, ``running``, ``paused`` or ``stopping``.  Signals: ``stateChanged(state)``,
    ``started(RunStarted event)``, ``finished(RunFinished event)`` after the last drain, ``failed(message,
    details)``, ``message(text, ms)`` for the status bar.
    """

    stateChanged = Signal(str)
    started = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    message = Signal(str, int)

    def __init__(self, page: TrainPage, status: RunStatus, parent: QObject | None = None):
        super().__init__(parent)
        self.page, self.status = page, status
        self.thread: QThread | None = None
        self.worker: TrainerWorker | None = None
        self.retiring: list[tuple[QThread, TrainerWorker]] = []  # ended runs still joining their process
        self.buffer = EventBuffer()
        self.state = "idle"
        self.clock = RunClock()
        self.run_dir: Path | None = None
        self.total_iterations = 0
        self.train_metric = "loss"
        self.redraws = 0
        self._last_iteration = None
        self._status_at = 0.0
        self._pending_render = None
        self._render_at = 0.0
        self._deferred = False
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self.drain)
        self.timer.start()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _set_state(self, state: str) -> None:
        self.state = state
        self.stateChanged.emit(state)

    # -- control -------------------------------------------------------------------------------------
    def start(self, config, run_dir: Path) -> None:
        """Train ``config`` into ``run_dir`` (a fresh folder) in a trainer process."""
        self.clear()
        self.run_dir = Path(run_dir)
        self.total_iterations = config.run.iterations
        self.buffer = EventBuffer()
        self.worker = worker = TrainerWorker(config, self.run_dir, self.buffer)
        self.thread = thread = QThread(self)
        thread.setObjectName("trainerThread")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # direct: QThread.quit is thread-safe, and the GUI thread may be blocked in wait() (closing)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        # bound methods of this object: queued to the GUI thread (a lambda would run on the worker thread)
        worker.runStarted.connect(self._on_started)
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        worker.checkpointSaved.connect(self._on_checkpoint)
        worker.runFinished.connect(self._on_finished)
        worker.error.connect(self.failed)
        thread.finished.connect(self._on_thread_finished)
        self.clock.start()
        self._set_state("running")
        thread.start()

    def toggle_pause(self) -> None:
        if self.worker is None or self.state == "stopping":
            return
        paused = self.state != "paused"
        self.worker.set_paused(paused)
        self._set_state("paused" if paused else "running")

    def stop(self) -> None:
        """Ask the worker to stop; returns at once (the trainer checkpoints on its own)."""
        if self.worker is None:
            return
        self.worker.stop()
        self._set_state("stopping")
        self.message.emit("Stopping after this iteration…", 0)

    def shutdown(self, wait_s: float = 2.0) -> None:
        """Closing: stop the run and every retiring one; a trainer still inside a long step is detached and
        finishes that step and its checkpoint on its own."""
        pairs = list(self.retiring) + ([(self.thread, self.worker)] if self.worker is not None else [])
        for thread, worker in pairs:
            worker.stop()
        for thread, worker in pairs:
            if not thread.wait(int(wait_s * 1000)):
                worker.detach()
                thread.wait(int(wait_s * 1000))
        self.timer.stop()

    # -- lifecycle from the worker ---------------------------------------------------------------------
    def _on_started(self, event) -> None:
        self.status.set("deviceLabel", f"device {event.device}")
        self.page.meta_loss.x_extent = event.total_iterations
        self.total_iterations = event.total_iterations
        self.train_metric = event.train_metric
        self.started.emit(event)

    def _on_paused(self, iteration: int) -> None:
        self.clock.pause()
        if self.state != "stopping":
            self._set_state("paused")
            self.status.set("speedLabel", "paused")
            self.status.set("etaLabel", "")

    def _on_resumed(self, iteration: int) -> None:
        self.clock.resume()
        if self.state != "stopping":
            self._set_state("running")

    def _on_checkpoint(self, iteration: int, path: str) -> None:
        self.message.emit(f"Checkpoint at iteration {iteration}", 3000)

    def _on_finished(self, event) -> None:
        if self.sender() is not self.worker:  # a retiring worker's late event
            return
        self.clock.end()
        self.drain()
        self.status.show_elapsed(self.clock.elapsed())
        self.page.meta_loss.redraw(force_range=True)
        self._retire()
        self.finished.emit(event)

    def _retire(self) -> None:
        """The run is over: the controls come back now; the thread joins its process in the background."""
        if self.worker is None:
            return
        self.retiring.append((self.thread, self.worker))
        self.thread = self.worker = None
        self._set_state("idle")
        self.status.set("speedLabel", "")
        self.status.set("etaLabel", "")

    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if thread is self.thread:  # ended without RunFinished (the process failed to start or died)
            self.drain()
            self.clock.end()
            self._retire()
            self.message.emit(f"The run ended without its final report; what it wrote is in {self.run_dir}", 0)
        for pair in [p for p in self.retiring if p[0] is thread]:
            self.retiring.remove(pair)
            pair[0].deleteLater()
            pair[1].deleteLater()

    # -- live data -------------------------------------------------------------------------------------
    def drain(self) -> None:
        """Move what the worker produced into the views (called ~30 times a second)."""
        iterations, evaluations, renders = self.buffer.drain()
        page = self.page
        if iterations:
            x = np.fromiter((e.iteration for e in iterations), np.float64, len(iterations))
            key = self.train_metric
            y = np.fromiter((e.metrics.get(key, np.nan) for e in iterations), np.float64, len(iterations))
            page.meta_loss.add_iterations(x, y)
            self._last_iteration = iterations[-1]
        now = time.monotonic()
        if (self.running and now - self._status_at > STATUS_EVERY) or (iterations and not self.running):
            self._status_at = now  # (idle with nothing new: nothing to refresh)
            self._update_status()
        for e in evaluations:
            page.meta_loss.add_evaluation(e.iteration, e.before, e.after)
            page.adaptation.add_evaluation(e)
        task_map = self.buffer.take_task_map()
        if task_map is not None:
            page.task_map.show_map(task_map.task_map, f"live, iteration {task_map.iteration}")
        if renders:  # the newest replaces any waiting one; drawn at most once a second
            self._pending_render = renders[-1]
        # one heavy redraw per tick: a new evaluation this tick defers the rollouts to a later one
        if self._pending_render is not None and not (evaluations and self.running) and (
                now - self._render_at > RENDER_EVERY or not self.running):
            self._render_at = now
            render, self._pending_render = self._pending_render, None
            page.rollouts.show_render(render.iteration, render.payload)
            if self.running:  # the window paints what changed in one go: the meta-loss waits for the next tick
                return
        if evaluations and self.running and not self._deferred:  # spread the work over two ticks
            self._deferred = True
            return
        self._deferred = False
        if page.meta_loss.redraw():
            self.redraws += 1

    def _update_status(self) -> None:
        """Status bar text (a few times a second: styled labels are slow to repaint)."""
        last = self._last_iteration
        if last is not None:
            self.status.show_iteration(last, self.total_iterations, self.state == "running")
        if self.running:
            self.status.show_elapsed(self.clock.elapsed())

    def clear(self) -> None:
        """Empty the views and the run's status (not the run itself)."""
        self.page.clear()
        self._pending_render = None
        self._last_iteration = None
        self.status.clear()
