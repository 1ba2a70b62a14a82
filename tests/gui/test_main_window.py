"""The desktop app, offscreen, driven like a user: presets, start / pause / resume / stop, export, reopen."""
import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QPushButton, QSpinBox, QWidget

from conftest import PRESETS

REQUIRED_NAMES = ["taskFamilyCombo", "algorithmCombo", "deviceCombo", "startButton", "pauseButton", "stopButton",
                  "metaLossPlot", "adaptationPlot", "rolloutView", "iterationLabel"]


def small_preset(tmp_path, iterations=1_000_000, **run) -> Path:
    text = (PRESETS / "maml-sinusoid.toml").read_text()
    settings = {"iterations": iterations, "eval_interval": 100, "eval_tasks": 12, "eval_steps": 4,
                "checkpoint_interval": 100, **run}
    for key, value in settings.items():
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
        i = lines.index("[run]")
        lines.insert(i + 1, f"{key} = {value}")
        text = "\n".join(lines) + "\n"
    path = tmp_path / "small.toml"
    path.write_text(text.replace('name = "maml-sinusoid"', 'name = "small"'))
    return path


def test_required_widgets_have_their_object_names(window):
    for name in REQUIRED_NAMES:
        assert window.findChild(QWidget, name) is not None, name
    assert window.findChild(QComboBox, "deviceCombo").findText("cpu") >= 0


def test_algorithm_combo_lists_only_algorithms_of_the_family(window):
    from workbench.core.registry import ALGORITHMS

    combo = window.findChild(QComboBox, "algorithmCombo")
    items = [combo.itemText(i) for i in range(combo.count())]
    family = window.findChild(QComboBox, "taskFamilyCombo").currentText()
    assert items == [n for n, cls in ALGORITHMS.items() if family in cls.families]
    assert {"maml", "metasgd", "anil", "reptile", "pretrained", "scratch"} <= set(items)


def test_loading_a_preset_fills_every_panel_and_edits_mark_it_modified(window, tmp_path):
    assert window.load_preset(PRESETS / "metasgd-sinusoid.toml")
    assert window.findChild(QComboBox, "algorithmCombo").currentText() == "metasgd"
    assert window.config.algorithm_form.values()["lr_init_max"] == 0.1
    from workbench.core.config import ExperimentConfig

    assert window.current_config() == ExperimentConfig.load(PRESETS / "metasgd-sinusoid.toml")
    assert "*" not in window.windowTitle()
    window.config.algorithm_form.editors["meta_batch"].setValue(7)
    assert "*" in window.windowTitle()
    saved = tmp_path / "mine.toml"
    assert window.save_preset(saved)
    assert ExperimentConfig.load(saved).algorithm.meta_batch == 7 and "*" not in window.windowTitle()
    assert str(saved.resolve()) in window.presets.recent()


def test_a_bad_preset_leaves_the_panels_unchanged(window, tmp_path):
    window.load_preset(PRESETS / "anil-sinusoid.toml")
    before = window.current_config()
    bad = tmp_path / "bad.toml"
    bad.write_text((PRESETS / "maml-sinusoid.toml").read_text().replace("inner_lr = 0.01", "inner_lrr = 0.5"))
    assert not window.load_preset(bad)
    title, text = window.last_error
    assert str(bad) in text and "inner_lrr" in text and "did you mean 'inner_lr'" in text
    assert window.current_config() == before
    broken = tmp_path / "broken.toml"
    broken.write_text("[task\n")
    assert not window.load_preset(broken)
    assert "malformed TOML" in window.last_error[1] and window.current_config() == before


def test_invalid_values_are_refused_at_the_field(window, qtbot):
    lr = window.config.algorithm_form.editors["inner_lr"]
    assert isinstance(lr, QDoubleSpinBox) and lr.minimum() > 0 and lr.maximum() == 10.0
    lr.setValue(-3)
    assert lr.value() == lr.minimum()
    iters = window.config.run_form.editors["iterations"]
    assert isinstance(iters, QSpinBox)
    old = iters.value()
    iters.lineEdit().selectAll()
    qtbot.keyClicks(iters.lineEdit(), "abc")
    iters.interpretText()
    assert iters.value() == old
    assert "Allowed" in lr.toolTip() and "inner" in lr.toolTip()


def _wait_evaluations(window, qtbot, n, timeout=30_000):
    qtbot.waitUntil(lambda: len(window.train.adaptation.evaluations) >= n, timeout=timeout)


def test_train_pause_resume_stop_export_reopen(window, qtbot, tmp_path):
    assert window.load_preset(small_preset(tmp_path))
    start, pause, stop = (window.findChild(QPushButton, n) for n in ("startButton", "pauseButton", "stopButton"))
    qtbot.mouseClick(start, Qt.MouseButton.LeftButton)
    assert window.running and not window.config.isEnabled()
    _wait_evaluations(window, qtbot, 3)  # the one at iteration 0 and two more
    qtbot.waitUntil(lambda: window.train.task_map.map is not None, timeout=5_000)  # the live task map follows
    assert window.train.task_map.map.iteration in [e.iteration for e in window.train.adaptation.evaluations]

    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.runner.worker.is_paused and pause.text() == "Resume", timeout=5_000)
    qtbot.wait(200)
    at = window.runner.worker.iteration
    qtbot.wait(400)
    assert window.runner.worker.iteration == at  # paused
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.runner.worker.iteration > at + 10, timeout=10_000)
    assert not window.runner.worker.is_paused

    t0 = time.perf_counter()
    qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - t0 < 0.5  # the button answers at once
    qtbot.waitUntil(lambda: not window.running, timeout=15_000)
    assert window.config.isEnabled() and window.models.bundle_path is not None and window.models.bundle_path.is_file()
    assert window.task_maps.model_path == window.models.bundle_path  # a live map's cell opens this run's model
    assert window.findChild(QWidget, "iterationLabel").text().startswith("iteration ")

    # the plots hold what the trainer emitted (and wrote to the run directory)
    run = window.runner.run_dir
    with open(run / "metrics.csv", newline="") as f:
        metrics = list(csv.DictReader(f))
    np.testing.assert_array_equal(window.train.meta_loss.x.data, [float(r["iteration"]) for r in metrics])
    np.testing.assert_allclose(window.train.meta_loss.y.data, [float(r["loss"]) for r in metrics])
    with open(run / "eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    last_iter = max(int(r["iteration"]) for r in evals)
    last_mean = [float(r["mean"]) for r in evals if int(r["iteration"]) == last_iter]
    shown = window.train.adaptation.evaluations[-1]
    assert shown.iteration == last_iter
    np.testing.assert_allclose(shown.mean, last_mean)
    x, y = window.train.adaptation.mean.getData()
    np.testing.assert_allclose(10 ** y if window.train.adaptation.log.isChecked() else y, last_mean, rtol=1e-6)
    assert window.train.rollouts.payload is not None and window.train.rollouts.payload.pred.shape[1] == 5

    # curves stay after the run; export the model and reopen it
    exported = tmp_path / "exported.safetensors"
    assert window.export_model(exported) and exported.is_file()
    assert window.export_model(tmp_path / "exported.onnx")
    assert window.open_model(exported)
    qtbot.waitUntil(lambda: len(window.train.adaptation.evaluations) == 1 and window.train.rollouts.payload is not None,
                    timeout=10_000)
    files = window.models.export_plots(tmp_path / "plots")
    assert (tmp_path / "plots" / "meta_loss.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "adaptation.csv").read_text().strip()
    assert any(p.name.startswith("rollout_task") for p in files)


def test_a_bad_bundle_shows_a_dialog_and_changes_nothing(window, tmp_path):
    before = window.current_config()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    assert not window.open_model(bad)
    assert str(bad) in window.last_error[1]
    assert window.current_config() == before


def test_an_error_in_the_worker_shows_a_dialog_and_the_app_stays_usable(window, qtbot, tmp_path):
    window.load_preset(small_preset(tmp_path))
    combo = window.findChild(QComboBox, "deviceCombo")
    combo.addItem("cuda:9")
    combo.setCurrentText("cuda:9")
    window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=10_000)
    title, text = window.last_error
    assert title == "Training failed" and "run.device" in text and "cuda:9" in text
    assert window.findChild(QPushButton, "startButton").isEnabled()
    combo.setCurrentText("cpu")
    window.config.run_form.editors["iterations"].setValue(30)
    assert window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=20_000)
    assert window.models.bundle_path is not None


def test_closing_during_training_stops_the_worker_and_keeps_a_checkpoint(window, qtbot, tmp_path):
    window.load_preset(small_preset(tmp_path))
    window.start()
    qtbot.waitUntil(lambda: window.runner.worker is not None and window.runner.worker.iteration > 150, timeout=20_000)
    thread, run = window.runner.thread, window.runner.run_dir
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 2.0
    assert thread.isFinished()
    assert (run / "checkpoint.safetensors").is_file()
    assert '"stopped"' in (run / "status.json").read_text()


def test_list_and_seed_fields_refuse_bad_values(window, qtbot):
    from PySide6.QtWidgets import QLineEdit

    hidden = window.config.model_form.editors["hidden"]
    assert isinstance(hidden, QLineEdit)
    hidden.clear()
    qtbot.keyClicks(hidden, "40, 5000")  # 5000 is above 4096: the last 0 is refused as typed
    assert hidden.text() == "40, 500"
    hidden.setText("0, 40")
    assert not hidden.hasAcceptableInput()
    with pytest.raises(Exception, match="hidden = '0, 40': incomplete or out of range"):
        window.current_config()
    hidden.setText("40, 40")
    seed = window.config.run_form.editors["seed"]
    seed.setText("5000000000")  # beyond 32 bits, within the config's range: kept exactly
    assert window.current_config().run.seed == 5_000_000_000
    seed.clear()
    qtbot.keyClicks(seed, "12x")
    assert seed.text() == "12"


def test_preset_name_cannot_escape_the_runs_folder(window, qtbot, tmp_path):
    window.load_preset(small_preset(tmp_path, iterations=5))
    window.config.meta_form.editors["name"].setText("../../escaped/x")
    assert window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.runner.run_dir.parent == tmp_path / "runs" and window.runner.run_dir.name.startswith("escaped-x-")


def test_presets_cannot_be_swapped_during_a_run(window, qtbot, tmp_path):
    window.load_preset(small_preset(tmp_path))
    window.start()
    assert not window.load_preset(PRESETS / "anil-sinusoid.toml")
    assert not window.recent_menu.isEnabled()
    window.runner.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.load_preset(PRESETS / "anil-sinusoid.toml")


def test_closing_in_a_long_evaluation_still_keeps_a_checkpoint(window, qtbot, tmp_path):
    window.load_preset(small_preset(tmp_path, eval_tasks=60000, eval_interval=100000))
    window.start()
    qtbot.waitUntil(lambda: window.runner.worker is not None and window.runner.worker.pid is not None, timeout=10_000)
    qtbot.wait(1500)  # the trainer process is in its first (long) evaluation
    run = window.runner.run_dir
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 4.5  # 2 s for the worker, then it is detached
    deadline = time.time() + 90
    while not ((run / "status.json").exists() and '"stopped"' in (run / "status.json").read_text()):
        assert time.time() < deadline, "the trainer process did not stop on its own"
        time.sleep(0.2)
    assert (run / "checkpoint.safetensors").is_file()


def test_adaptation_plot_shows_references_and_the_step_label(window):
    from workbench.core import events as ev

    per = np.array([[0.5, 0.6, 0.7], [0.4, 0.5, 0.8]])
    e = ev.Evaluation(10, "return", [0, 1, 2], per, per.mean(0), np.full(3, 0.05), trained_steps=2,
                      references={"Thompson sampling": 0.58, "UCB1": 0.56}, step_label="episode within the trial")
    window.train.set_metric("return")
    window.train.adaptation.add_evaluation(e)
    p = window.train.adaptation.plot.getPlotItem()
    assert p.getAxis("bottom").labelText == "episode within the trial"
    assert [ln.value() for ln in window.train.adaptation.reference_lines] == [0.58, 0.56]
    assert p.getAxis("left").labelText == "held-out return"
    assert "episode" in window.train.adaptation.to_csv().splitlines()[0]


def test_a_finished_run_appears_in_the_runs_panel_and_the_sweep_dialog_uses_the_current_config(window, qtbot, tmp_path):
    from PySide6.QtWidgets import QTreeWidget, QTableWidget

    assert window.load_preset(small_preset(tmp_path, iterations=150))
    assert window.runs_panel.runs_dir == tmp_path / "runs"  # $WORKBENCH_RUNS, as the trainer writes
    assert window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    qtbot.waitUntil(lambda: any(r.status == "finished" for r in window.runs_panel.runs()), timeout=10_000)
    (run,) = window.runs_panel.runs()
    assert run.preset == "small" and run.iterations == 150 and run.path == window.runner.run_dir
    table = window.runs_panel.findChild(QWidget, "runsTable")
    assert isinstance(table, (QTreeWidget, QTableWidget))
    # the run's model opens in the evaluation view from the panel
    window.runs_panel.select_runs([run.path])
    with qtbot.waitSignal(window.runs_panel.openModelRequested, timeout=5_000):
        window.runs_panel.findChild(QPushButton, "openRunModelButton").click()
    qtbot.waitUntil(lambda: len(window.train.adaptation.evaluations) == 1, timeout=30_000)
    # Run -> Sweep... plans from the forms, not from the file on disk
    window.config.algorithm_form.editors["inner_lr"].setValue(0.02)
    window.findChild(QAction, "sweepAction").trigger()
    dialog = window.sweep_dialog
    assert dialog is not None and dialog.isVisible() and dialog.objectName() == "sweepDialog"
    trials = dialog.plan().trials
    assert trials and all(t.config["algorithm"]["inner_lr"] == 0.02 for t in trials)
    assert Path(dialog.runs_dir) == tmp_path / "runs"
    window.show_sweep_runs("no-such-sweep")  # an unknown sweep selects nothing and raises the panel
    assert window.runs_panel.selected_runs() == []


def test_the_playground_takes_the_finished_runs_model_and_refuses_what_it_cannot_play(window, qtbot, tmp_path):
    tab = window.findChild(QWidget, "playgroundTab")
    assert tab is window.playground and tab.page() is None
    assert window.load_preset(small_preset(tmp_path, iterations=100))
    assert window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert tab.model_path is None  # taken when the tab is shown (loading it at the run's end stalled the window)
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.model_path is not None, timeout=5_000)
    assert tab.model_path == window.models.bundle_path
    assert tab.page().objectName() == "sinusoidPlayground"
    assert tab.baseline is None and "No pretrained baseline" in tab.message_text()
    # a bundle that is not one: the reason in the tab, the model kept
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a bundle")
    assert not tab.set_model(bad)
    assert "bad.safetensors" in tab.message_text() and tab.model_path == window.models.bundle_path


def test_a_typed_unconfirmed_value_is_taken_by_every_way_to_start(window, qtbot, tmp_path):
    """Finding 1 of the desktop issue: Ctrl+R (the action) read the old value of a field still being typed."""
    from PySide6.QtWidgets import QAbstractSpinBox

    assert window.load_preset(small_preset(tmp_path, iterations=20000))
    box = window.config.run_form.editors["iterations"]
    assert isinstance(box, QAbstractSpinBox)
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "3000")  # no Enter, no Tab
    assert window.current_config().run.iterations == 3000  # what Start, the menu, the sweep and Save read
    window.act_start.trigger()  # the Ctrl+R action
    assert window.running and window.runner.total_iterations == 3000
    window.runner.stop()
    window.runner.thread.wait(10_000)


def test_slow_iterations_show_seconds_per_iteration_and_elapsed_leaves_out_pauses(window, qtbot, monkeypatch):
    from workbench.gui import main_window as mw
    from workbench.gui import run_status

    assert mw.fmt_speed(640.0) == "640 it/s" and mw.fmt_speed(0.25) == "4.0 s/it" and mw.fmt_speed(0.0) == ""
    clock = [100.0]
    monkeypatch.setattr(run_status.time, "monotonic", lambda: clock[0])
    window.runner.clock.start()
    clock[0] = 110.0
    assert window.runner.clock.elapsed() == 10.0
    window.runner._on_paused(5)
    clock[0] = 150.0
    assert window.runner.clock.elapsed() == 10.0  # paused: the clock stands
    window.runner._on_resumed(5)
    clock[0] = 155.0
    assert window.runner.clock.elapsed() == 15.0
    window.runner.clock.ended_at = 155.0
    clock[0] = 500.0
    assert window.runner.clock.elapsed() == 15.0  # ended: frozen


def test_a_typed_decimal_point_means_the_same_in_a_decimal_comma_locale(qtbot):
    """Finding 16: with de_DE, "0.5" typed into inner lr became 5.0 (the dot read as a group separator)."""
    from PySide6.QtCore import QLocale

    from workbench.algorithms.maml import MAMLConfig
    from workbench.gui.forms import ConfigForm

    previous = QLocale()
    QLocale.setDefault(QLocale("de_DE"))
    try:
        form = ConfigForm(MAMLConfig)
        qtbot.addWidget(form)
        for typed, expected in (("0.5", 0.5), ("0.003", 0.003), ("3.5", 3.5)):
            box = form.editors["inner_lr"]
            box.lineEdit().selectAll()
            qtbot.keyClicks(box.lineEdit(), typed)
            assert form.values()["inner_lr"] == pytest.approx(expected)
            assert "," not in box.text()
    finally:
        QLocale.setDefault(previous)


def test_quitting_while_a_model_is_being_evaluated_exits_cleanly(tmp_path):
    """Finding 17: File → Open model… evaluating when the app quits aborted it (exit 134): the evaluation
    is cancelled and awaited on close."""
    import subprocess
    import sys

    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "workbench", "train", str(small_preset(tmp_path, iterations=20)),
                        "--out", str(run), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = f"""
import time
from PySide6.QtCore import QTimer
from workbench.gui.app import make_app
from workbench.gui.main_window import MainWindow
app = make_app()
w = MainWindow()
w.show()
def go():
    assert w.open_model({str(run / "model.safetensors")!r}, tasks=3000)
    QTimer.singleShot(300, w.close)
    QTimer.singleShot(400, app.quit)
QTimer.singleShot(200, go)
app.exec()
assert not w.models.jobs.active
print("closed")
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", WORKBENCH_RUNS=str(tmp_path / "runs"),
               WORKBENCH_SETTINGS=str(tmp_path / "settings.ini"))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "closed" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_the_shipped_presets_menu_lists_names_by_family_with_descriptions_as_tips(window):
    """Finding 12: entries carried whole descriptions, and the menu spanned the screen."""
    from workbench.services.presets import list_presets

    presets = {i.name: i for i in list_presets() if i.readable}
    families = {a.text(): a.menu() for a in window.shipped_menu.actions()}
    assert set(families) == {i.family for i in presets.values()}
    seen = 0
    for family, sub in families.items():
        for a in sub.actions():
            info = presets[a.text()]  # the entry is the preset's name
            assert info.family == family and a.toolTip() == info.description == a.statusTip()
            seen += 1
        width = sub.sizeHint().width()
        assert width < 400, (family, width)
    assert seen == len(presets)


def test_loading_another_preset_clears_the_last_runs_views_and_status(window, qtbot, tmp_path):
    """Finding 6: the plots kept the previous run (wrong axes) and the status bar its 'Run finished'."""
    assert window.load_preset(small_preset(tmp_path, iterations=30))
    window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=60_000)
    assert "Run finished" in window.statusBar().currentMessage()
    assert window.train.adaptation.evaluations and window.train.meta_loss.x.data.size
    assert window.load_preset(PRESETS / "maml-trpo-navigation.toml")
    assert not window.train.adaptation.evaluations and window.train.meta_loss.x.data.size == 0
    assert window.train.rollouts.payload is None
    assert window.train.meta_loss.plot.getPlotItem().getAxis("left").labelText == "return"
    assert "Run finished" not in window.statusBar().currentMessage()
    # finding 8: the empty adaptation plot is labelled for the new run, with its steps, not "held-out loss" −4…4
    p = window.train.adaptation.plot.getPlotItem()
    assert p.getAxis("left").labelText == "held-out return"
    lo, hi = p.viewRange()[0]
    assert -0.5 < lo <= 0 and hi >= window.config.run_form.values()["eval_steps"]


def test_the_export_dialog_offers_what_the_model_can_be_and_starts_at_the_run(window, tmp_path):
    """Finding 13: ONNX was offered for models that have no ONNX form, the dialog started in the home folder
    as 'model.safetensors', and the status said 'Model model.safetensors'."""
    import subprocess
    import sys

    from workbench.gui.main_window import bundle_label

    runs = {}
    for name, preset, extra in (("mlp-run", str(small_preset(tmp_path, iterations=5)), []),
                                ("conv-run", "protonet-glyphs-5w1s",
                                 ["--set", "task.background_classes=40", "--set", "task.evaluation_classes=10",
                                  "--set", "model.channels=4", "--set", "run.eval_tasks=2"])):
        out = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "workbench", "train", preset, "--out", str(out), "--quiet",
                            "--iterations", "2", *extra], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        runs[name] = out / "model.safetensors"
    window.settings.setValue("lastModelDir", str(tmp_path / "somewhere-else"))  # Open model… does not move exports
    window.models.bundle_path = runs["mlp-run"]
    start, filters = window.models.export_choices()
    assert start == tmp_path / "mlp-run" / "mlp-run.safetensors" and "*.onnx" in filters
    window.models.bundle_path = runs["conv-run"]
    start, filters = window.models.export_choices()
    assert start.name == "conv-run.safetensors" and "onnx" not in filters.lower()
    assert bundle_label(runs["conv-run"]) == "conv-run" and bundle_label(tmp_path / "mine.safetensors") == "mine"
