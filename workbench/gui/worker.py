"""The training worker: a QObject living in a QThread that owns the Trainer.

It never touches widgets.  Trainer events go into :class:`EventBuffer` (bounded, lock-protected); the GUI
drains it on a QTimer.  Only lifecycle events travel as signals.
"""
from __future__ import annotations

import threading
import traceback
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError


class EventBuffer:
    """What the worker produced since the GUI last looked: metrics, evaluations, the newest render."""

    def __init__(self, max_iterations: int = 200_000, max_evaluations: int = 1000):
        self._lock = threading.Lock()
        self._iterations: deque = deque(maxlen=max_iterations)
        self._evaluations: deque = deque(maxlen=max_evaluations)
        self._renders: deque = deque(maxlen=64)
        self.dropped = 0

    def __call__(self, event) -> None:  # called by the trainer, on the worker thread
        with self._lock:
            if isinstance(event, ev.IterationMetrics):
                if len(self._iterations) == self._iterations.maxlen:
                    self.dropped += 1
                self._iterations.append(event)
            elif isinstance(event, ev.Evaluation):
                self._evaluations.append(event)
            elif isinstance(event, ev.Render):
                self._renders.append(event)

    def drain(self) -> tuple[list, list, list]:
        with self._lock:
            out = list(self._iterations), list(self._evaluations), list(self._renders)
            self._iterations.clear()
            self._evaluations.clear()
            self._renders.clear()
        return out


class TrainerWorker(QObject):
    runStarted = Signal(object)  # events.RunStarted
    paused = Signal(int)
    resumed = Signal(int)
    checkpointSaved = Signal(int, str)
    runFinished = Signal(object)  # events.RunFinished
    error = Signal(str, str)  # message, details
    done = Signal()

    def __init__(self, config, run_dir: Path | None, buffer: EventBuffer, resume: bool = False):
        super().__init__()
        self.config, self.run_dir, self.buffer, self.resume = config, run_dir, buffer, resume
        self.trainer = None
        self._stop = threading.Event()
        self._pause = threading.Event()

    # -- control from the GUI thread ----------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        if self.trainer is not None:
            self.trainer.stop()

    def set_paused(self, paused: bool) -> None:
        (self._pause.set if paused else self._pause.clear)()
        if self.trainer is not None:
            (self.trainer.pause if paused else self.trainer.unpause)()

    # -- worker thread -------------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        self.buffer(event)
        if isinstance(event, ev.RunStarted):
            self.runStarted.emit(event)
        elif isinstance(event, ev.Paused):
            self.paused.emit(event.iteration)
        elif isinstance(event, ev.Resumed):
            self.resumed.emit(event.iteration)
        elif isinstance(event, ev.CheckpointSaved):
            self.checkpointSaved.emit(event.iteration, event.path)
        elif isinstance(event, ev.RunFinished):
            self.runFinished.emit(event)

    @Slot()
    def run(self) -> None:
        from workbench.core.trainer import Trainer

        try:
            if self.resume:
                trainer = Trainer.from_run_dir(self.run_dir, [self._on_event])
            else:
                trainer = Trainer(self.config, self.run_dir, [self._on_event])
            self.trainer = trainer
            if self._pause.is_set():
                trainer.pause()
            if self._stop.is_set():
                trainer.stop()
            trainer.run()
        except WorkbenchError as e:
            self.error.emit(str(e), "")
        except Exception as e:  # a bug or an environment problem: tell the user, keep the app alive
            self.error.emit(f"{type(e).__name__}: {e}", traceback.format_exc())
        finally:
            self.done.emit()
