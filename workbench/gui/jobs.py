"""Background jobs of the app: the one helper every page uses for work off the GUI thread.

A job is a generator function run by superqt's ``GeneratorWorker`` (the napari project's thread
workers) in the app's own thread pool.  It yields between chunks of work:

- every value it yields that is not ``None`` goes into a bounded buffer that the page drains with its
  own QTimer (:meth:`Job.drain`); a job never emits one signal per value (ACQ4 issue #595: a signal
  per frame flooded the event queue);
- cancelling (:meth:`Job.cancel`) is checked at every yield, so a job stops at its next yield;
- lifecycle comes as Qt signals on the GUI thread: ``returned(value)`` when the function returns,
  ``failed(message, details)`` when it raises, ``ended()`` in every case.  A cancelled job emits
  neither ``returned`` nor ``failed``, only ``ended``.

:class:`Jobs` is the set of a window's live jobs; ``Jobs.cancel_all`` cancels and joins them all and is
what ``closeEvent`` calls, so quitting while a job runs exits with code 0.

Example::

    def adapt(session, steps):
        for k in range(steps):
            yield session.step()           # drained by the page's timer
        return session.summary()

    job = jobs.start(adapt, session, 10, name="playground-adapt")
    job.returned.connect(self._show_summary)
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Iterator

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from superqt.utils import GeneratorWorker

__all__ = ["CancelFlag", "Job", "JobError", "Jobs", "POOL"]

#: The app's pool: jobs are few and long (a sweep runs for hours), so the pool is not capped at the
#: core count the way Qt's global pool is (two cores would queue the third job behind the first two).
POOL = QThreadPool()
POOL.setMaxThreadCount(32)
_ORPHANS: list = []  # cancelled jobs still inside a step when their window closed: their Qt objects must live on


class JobError(Exception):
    """What a job raised, with its traceback text.  superqt's worker swallows a RuntimeError raised from a
    generator (it only warns, and emits neither ``errored`` nor ``finished``), so every error travels as this."""

    def __init__(self, error: BaseException, details: str):
        super().__init__(str(error))
        self.error, self.details = error, details


class Job(QObject):
    """One background job; see the module docstring.

    :param fn: a generator function (or a plain function, which is run as a job without yields).
    :param maxlen: how many yielded values the buffer keeps; the oldest are dropped first.
    """

    returned = Signal(object)
    failed = Signal(str, str)  # message, traceback
    ended = Signal()

    def __init__(self, fn: Callable[..., Any], *args, name: str = "job", maxlen: int = 256, **kwargs):
        super().__init__()
        self.name = name
        self._buffer: deque = deque(maxlen=maxlen)
        self._cancel = threading.Event()
        self._done = threading.Event()  # the function has ended
        self._finished = threading.Event()  # the worker has emitted its last signal: its thread is free
        self._started = False
        self.worker = GeneratorWorker(self._drive, fn, args, kwargs)
        self.worker.setAutoDelete(False)  # the Job owns it; Qt must not delete it under us
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.finished.connect(self.ended.emit)
        self.worker.finished.connect(self._finished.set, Qt.ConnectionType.DirectConnection)  # on the worker's thread

    # -- the worker side ---------------------------------------------------------------------------
    def _drive(self, fn, args, kwargs) -> Iterator[None]:
        try:
            out = fn(*args, **kwargs)
            if not isinstance(out, Iterator):  # a plain function: its value is the result
                return out
            while True:
                if self._cancel.is_set():
                    out.close()
                    return None
                try:
                    item = next(out)
                except StopIteration as stop:
                    return stop.value
                if item is not None:
                    self._buffer.append(item)
                yield
        except GeneratorExit:
            raise
        except BaseException as exc:  # carried as a JobError: superqt drops a RuntimeError without a signal
            raise JobError(exc, traceback.format_exc()) from exc
        finally:
            self._done.set()

    # -- the GUI side ------------------------------------------------------------------------------
    def start(self) -> "Job":
        self._started = True
        POOL.start(self.worker)
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next yield (returns at once; :meth:`wait` joins)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self._started and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job's worker is done, its last signal emitted (True), or ``timeout`` seconds passed
        (False)."""
        if not self._started:
            return True
        return self._finished.wait(timeout)

    def drain(self) -> list:
        """The values yielded since the last drain, oldest first."""
        out = []
        while self._buffer:
            out.append(self._buffer.popleft())
        return out

    def _on_returned(self, value) -> None:
        if not self._cancel.is_set():
            self.returned.emit(value)

    def _on_errored(self, exc: BaseException) -> None:
        if not self._cancel.is_set():
            if isinstance(exc, JobError):
                exc, details = exc.error, exc.details
            else:
                details = "".join(traceback.format_exception(exc))
            self.failed.emit(f"{type(exc).__name__}: {exc}", details)


class Jobs(QObject):
    """The live jobs of one window or page; ``cancel_all`` on close."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: list[Job] = []

    def start(self, fn: Callable[..., Any], *args, name: str = "job", maxlen: int = 256, **kwargs) -> Job:
        """Start ``fn(*args, **kwargs)`` as a :class:`Job` and keep it until it has ended."""
        job = Job(fn, *args, name=name, maxlen=maxlen, **kwargs)
        self._jobs.append(job)
        job.ended.connect(lambda job=job: self._forget(job))
        return job.start()

    def _forget(self, job: Job) -> None:
        if job in self._jobs and not job.running:
            self._jobs.remove(job)

    @property
    def active(self) -> list[Job]:
        return [j for j in self._jobs if j.running]

    def cancel_all(self, timeout: float = 10.0) -> bool:
        """Cancel every job and wait up to ``timeout`` seconds in all; True when all have ended."""
        for job in self._jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        ok = all([job.wait(max(0.0, deadline - time.monotonic())) for job in list(self._jobs)])
        _ORPHANS.extend(job for job in self._jobs if not job._finished.is_set())  # still inside a long step:
        return ok                                                                # kept alive until it returns


class CancelFlag:
    """What a job's work polls (an object with ``is_set()``, as Cancelled.raise_if_set takes) for the
    cancel request of ``job``, which is set once the job is started: ``flag.job = jobs.start(fn, ..., flag)``."""

    def __init__(self):
        self.job = None

    def is_set(self) -> bool:
        return self.job is not None and self.job.cancelled
