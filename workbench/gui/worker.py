"""The training worker: a QObject living in a QThread, driving a trainer process.

The worker never touches widgets.  Trainer events go into :class:`EventBuffer` (bounded, lock-protected);
the GUI drains it on a QTimer.  Only lifecycle events travel as signals.

The Trainer itself runs in a child process that the worker thread starts, feeds control flags to and
reads events from.  Measured on two cores (benchmarks/gui_responsiveness.py): with the Trainer inside
the QThread, the GUI thread's drawing and the trainer's Python code contend for the GIL and training ran
at ~70% of its headless speed; in its own process it keeps >= 90% and the event loop stays responsive.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import traceback
import types
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from workbench.core import events as ev
from workbench.services.remote import child_main



class EventBuffer:
    """What the worker produced since the GUI last looked: metrics, evaluations, the newest renders."""

    def __init__(self, max_iterations: int = 200_000, max_evaluations: int = 1000):
        self._lock = threading.Lock()
        self._iterations: deque = deque(maxlen=max_iterations)
        self._evaluations: deque = deque(maxlen=max_evaluations)
        self._renders: deque = deque(maxlen=64)
        self._task_map = None  # the newest TaskMapMade (a newer one replaces it)
        self.dropped = 0

    def __call__(self, event) -> None:  # called on the worker thread
        with self._lock:
            if isinstance(event, ev.IterationMetrics):
                if len(self._iterations) == self._iterations.maxlen:
                    self.dropped += 1
                self._iterations.append(event)
            elif isinstance(event, ev.Evaluation):
                self._evaluations.append(event)
            elif isinstance(event, ev.Render):
                self._renders.append(event)
            elif isinstance(event, ev.TaskMapMade):
                self._task_map = event

    def drain(self) -> tuple[list, list, list]:
        with self._lock:
            out = list(self._iterations), list(self._evaluations), list(self._renders)
            self._iterations.clear()
            self._evaluations.clear()
            self._renders.clear()
        return out

    def take_task_map(self):
        """The newest task map since the last call (a TaskMapMade), or None."""
        with self._lock:
            event, self._task_map = self._task_map, None
        return event


def _start_without_main(proc) -> None:
    """Start a spawned process without re-running the parent's ``__main__`` in it.

    Spawn normally re-imports the main script in the child; a script that opens the window without an
    ``if __name__ == "__main__"`` guard would then start a second app there.  The child needs nothing from
    ``__main__`` (its target lives in this module), so hide it for the duration of ``start()``.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        proc.start()
    finally:
        if main is not None:
            sys.modules["__main__"] = main


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
        self.config = config
        self.run_dir, self.buffer, self.resume = run_dir, buffer, resume
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._pause = self._ctx.Event()
        self._detached = threading.Event()
        self.iteration = 0  # the newest iteration reported by the trainer
        self.is_paused = False  # confirmed by the trainer
        self.pid: int | None = None

    # -- control from the GUI thread ----------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        (self._pause.set if paused else self._pause.clear)()

    def detach(self) -> None:
        """Stop listening (the window is closing): the trainer process stops and checkpoints on its own."""
        self._stop.set()
        self._detached.set()

    # -- worker thread -------------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        self.buffer(event)
        if isinstance(event, ev.IterationMetrics):
            self.iteration = event.iteration
        elif isinstance(event, ev.RunStarted):
            self.iteration = event.start_iteration
            self.runStarted.emit(event)
        elif isinstance(event, ev.Paused):
            self.is_paused = True
            self.paused.emit(event.iteration)
        elif isinstance(event, ev.Resumed):
            self.is_paused = False
            self.resumed.emit(event.iteration)
        elif isinstance(event, ev.CheckpointSaved):
            self.checkpointSaved.emit(event.iteration, event.path)
        elif isinstance(event, ev.RunFinished):
            self.runFinished.emit(event)

    @Slot()
    def run(self) -> None:
        said_done = False
        proc = receive = None
        try:
            receive, send = self._ctx.Pipe(duplex=False)
            config = self.config.to_dict() if self.config is not None else None
            # not a daemon: if the app closes mid-evaluation, the run still finishes its checkpoint
            proc = self._ctx.Process(target=child_main, name="workbench-trainer", daemon=False,
                                     args=(config, str(self.run_dir) if self.run_dir else None, self.resume, send,
                                           self._stop, self._pause))
            _start_without_main(proc)
            send.close()  # the child holds the writing end; EOF then means it is gone
            self.pid = proc.pid
            while not said_done and not self._detached.is_set():
                if not receive.poll(0.1):
                    continue
                try:
                    msg = receive.recv()
                except EOFError:
                    break
                if msg[0] == "events":
                    for event in msg[1]:
                        self._on_event(event)
                elif msg[0] == "error":
                    self.error.emit(msg[1], msg[2])
                elif msg[0] == "done":
                    said_done = True
        except Exception as e:
            self.error.emit(f"cannot run the trainer process: {type(e).__name__}: {e}", traceback.format_exc())
        finally:
            if receive is not None:
                receive.close()
            started = proc is not None and proc.pid is not None
            if started and not self._detached.is_set():
                proc.join(5)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(2)
                if not said_done and proc.exitcode not in (0, None):
                    self.error.emit(f"the training process ended unexpectedly (exit code {proc.exitcode}); the "
                                    f"last checkpoint in {self.run_dir} is kept", "")
            self.done.emit()
