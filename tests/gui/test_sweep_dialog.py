"""Run → Sweep…: the dialog refuses a bad grid before Ray starts, runs seeds × grid on a local Ray with
per-trial progress, shows the grouped comparison, and stops cleanly."""
import json
import sys
import threading

import pytest
from PySide6.QtWidgets import (QComboBox, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox,
                               QTableWidget, QWidget)

from conftest import tiny_config

NAMES = {"sweepSeedsSpin": QSpinBox, "sweepGridEdit": QPlainTextEdit, "sweepIterationsSpin": QSpinBox,
         "sweepAddressEdit": QLineEdit, "sweepStartButton": QPushButton, "sweepStopButton": QPushButton,
         "sweepMessage": QLabel, "sweepTrialsTable": QTableWidget, "sweepResultsTable": QTableWidget,
         "sweepShowRunsButton": QPushButton}


@pytest.fixture
def make_dialog(qtbot, tmp_path):
    from workbench.gui.sweep_dialog import SweepDialog

    made = []

    def make(config=None, **kwargs):
        d = SweepDialog(config or tiny_config("maml", iterations=20, eval_interval=10), tmp_path / "runs",
                        num_cpus=2, **kwargs)
        qtbot.addWidget(d)
        d.show()
        made.append(d)
        return d

    yield make
    for d in made:  # never leave a sweep (and its Ray) running into the next test
        assert d.shutdown(60.0) and not d.is_running()


def find(d, name):
    w = d.findChild(NAMES.get(name, QWidget), name)
    assert w is not None, name
    return w


def set_grid(d, text):
    find(d, "sweepGridEdit").setPlainText(text)


def ray_started() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray) and ray.is_initialized()


def column(table, name):
    heads = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    return next(i for i, h in enumerate(heads) if h.startswith(name))


# -- before anything starts ----------------------------------------------------------------------------
def test_inputs_have_their_names_defaults_and_a_live_trial_count(make_dialog):
    d = make_dialog(tiny_config("maml", iterations=37))
    for name in NAMES:
        find(d, name)
    assert d.objectName() == "sweepDialog" and not d.isModal()
    assert find(d, "sweepSeedsSpin").value() == 3 and find(d, "sweepSeedsSpin").maximum() == 1000
    assert find(d, "sweepIterationsSpin").value() == 37
    assert find(d, "sweepAddressEdit").text() == ""
    count = d.findChild(QLabel, "sweepTrialCountLabel")
    assert count.text() == "3 trials"
    set_grid(d, "algorithm.inner_lr=0.01,0.02\n\n# a comment\nmodel.hidden=[40,40],[20],[8]")
    assert count.text().startswith("18 trials")
    assert "algorithm.inner_lr" in d.findChild(QLabel, "sweepGridHint").text()
    assert not find(d, "sweepStopButton").isEnabled() and not find(d, "sweepShowRunsButton").isEnabled()

    combo = d.findChild(QComboBox, "sweepKeyCombo")  # "Add a key…" appends key=current value
    set_grid(d, "")
    combo.activated.emit(combo.findData("algorithm.outer_lr"))
    assert find(d, "sweepGridEdit").toPlainText() == "algorithm.outer_lr=0.001,"
    assert combo.findData("run.seed") < 0 and combo.findData("algorithm.name") < 0


def test_an_unknown_grid_key_is_refused_naming_it_and_nothing_starts(make_dialog, tmp_path):
    ray = pytest.importorskip("ray")
    d = make_dialog()
    set_grid(d, "algorithm.inner_lr=0.01,0.02\nalgorithm.nope=1,2")
    finished = []
    d.sweepFinished.connect(lambda *a: finished.append(a))
    find(d, "sweepStartButton").click()
    message = find(d, "sweepMessage")
    assert "algorithm.nope=1" in message.text() and "unknown key 'nope'" in message.text()
    assert message.isVisible() and message.property("error") and "color" in message.styleSheet()
    assert not d.is_running() and not ray.is_initialized() and d.result is None and not finished
    assert find(d, "sweepTrialsTable").rowCount() == 0 and not (tmp_path / "runs").exists()
    assert find(d, "sweepStartButton").isEnabled() and find(d, "sweepGridEdit").isEnabled()


@pytest.mark.parametrize("grid, expected", [
    ("algorithm.inner_lr=0.01,-1", "algorithm.inner_lr=-1"),
    ("model.activation=relu,tahn", "did you mean 'tanh'?"),
    ("algorithm.inner_lr", "expected section.key=v1,v2"),
])
def test_a_bad_value_or_line_is_refused_before_ray_starts(make_dialog, grid, expected):
    d = make_dialog()
    set_grid(d, grid)
    assert d.start() is False
    assert expected in find(d, "sweepMessage").text() and find(d, "sweepMessage").property("error")
    assert not d.is_running() and not ray_started()


def test_without_ray_the_message_says_what_to_install(make_dialog, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ImportError
    d = make_dialog()
    assert d.start() is False and not d.is_running()
    assert "pip install 'workbench[cluster]'" in find(d, "sweepMessage").text()


def test_an_error_from_ray_lands_in_the_message(make_dialog, qtbot, monkeypatch):
    pytest.importorskip("ray")
    import workbench.services.sweep as sweep
    from workbench.core.errors import ConfigError

    def unreachable(*args, **kwargs):
        raise ConfigError("--address 10.0.0.1:6379: cannot connect to a Ray cluster: timed out")

    monkeypatch.setattr(sweep, "run_sweep", unreachable)
    d = make_dialog()
    find(d, "sweepAddressEdit").setText("10.0.0.1:6379")
    finished = []
    d.sweepFinished.connect(lambda *a: finished.append(a))
    assert d.start() is True
    qtbot.waitUntil(lambda: not d.is_running(), timeout=10_000)
    text = find(d, "sweepMessage").text()
    assert text.startswith("Ray address 10.0.0.1:6379: cannot connect") and find(d, "sweepMessage").property("error")
    assert not finished and d.result is None and find(d, "sweepStartButton").isEnabled()
    assert {d.row_status(r) for r in range(3)} == {"cancelled"}


def test_long_names_and_paths_are_elided_and_the_dialog_fits_a_small_screen(qtbot, tmp_path):
    """Finding 19: a preset name of 190 or 404 characters without spaces, and a long runs folder, widened the
    dialog past the screen (1396 px, 3760 px).  Elided now, full text in the tooltip; fits 1024×768."""
    from workbench.gui.sweep_dialog import SweepDialog

    runs = tmp_path / ("a-folder-with-a-rather-long-name-" * 6) / ("and-another-one-" * 5) / "runs"
    for n in (190, 404):
        config = tiny_config("maml")
        config.meta.name = name = f"preset{n}-" + "x" * (n - len(f"preset{n}-"))
        d = SweepDialog(config, runs, num_cpus=2)
        qtbot.addWidget(d)
        d.show()
        assert d.minimumSizeHint().width() <= 1000 and d.sizeHint().width() <= 1000, (n, d.minimumSizeHint())
        assert d.minimumSizeHint().height() <= 700, d.minimumSizeHint()
        label = d.findChild(QWidget, "sweepNameLabel")
        assert label.toolTip() == name and label.displayed().endswith("…") and label.displayed()[:-1] in name
        assert d.findChild(QWidget, "sweepRunsDirLabel").toolTip() == str(runs)
        assert "…" in d.windowTitle() and len(d.windowTitle()) < 120
        d.resize(1000, 700)  # on a 1024×768 screen: the whole dialog, buttons included, on it
        d.layout().activate()
        assert (d.width(), d.height()) == (1000, 700)
        close = d.findChild(QPushButton, "sweepCloseButton")
        assert close.isVisible() and close.mapTo(d, close.rect().bottomRight()).x() < d.width()


class FakeSweep:
    """``run_sweep`` replaced: every trial runs (as events) until the stop event is set — or, when
    ``stubborn`` (a trial inside a long iteration), until the force event."""

    def __init__(self, stubborn=False):
        self.stubborn, self.calls, self.ended = stubborn, [], threading.Event()

    def __call__(self, trials, runs_dir, address=None, num_cpus=None, callback=None, stop_event=None,
                 force_event=None, **kwargs):
        from workbench.services import sweep

        self.calls.append(threading.current_thread().name)
        if isinstance(trials, sweep.SweepPlan):  # what the dialog passes: its planned trials
            trials = sweep.planned_trials(trials)
        try:
            for t in trials:
                callback(sweep.TrialEvent(t, "running", 3, 20))
            (force_event if self.stubborn else stop_event).wait(10)
            status = "stopped" if stop_event.is_set() else "finished"
            results = [sweep.TrialResult(t, status, iteration=3, total=20, message=f"force={force_event.is_set()}")
                       for t in trials]
            for r in results:  # as run_sweep ends each trial
                callback(sweep.TrialEvent(r.trial, r.status, r.iteration, r.total, message=r.message))
            return sweep.SweepResult("fake-sweep", str(runs_dir), [], results, sweep.group_results(results),
                                     interrupted=stop_event.is_set())
        finally:
            self.ended.set()


@pytest.mark.parametrize("stubborn", [False, True])
def test_shutdown_stops_the_sweep_job_and_returns_with_nothing_left_running(make_dialog, qtbot, monkeypatch,
                                                                            stubborn):
    import workbench.services.sweep as sweep
    from workbench.gui.jobs import Job

    fake = FakeSweep(stubborn)
    monkeypatch.setattr(sweep, "require_ray", lambda: None)
    monkeypatch.setattr(sweep, "run_sweep", fake)
    d = make_dialog()
    finished = []
    d.sweepFinished.connect(lambda *a: finished.append(a))
    assert d.start() and d.is_running()
    run = d._run
    assert isinstance(run, Job) and run.running  # a job of gui/jobs.py, not a thread of its own
    qtbot.waitUntil(lambda: d.row_status(0) == "running", timeout=2000)  # drained by the dialog's timer
    assert fake.calls and fake.calls[0] != threading.current_thread().name
    assert d.shutdown(timeout=1.0) is True
    assert fake.ended.is_set() and not run.running and not d.is_running() and not d.timer.isActive()
    assert run.stopping and run.forced == stubborn  # clean stop first; forced after half the timeout
    assert [t.message for t in d.result.trials] == [f"force={stubborn}"] * 3
    assert finished == [("fake-sweep", d.result.runs_dir)] and find(d, "sweepStartButton").isEnabled()
    assert {d.row_status(r) for r in range(3)} == {"stopped"}


def test_the_stop_button_stops_cleanly_and_a_second_press_asks_to_cancel_now(make_dialog, qtbot, monkeypatch):
    import workbench.services.sweep as sweep

    fake = FakeSweep(stubborn=True)
    monkeypatch.setattr(sweep, "require_ray", lambda: None)
    monkeypatch.setattr(sweep, "run_sweep", fake)
    d = make_dialog()
    asked = []
    d._ask = lambda title, text: asked.append(title) or True
    assert d.start()
    stop = find(d, "sweepStopButton")
    stop.click()
    assert d._run.stopping and not d._run.forced and stop.text() == "Cancel now" and not asked
    assert d.is_running()  # a trial inside a long iteration: still running
    with qtbot.waitSignal(d.sweepFinished, timeout=5000):
        stop.click()
        assert asked == ["Cancel the trials now?"] and not stop.isEnabled()
    assert not d.is_running() and d.result.interrupted and fake.ended.is_set()


# -- on a local Ray --------------------------------------------------------------------------------------
def test_two_seeds_by_two_values_run_live_and_end_with_the_grouped_comparison(make_dialog, qtbot, tmp_path):
    pytest.importorskip("ray")
    d = make_dialog()
    find(d, "sweepSeedsSpin").setValue(2)
    set_grid(d, "algorithm.inner_lr=0.01,0.02")
    assert d.findChild(QLabel, "sweepTrialCountLabel").text().startswith("4 trials")
    with qtbot.waitSignal(d.sweepFinished, timeout=120_000) as blocker:
        find(d, "sweepStartButton").click()
        assert d.is_running() and not find(d, "sweepSeedsSpin").isEnabled()
        assert not find(d, "sweepGridEdit").isEnabled() and find(d, "sweepStopButton").isEnabled()
        assert find(d, "sweepTrialsTable").rowCount() == 4  # the planned trials, queued
    result = d.result
    assert not d.is_running() and not ray_started()
    assert blocker.args == [result.sweep_id, str((tmp_path / "runs").resolve())]

    table = find(d, "sweepTrialsTable")
    assert table.rowCount() == 4
    status_col, progress_col, held_col = (column(table, n) for n in ("Status", "Progress", "Held-out"))
    for row in range(4):
        assert table.item(row, status_col).text() == "finished"
        seen = d.statuses_seen(row)
        assert seen[0] == "queued" and "running" in seen and seen[-1] == "finished", seen
        bar = table.cellWidget(row, progress_col)
        assert isinstance(bar, QProgressBar) and bar.maximum() == 20 and bar.value() == 20
        assert table.item(row, held_col).text().startswith("mse ")
    assert {table.item(r, column(table, "Values")).text() for r in range(4)} == {"inner_lr=0.01", "inner_lr=0.02"}

    results = find(d, "sweepResultsTable")
    assert results.rowCount() == 2
    assert [results.item(r, 0).text() for r in range(2)] == ["0.01", "0.02"]
    assert [results.item(r, column(results, "Finished")).text() for r in range(2)] == ["2/2", "2/2"]
    assert column(results, "mse after") == results.columnCount() - 1
    for r, g in enumerate(result.groups):
        assert g.finished == 2 and results.item(r, column(results, "mse after")).text().startswith(f"{g.mean:.4g} ± ")

    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 4
    for run in runs:
        assert json.loads((run / "sweep.json").read_text())["sweep_id"] == result.sweep_id
        assert json.loads((run / "status.json").read_text())["status"] == "finished"

    assert find(d, "sweepStartButton").isEnabled() and find(d, "sweepSeedsSpin").isEnabled()
    show = find(d, "sweepShowRunsButton")
    assert show.isEnabled()
    with qtbot.waitSignal(d.showRunsRequested, timeout=1000) as shown:
        show.click()
    assert shown.args == [result.sweep_id]


def test_stopping_stops_running_trials_cancels_queued_ones_and_closing_waits_for_it(make_dialog, qtbot, tmp_path):
    """Close (Esc) while running asks first; "yes" stops as the Stop button does — running trials after
    their iteration, with a checkpoint, queued ones cancelled — and the dialog closes when they have stopped.
    (One Ray start for both: the stop button and the close question.)"""
    pytest.importorskip("ray")
    d = make_dialog(tiny_config("maml", iterations=100_000, eval_interval=1_000_000, checkpoint_interval=1_000_000))
    assert find(d, "sweepIterationsSpin").value() == 100_000
    d.num_cpus = 2  # 3 trials on 2 cores: one waits in the queue
    asked = []
    d._ask = lambda title, text: asked.append(title) or len(asked) == 2  # no, yes, then no
    table = find(d, "sweepTrialsTable")
    progress = column(table, "Progress")
    assert d.start()
    # both running trials past iteration 0 (the third waits in the queue): each stops with a checkpoint
    qtbot.waitUntil(lambda: sum(table.cellWidget(r, progress).value() > 0 for r in range(table.rowCount())) >= 2,
                    timeout=90_000)
    d.reject()  # Esc / Close: asked, answered no: keeps running
    assert asked == ["Stop the sweep?"] and d.is_running() and d.isVisible()
    stop = find(d, "sweepStopButton")
    with qtbot.waitSignal(d.sweepFinished, timeout=60_000):
        d.reject()  # answered yes: stops as the Stop button does, closes when the trials have stopped
        assert d.isVisible() and stop.text() == "Cancel now" and stop.isEnabled()
        assert "Stopping" in d.findChild(QWidget, "sweepSummaryLabel").text()
        stop.click()  # a second press asks to cancel now: answered no, the clean stop goes on
        assert asked[-1] == "Cancel the trials now?" and stop.isEnabled()
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=5000)
    result = d.result
    assert result.interrupted and not ray_started()
    assert sorted(t.status for t in result.trials) == ["cancelled", "stopped", "stopped"]
    assert sorted(d.row_status(r) for r in range(3)) == ["cancelled", "stopped", "stopped"]
    for r, t in enumerate(result.trials):
        bar = table.cellWidget(r, progress)
        assert bar.maximum() == 100_000 and bar.value() == t.iteration
        assert (0 < t.iteration < 100_000) if t.status == "stopped" else t.iteration == 0
    assert "Stopped" in find(d, "sweepMessage").text() and not find(d, "sweepMessage").property("error")
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2


def test_search_lines_make_a_searched_plan_and_a_trial_count(make_dialog):
    d = make_dialog()
    find(d, "sweepSeedsSpin").setValue(2)
    find(d, "sweepSamplesSpin").setValue(4)
    find(d, "sweepGridEdit").setPlainText("loguniform algorithm.outer_lr=0.0001,0.01\nchoice algorithm.inner_lr=0.005,0.02")
    find(d, "sweepSchedulerCombo").setCurrentText("asha")
    assert find(d, "sweepTrialCountLabel").text() == "8 trials (4 samples × 2 seeds)"
    plan = d.plan()
    assert plan.total == 8 and plan.trials is None and plan.scheduler == "asha"
    assert [(x.key, x.kind, x.values) for x in plan.dists] == [
        ("algorithm.outer_lr", "loguniform", [0.0001, 0.01]), ("algorithm.inner_lr", "choice", [0.005, 0.02])]
    find(d, "sweepGridEdit").setPlainText("loguniform algorithm.outer_lr=0,0.01")
    assert not d.start() and "log-uniform range must be above 0" in d.message_text()
