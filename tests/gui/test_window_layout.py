"""Issue 14's window findings: the window fits small screens and never grows past the screen (4, 18), long
names never widen it (19), a family or algorithm switch loads that pair's settings (5), the controls come
back the moment a run ends (9), and the trainer process leaves without the interpreter's teardown (10)."""
import dataclasses
import time
from types import SimpleNamespace

import pytest
from PySide6.QtWidgets import QApplication

from conftest import PRESETS

from .test_main_window import small_preset  # (the window fixture: tests/gui/conftest.py)


def test_the_default_size_fits_the_screen_and_the_window_is_usable_at_1024_wide(window):
    area = window.screen().availableGeometry()
    width, height = window.default_size()
    assert width <= min(1400, area.width()) and height <= area.height()
    for i in range(window.tabs.count()):  # every page: Train, Runs, Playground
        window.tabs.setCurrentIndex(i)
        QApplication.processEvents()
        assert window.minimumSizeHint().width() <= 1024, window.tabs.tabText(i)
        assert window.minimumSizeHint().height() <= 740, window.tabs.tabText(i)


def test_the_default_size_is_capped_to_a_small_screen(window, monkeypatch):
    from PySide6.QtCore import QRect

    small = SimpleNamespace(availableGeometry=lambda: QRect(0, 0, 1366, 728))
    monkeypatch.setattr(window, "screen", lambda: small)
    assert window.default_size() == (1366, 688)


def test_long_numbers_and_names_never_widen_the_window(window, qtbot, tmp_path):
    window.resize(1024, 740)
    QApplication.processEvents()
    before = window.minimumSizeHint().width()
    last = SimpleNamespace(iteration=12_345_678, its_per_sec=0.0004)
    window.status.show_iteration(last, 99_999_999, running=True)
    window.status.show_elapsed(10 ** 7)
    window.status.set("deviceLabel", "device cuda:0 (NVIDIA H200 with a very long marketing name)")
    window.statusBar().showMessage("Run finished at iteration 99999999; model saved in " + "x" * 300, 0)
    name = "n" * 200  # a preset file name with no spaces to wrap at
    preset = tmp_path / f"{name}.toml"
    preset.write_text((PRESETS / "maml-sinusoid.toml").read_text().replace('name = "maml-sinusoid"',
                                                                            f'name = "{"m" * 404}"'))
    assert window.load_preset(preset)
    QApplication.processEvents()
    assert window.minimumSizeHint().width() <= max(before, 1024)
    assert window.width() <= 1024
    label = window.config.preset_name
    assert label.toolTip() == name and label.displayed().endswith("…")  # elided, the whole name as tooltip
    assert window.findChild(type(label), "presetPathLabel").toolTip() == str(preset)


@pytest.mark.parametrize("family, algorithm", [("pendulum", None), (None, "reptile")])
def test_a_family_or_algorithm_switch_loads_that_pairs_settings_unnamed(window, family, algorithm):
    from workbench.core.config import ExperimentConfig
    from workbench.gui.preset_controller import pair_defaults

    assert window.load_preset(PRESETS / "maml-sinusoid.toml")
    if family:
        window.config.family_combo.setCurrentText(family)
    if algorithm:
        window.config.algorithm_combo.setCurrentText(algorithm)
    config = window.current_config()
    expected, source = pair_defaults(config.family, config.algorithm_name)
    assert config.family == (family or "sinusoid") and config.algorithm_name == (algorithm or config.algorithm_name)
    assert config.meta.name != "maml-sinusoid" and config.meta.name == expected.meta.name
    assert config.run.iterations == expected.run.iterations and config.model == expected.model
    assert window.windowTitle().startswith("untitled*") and window.presets.path is None
    assert source in window.config.preset_where.text()
    if family:  # a shipped preset of the pair is what the switch loads
        shipped = ExperimentConfig.load(PRESETS / f"{config.meta.name}.toml")
        assert dataclasses.asdict(config.task) == dataclasses.asdict(shipped.task)


def test_a_pair_without_a_shipped_preset_gets_the_defaults_named_after_it():
    from workbench.gui.preset_controller import pair_defaults

    config, source = pair_defaults("sinusoid", "metasgd", presets=[])
    assert config.meta.name == "metasgd-sinusoid" and "defaults" in source
    config, _ = pair_defaults("tabular", "maml", presets=[])  # MAML cannot train there: an algorithm that can
    assert config.algorithm_name != "maml" and config.family == "tabular"


def test_the_controls_come_back_the_moment_the_run_finishes(window, qtbot, tmp_path):
    """Finding 9: after Stop every button stayed grey for 2-4 s while the trainer process exited."""
    assert window.load_preset(small_preset(tmp_path, iterations=30))
    seen = {}

    def on_finished(event):  # runs right after the window's own handler
        seen.update(start=window.start_button.isEnabled(), stop=window.stop_button.isEnabled(),
                    panel=window.config.isEnabled(), running=window.running, status=event.status)

    window.runner.finished.connect(on_finished)
    assert window.start()
    qtbot.waitUntil(lambda: bool(seen), timeout=60_000)
    assert seen == {"start": True, "stop": False, "panel": True, "running": False, "status": "finished"}
    qtbot.waitUntil(lambda: not window.runner.retiring, timeout=20_000)  # the thread joined its process


def test_the_trainer_process_leaves_without_the_interpreters_teardown(monkeypatch, tmp_path):
    """Finding 10: after its last message the trainer process left through Python's teardown (1-3 s of
    freeing torch) while the app waited for it; it now exits at once, its files written."""
    from workbench.core.config import ExperimentConfig
    from workbench.services import remote

    config = ExperimentConfig.load(small_preset(tmp_path, iterations=3))
    sent, exits = [], []

    class Conn:
        def send(self, msg):
            sent.append(msg[0])

        def close(self):
            sent.append("closed")

    class Flag:
        def is_set(self):
            return False

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    import os

    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        remote.child_main(config.to_dict(), str(tmp_path / "run"), False, Conn(), Flag(), Flag())
    assert exits == [0] and sent[-2:] == ["done", "closed"]
    run = tmp_path / "run"
    assert (run / "model.safetensors").is_file() and '"finished"' in (run / "status.json").read_text()
    assert any(p.name.startswith("events.out.tfevents") and p.stat().st_size > 0 for p in run.iterdir())


@pytest.mark.parametrize("preset, word", [("rl2-bandits", "episode within the trial"),
                                          ("pearl-navigation", "episodes of context"), ("maml-sinusoid", "inner step")])
def test_an_empty_adaptation_plot_names_the_algorithms_steps(window, preset, word):
    """Finding 8: before the first evaluation an RL² or PEARL plot said 'inner step'."""
    assert window.load_preset(PRESETS / f"{preset}.toml")
    assert window.train.adaptation.plot.getPlotItem().getAxis("bottom").labelText == word


def test_a_long_description_is_whole_in_its_fields_tooltip(window):
    """Finding 14: the narrow configuration dock cut the preset's description and source."""
    description = "A long description of this setup " * 8
    assert window.load_preset(PRESETS / "maml-sinusoid.toml")
    assert window.config.meta_form.editors["source"].toolTip().startswith(window.current_config().meta.source)
    field = window.config.meta_form.editors["description"]
    field.setText(description)
    assert field.toolTip().startswith(description) and "Default" in field.toolTip()
    field.setText("")
    assert field.toolTip().startswith("One line")  # the help text alone


def test_an_evaluation_the_views_moved_on_from_is_dropped(window, qtbot, tmp_path):
    """Review: an Open model… evaluation drew into whatever the window showed when it ended (another preset,
    a live run).  Loading a preset, starting a run or opening another model cancels it and drops its result."""
    from workbench.gui import model_actions

    gate = __import__("threading").Event()
    real = model_actions._evaluate

    def slow(model, tasks, seed, cancel):
        gate.wait(10)
        return real(model, tasks, seed, cancel)

    model_actions._evaluate = slow
    try:
        assert window.open_model(PRESETS.parent / "tests" / "data" / "navigation-maml-trpo.safetensors", tasks=4)
        job = window.models._current
        assert window.models.evaluating and not window.act_open_model.isEnabled()
        assert window.load_preset(PRESETS / "maml-sinusoid.toml")  # the views now show another experiment
        assert job.cancelled and not window.models.evaluating and window.act_open_model.isEnabled()
        gate.set()
        qtbot.waitUntil(lambda: not job.running, timeout=20_000)
        qtbot.wait(100)
        assert window.train.adaptation.evaluations == []  # nothing of the navigation model was drawn
    finally:
        model_actions._evaluate = real
        gate.set()


def test_no_preset_loads_during_a_run_even_from_the_recent_menu(window, qtbot, tmp_path):
    """Review: Save preset as… during a run re-enabled Recent presets, whose entries loaded mid-run."""
    assert window.load_preset(PRESETS / "maml-trpo-navigation.toml")
    assert window.load_preset(small_preset(tmp_path))
    assert window.start()
    assert window.save_preset(tmp_path / "saved.toml")
    assert not window.recent_menu.isEnabled()
    entry = [a for a in window.recent_menu.actions() if "navigation" in a.text()][0]
    entry.trigger()  # as if the menu had been left enabled
    assert window.current_config().family == "sinusoid" and window.running and not window.config.isEnabled()
    window.runner.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.recent_menu.isEnabled()


def test_hidden_frames_do_not_animate(qtbot):
    """Review: a frames payload shown while its tab was hidden animated at ~30 fps off screen."""
    import sys

    sys.path.insert(0, str(PRESETS.parent / "tests"))
    from test_payloads import rl_render

    from workbench.gui.plots import RolloutView

    view = RolloutView()
    qtbot.addWidget(view)  # never shown: like a view on a tab that is not current
    view.show_render(1, rl_render("cartpole", tasks=1, n_traj=1, horizon=12)[0])
    renderer = view.stack.currentWidget()
    assert not renderer.timer.isActive()
    view.show()
    qtbot.waitUntil(renderer.timer.isActive, timeout=2000)


def test_an_idle_window_does_not_refresh_its_status(window, monkeypatch, qtbot):
    """Review: once a run had ended, the status labels were refreshed on every 33 ms tick forever."""
    calls = []
    monkeypatch.setattr(window.runner, "_update_status", lambda: calls.append(1))
    qtbot.wait(300)
    assert calls == []
