"""The trainer process of the desktop app (Qt-free: spawned by the GUI's worker thread).

It runs a Trainer, sends its events to the parent over a pipe (iteration metrics in batches, everything
else at once) and mirrors the parent's pause / stop flags into the trainer.
"""
from __future__ import annotations

import threading
import time
import traceback

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError

FLUSH_EVERY = 0.03  # seconds: iteration metrics are sent in batches


class _Link:
    """The child's end of the pipe.  If the app has gone (closed during a long evaluation), sends are
    dropped: the run still stops at the next iteration and writes its checkpoint."""

    def __init__(self, conn):
        self.conn, self.open = conn, True

    def send(self, msg) -> None:
        if self.open:
            try:
                self.conn.send(msg)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.open = False


class _Batcher:
    """Trainer callback in the child process: iteration metrics in batches, everything else at once."""

    def __init__(self, conn):
        self.conn, self.pending, self.last = conn, [], time.monotonic()

    def __call__(self, event) -> None:
        self.pending.append(event)
        if isinstance(event, ev.IterationMetrics) and time.monotonic() - self.last < FLUSH_EVERY:
            return
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.conn.send(("events", self.pending))
            self.pending = []
        self.last = time.monotonic()


def train_in_child(config: dict | None, run_dir: str | None, resume: bool, conn, stop, pause) -> None:
    """Entry point of the trainer process (spawned: no Qt state is inherited).

    Events go to the parent over a pipe, written synchronously (no feeder thread competing for the GIL).
    """
    done = threading.Event()
    relay = None
    conn = _Link(conn)
    try:
        from workbench.core.config import ExperimentConfig
        from workbench.services.trainer import Trainer

        batcher = _Batcher(conn)
        if resume:
            trainer = Trainer.from_run_dir(run_dir, [batcher])
        else:
            trainer = Trainer(ExperimentConfig.from_dict(config, where="settings"), run_dir, [batcher])
        trainer.live_task_map = True  # the app's Task map view follows the run

        def relay_controls():  # mirror the parent's flags into the trainer, which checks them per iteration
            paused = False
            while not done.is_set():
                if stop.is_set():
                    trainer.stop()
                if pause.is_set() != paused:
                    paused = not paused
                    (trainer.pause if paused else trainer.unpause)()
                done.wait(0.03)

        relay = threading.Thread(target=relay_controls, daemon=True)
        relay.start()
        trainer.run()
        batcher.flush()
    except WorkbenchError as e:
        conn.send(("error", str(e), ""))
    except Exception as e:  # a bug or an environment problem: report it, let the app carry on
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        done.set()
        if relay is not None:
            relay.join()  # a live thread at interpreter exit aborts the process
        conn.send(("done",))
        conn.conn.close()


def child_main(config: dict | None, run_dir: str | None, resume: bool, conn, stop, pause) -> None:
    """The trainer process's target: :func:`train_in_child`, then leave at once.

    Everything of the run is on disk when ``train_in_child`` returns (the trainer closed its files), so the
    process skips the interpreter's teardown (freeing torch's state took 1-3 s), which the app waited for
    after Stop and when quitting mid-run.  Only for a process of its own: in-process it would end the caller.
    """
    import os
    import sys

    try:
        train_in_child(config, run_dir, resume, conn, stop, pause)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


