"""The app's one helper for background jobs (gui/jobs.py): values drained, cancel at a yield, errors of
every kind reported once, ``cancel_all`` joins."""
import threading

import pytest

from workbench.gui.jobs import Jobs


def _count(n, gate=None):
    for i in range(n):
        if gate is not None:
            gate.wait()
        yield i
    return "done"


def test_a_job_yields_into_a_buffer_and_returns(qtbot):
    jobs = Jobs()
    job = jobs.start(_count, 5)
    with qtbot.waitSignal(job.returned, timeout=5000) as got:
        pass
    assert got.args == ["done"] and job.drain() == [0, 1, 2, 3, 4] and job.drain() == []
    qtbot.waitUntil(lambda: not jobs.active, timeout=5000)


@pytest.mark.parametrize("error", [ValueError("bad value"), RuntimeError("torch said no")])
def test_every_error_is_reported_once_with_its_traceback(qtbot, error):
    """A RuntimeError too: superqt's worker drops it without a signal unless the job carries it."""
    def fails():
        yield 1
        raise error

    job = Jobs().start(fails)
    with qtbot.waitSignal(job.failed, timeout=5000) as got, qtbot.waitSignal(job.ended, timeout=5000):
        pass
    message, details = got.args
    assert message == f"{type(error).__name__}: {error}" and "raise error" in details


def test_cancel_all_stops_every_job_at_its_next_yield_and_joins(qtbot):
    jobs, gate = Jobs(), threading.Event()
    started = [jobs.start(_count, 10**9, gate) for _ in range(3)]
    gate.set()
    assert all(j.running for j in started)
    returned = []
    for j in started:
        j.returned.connect(returned.append)
    assert jobs.cancel_all(5) and not jobs.active and all(j.cancelled and not j.running for j in started)
    qtbot.wait(50)
    assert returned == []  # a cancelled job returns nothing
