"""The Sweep dialog's runner: one sweep as a background job of :mod:`workbench.gui.jobs`.  Touches no widget.

:func:`workbench.services.sweep.run_sweep` is one blocking call (it waits on Ray and reports through a
callback), so it cannot yield between trials the way a generator job does: the sweep runs as a *plain*
job (``Job`` runs a function that returns without yields) in the app's thread pool.  Its progress does
not go through the job's own buffer, which keeps the newest values of all trials together and drops the
oldest: :class:`SweepEvents` keeps the newest event *of each trial* (a trial's newer event replaces a
waiting one, so the buffer holds at most one event per trial) and each trial's status changes; the
dialog drains it with its QTimer.

Stopping is the sweep's own: :meth:`SweepRun.stop` sets ``run_sweep``'s ``stop_event`` (running trials
stop after their current iteration with a checkpoint, queued ones are cancelled) or also its
``force_event`` (running trials are cancelled now).  :meth:`SweepRun.cancel` — what ``Jobs.cancel_all``
calls — is the clean stop; :meth:`SweepRun.shutdown` escalates to the forced one and joins.
"""
from __future__ import annotations

import datetime as _dt
import threading
import time
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.services import sweep

from .jobs import Job

__all__ = ["SweepEvents", "SweepRun"]


class SweepEvents:
    """The sweep's callback: the latest :class:`~workbench.services.sweep.TrialEvent` of each trial.

    Also keeps each trial's status changes (a few entries: queued, running, finished; more only with retries),
    so that a trial that ran and finished between two GUI ticks is still seen to have run.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: dict[int, sweep.TrialEvent] = {}
        self._statuses: dict[int, list[str]] = {}

    def __call__(self, event: sweep.TrialEvent) -> None:  # on the job's thread
        with self._lock:
            self._latest[event.trial.index] = event
            seen = self._statuses.setdefault(event.trial.index, [])
            if not seen or seen[-1] != event.status:
                seen.append(event.status)

    def drain(self) -> dict[int, sweep.TrialEvent]:
        """The newest event of each trial that reported since the last drain."""
        with self._lock:
            out, self._latest = self._latest, {}
        return out

    def statuses(self, index: int) -> list[str]:
        """The statuses trial ``index`` went through so far."""
        with self._lock:
            return list(self._statuses.get(index, []))


class SweepRun(Job):
    """One sweep (``run_sweep`` of ``trials`` into ``runs_dir``) as a background :class:`~workbench.gui.jobs.Job`.

    The outcome is kept on the object — ``result`` (a :class:`~workbench.services.sweep.SweepResult`), or
    ``error`` and ``details`` (the traceback of an unexpected exception) — and is complete once
    :attr:`running` is False, so that a GUI timer that sees the job end can read it at once.
    """

    def __init__(self, trials: list, runs_dir: Path, address: str | None, num_cpus: int | None):
        self.trials, self.runs_dir, self.address, self.num_cpus = trials, runs_dir, address, num_cpus
        self.events = SweepEvents()
        self.stop_event = threading.Event()
        self.force_event = threading.Event()
        self.result: sweep.SweepResult | None = None
        self.error: str | None = None
        self.details = ""
        self.started_at = _dt.datetime.now()
        super().__init__(self._run, name="workbench-sweep")

    def _run(self) -> None:  # on the job's thread
        try:
            # looked up at call time: tests replace sweep.run_sweep
            self.result = sweep.run_sweep(self.trials, self.runs_dir, address=self.address, num_cpus=self.num_cpus,
                                          callback=self.events, stop_event=self.stop_event,
                                          force_event=self.force_event)
        except WorkbenchError as e:  # Ray cannot start, a cluster address unreachable, a trial it cannot place
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown in the dialog, with the traceback as its tooltip
            import traceback

            self.error = f"{type(e).__name__}: {e}"
            self.details = traceback.format_exc()

    # -- stopping ------------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def forced(self) -> bool:
        return self.force_event.is_set()

    def stop(self, force: bool = False) -> None:
        """Stop the sweep: running trials after their iteration (with a checkpoint), queued ones cancelled;
        ``force``: cancel the running trials now (no final checkpoint).  Returns at once."""
        self.stop_event.set()
        if force:
            self.force_event.set()

    def cancel(self) -> None:
        """The job's cancel (``Jobs.cancel_all``): the clean :meth:`stop`; the result is still kept."""
        self.stop()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop the sweep and join it: cleanly, then by force once half of ``timeout`` seconds has passed
        (a trial inside a long iteration).  True when the job has ended."""
        deadline = time.monotonic() + max(0.0, timeout)
        self.stop()
        if self.wait(max(0.0, timeout) / 2):
            return True
        self.stop(force=True)
        return self.wait(max(0.0, deadline - time.monotonic()))

    def elapsed(self) -> float:
        return (_dt.datetime.now() - self.started_at).total_seconds()

    # -- what the dialog says about it ---------------------------------------------------------------
    def progress_text(self, statuses: list[str], took: str) -> str:
        """The summary line while it runs: what it is doing, how many trials are in which status, for how long."""
        counts: dict[str, int] = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
        if self.forced:
            lead = "Cancelling the trials…"
        elif self.stopping:
            lead = "Stopping: running trials stop after their current iteration, queued ones are cancelled…"
        elif set(counts) == {"queued"}:
            lead = f"Connecting to Ray at {self.address}…" if self.address else "Starting a local Ray…"
        else:
            lead = ""
        order = ["running", "retrying", "queued", "finished", "stopped", "failed", "cancelled"]
        parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
        return f"{lead}  {' · '.join(parts)}  —  {took}".strip()

    def end_texts(self, wall: str) -> tuple[str, str, bool]:
        """Once ended: the summary line, a message (empty: none) and whether the message is an error."""
        if self.error is not None:
            return "The sweep did not run.", self.error, True
        result = self.result
        counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
        # what the user looks for first: the long sweep id and folder last, where the line is elided
        summary = (f"{len(result.trials)} trial(s), {counts} in {wall} — sweep {result.sweep_id}, "
                   f"runs in {result.runs_dir}")
        failed = [t for t in result.trials if t.status == "failed"]
        if failed:
            more = f" (and {len(failed) - 1} more; see the Status tooltips)" if len(failed) > 1 else ""
            return summary, f"Trial {failed[0].trial.name} failed: {failed[0].message}{more}", True
        if result.interrupted:
            return summary, "Stopped: stopped runs keep their last checkpoint; cancelled trials left no run.", False
        return summary, "", False
