"""The background job of a playground page, on the app's one job helper (:mod:`workbench.gui.jobs`).

A page runs one adaptation (or classification) at a time.  :class:`PageJob` starts it as a
:class:`~workbench.gui.jobs.Job` in the page's own :class:`~workbench.gui.jobs.Jobs`, gives the job
function a ``cancel`` event (for work that checks it inside one long call, as the RL algorithms'
``evaluate`` does; generators are also stopped at their next yield), and runs the page's QTimer while
the job is shown.  The page's tick drains the values the job yielded (:meth:`PageJob.drain`) and ends
the job when it has shown them all and :attr:`PageJob.done` is set::

    self.job = PageJob(self, 33, self._drain)
    self.job.start(run_steps, adaptation, 10, name="playground-adapt")   # run_steps(..., cancel=event)
    ...
    def _drain(self):
        self._show(self.job.drain())
        if self.job.done:
            self.job.stop()
            self._say(self.job.error or "done")

A job function returns its result, or a :class:`JobFailure` with the text of an error it caught (an
exception it lets out is reported the same way, as "… failed: Type: message").
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QTimer

from .jobs import Job, Jobs

__all__ = ["JobFailure", "PageJob"]


class JobFailure:
    """What a job function returns when it caught an error: the text to show."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"JobFailure({self.text!r})"


class PageJob(QObject):
    """One page's background job at a time, its cancel event and its drain timer.

    :param interval_ms: how often ``tick`` runs while a job is shown.
    :param what: the word for the work in error messages ("adaptation", "classification").
    """

    def __init__(self, parent: QObject, interval_ms: int, tick, what: str = "adaptation"):
        super().__init__(parent)
        self.what = what
        self.jobs = Jobs(self)
        self.job: Job | None = None  # the job being shown
        self.last: Job | None = None  # the newest job started (after a cancel it may still finish a step)
        self._event: threading.Event | None = None
        self.done = False  # the shown job's function has ended
        self.value = None  # what it returned
        self.error: str | None = None  # why it failed
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(tick)

    @property
    def busy(self) -> bool:
        """A job is being shown (started, and not yet stopped or cancelled by the page)."""
        return self.job is not None

    def start(self, fn, *args, name: str, maxlen: int = 1024) -> Job:
        """Run ``fn(*args, cancel=event)`` in the background and start the timer."""
        event = threading.Event()
        job = self.jobs.start(fn, *args, name=name, maxlen=maxlen, cancel=event)
        self.job, self.last, self._event = job, job, event
        self.done, self.value, self.error = False, None, None
        job.returned.connect(lambda value, j=job: self._returned(j, value))
        job.failed.connect(lambda message, details, j=job: self._failed(j, message))
        job.ended.connect(lambda j=job: self._ended(j))
        self.timer.start()
        return job

    def drain(self) -> list:
        """The values the shown job yielded since the last drain."""
        return self.job.drain() if self.job is not None else []

    def stop(self) -> None:
        """The page has shown the job to its end: stop the timer."""
        self.timer.stop()
        self.job = None

    def cancel(self, wait: float = 0.0) -> None:
        """Stop the shown job (at its next yield or cancel check) and forget it; wait up to ``wait`` s."""
        job, self.job = self.job, None
        self.timer.stop()
        if job is None:
            return
        job.cancel()
        if self._event is not None:
            self._event.set()
        if wait > 0:
            job.wait(wait)

    def request_stop(self) -> None:
        """Ask the shown job to stop, and keep showing it until it has ended (then :attr:`done` is set,
        with neither a value nor an error)."""
        if self.job is not None:
            self.job.cancel()
            self._event.set()

    def finishing(self) -> bool:
        """A cancelled job is still finishing the step it was in."""
        return self.last is not None and self.job is None and self.last.running

    def wait_last(self, timeout: float) -> bool:
        return self.last is None or self.last.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel every job of the page and wait for them to end (True when all have)."""
        self.cancel()
        return self.jobs.cancel_all(timeout)

    @property
    def active(self) -> list[Job]:
        """The page's jobs whose function is still running."""
        return self.jobs.active

    # -- the job's signals (GUI thread) -------------------------------------------------------------
    def _returned(self, job: Job, value) -> None:
        if job is self.job:
            if isinstance(value, JobFailure):
                self.error = value.text
            else:
                self.value = value

    def _failed(self, job: Job, message: str) -> None:
        if job is self.job:
            self.error = f"the {self.what} failed: {message}"

    def _ended(self, job: Job) -> None:
        if job is self.job:
            self.done = True
