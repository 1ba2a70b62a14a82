"""The RL playground page, offscreen, driven like a user: a real mouse click on the navigation plot sets the
goal and adapts (off the GUI thread), the trajectories end closer to the goal after adaptation than before,
the baseline is drawn beside; a click outside the goal range says so and runs nothing; Cancel stops a long
adaptation mid-run and gives the controls back; physics families play frames; bandits have no playground."""
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt, QTimer
from PySide6.QtWidgets import QLabel, QPushButton, QSlider, QSpinBox, QWidget

from conftest import PRESETS
from workbench.services.bundle import load_bundle
from workbench.gui.playground_rl import RLPlayground

DATA = Path(__file__).resolve().parents[1] / "data"
WINDOW_PAGES = [(1390, 830), (1015, 700)]  # the Playground tab's page in a 1400×900 and a 1024×768 window


@pytest.fixture(scope="module")
def bundles():
    return (load_bundle(DATA / "navigation-maml-trpo.safetensors"),
            load_bundle(DATA / "navigation-pretrained.safetensors"))


@pytest.fixture
def page(qtbot, bundles):
    p = RLPlayground()
    qtbot.addWidget(p)
    p.resize(1300, 800)
    assert p.set_models(*bundles)
    p.show()
    qtbot.waitExposed(p)
    yield p
    if p.busy():
        p.cancel()
        qtbot.waitUntil(lambda: not p.busy(), timeout=10_000)


def pixel(view, x, y) -> QPoint:
    """Widget pixel (in the plot's viewport) of data point (x, y), through the ViewBox."""
    scene = view.plot.getViewBox().mapViewToScene(QPointF(x, y))
    return view.widget.mapFromScene(scene)


def click(qtbot, view, x, y) -> None:
    qtbot.mouseClick(view.widget.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     pixel(view, x, y))


def tiny_bundle_path(tmp_path, preset, *overrides, name=None) -> Path:
    """An untrained bundle of a shipped preset, exported to ``tmp_path / name``."""
    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml", ["run.iterations=0", "run.threads=1",
                                                             "run.eval_tasks=2", *overrides])
    return Path(Trainer(cfg).export(tmp_path / (name or f"{preset}.safetensors")))


def tiny_bundle(tmp_path, preset, *overrides):
    return load_bundle(tiny_bundle_path(tmp_path, preset, *overrides))


def test_widgets_have_their_object_names(page):
    for name in ("rlPlayground", "playgroundParam_goal_x", "playgroundParam_goal_y", "playgroundRLStepsSpin",
                 "playgroundRLRunButton", "playgroundRLCancelButton", "playgroundNavigationPlot",
                 "playgroundBaselineNavigationPlot", "playgroundReturnPlot", "playgroundRLMessage"):
        assert page.objectName() == name or page.findChild(QWidget, name) is not None, name
    assert isinstance(page.findChild(QSlider, "playgroundParam_goal_x"), QSlider)
    assert page.findChild(QPushButton, "playgroundRLRunButton").text() == "Adapt"
    assert RLPlayground.supports(page.model)


def test_clicking_a_goal_adapts_and_the_trajectories_end_closer_after_adaptation(qtbot, page):
    goal = (0.35, 0.3)
    with qtbot.waitSignal(page.adapted, timeout=15_000) as blocker:
        click(qtbot, page.nav, *goal)
        assert page.busy() and not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    result = blocker.args[0]
    # the click set the goal: the sliders and their value labels follow it
    assert page.values()["goal_x"] == pytest.approx(goal[0], abs=0.01)
    assert page.values()["goal_y"] == pytest.approx(goal[1], abs=0.01)
    x_slider = page.findChild(QSlider, "playgroundParam_goal_x")
    assert x_slider.value() == pytest.approx((goal[0] + 0.5) * 1000, abs=15)
    assert page.findChild(QLabel, "playgroundParamValue_goal_x").text().startswith("0.3")
    np.testing.assert_allclose(result.payload.goals[0], goal, atol=0.01)
    # what is drawn: where the trajectories ended before and after the adaptation step
    g = np.array(goal)
    before = np.linalg.norm(page.nav.path_ends(0) - g, axis=1).mean()
    after = np.linalg.norm(page.nav.path_ends(len(result.steps) - 1) - g, axis=1).mean()
    assert after < 0.7 * before, (before, after)
    x, y = page.nav.goal.getData()
    assert (x[0], y[0]) == pytest.approx(goal, abs=0.01)
    # the baseline beside it, and in the return chart as a dashed line
    assert len(page.nav_baseline.path_ends(0)) > 0
    assert "Pretrained baseline: pretrained-rl" in page.nav_baseline.caption.text()
    bx, by = page.baseline_curve.getData()
    assert list(bx) == [0, 1] and np.allclose(by, result.baseline_returns)
    assert page.baseline_curve.opts["pen"].style() == Qt.PenStyle.DashLine
    assert page.model_curve.opts["pen"].style() == Qt.PenStyle.SolidLine
    labels = [label.text for _, label in page.returns.getPlotItem().legend.items]
    assert labels == ["meta-learned (maml-trpo)", "baseline (pretrained-rl)"]
    assert page.returns.getPlotItem().getAxis("bottom").labelText == "inner step"
    assert "distance to goal" in page.nav.caption.text() and "maml-trpo" in page.summary.text()
    assert page.nav.caption.fits() and page.nav_baseline.caption.fits()  # nothing cut
    assert page.run_button.isEnabled() and not page.cancel_button.isEnabled() and not page.busy()


def test_a_click_outside_the_goal_range_says_so_and_runs_nothing(qtbot, page):
    with qtbot.waitSignal(page.message, timeout=2000) as blocker:
        click(qtbot, page.nav, 0.57, -0.2)  # inside the view, outside the goal square
    text, error = blocker.args
    assert error and "outside the goal range [-0.5, 0.5]²" in text and "0.57" in text
    assert page.findChild(QLabel, "playgroundRLMessage").text() == text
    assert not page.busy() and page.result is None
    assert page.values()["goal_x"] == pytest.approx(0.3)  # the goal did not move
    # slider values are always in range; values set otherwise are checked when Adapt is pressed
    page.set_values({"goal_y": 0.9})
    assert not page.start() and "goal_y = 0.9 is outside the navigation family's range [-0.5, 0.5]" in \
        page.message_text()


def test_cancel_stops_a_long_adaptation_and_gives_the_controls_back(qtbot, page):
    page.trajectories = 3000  # ~10 slow steps: several seconds if it ran to the end
    page.findChild(QSpinBox, "playgroundRLStepsSpin").setValue(10)
    ticks = []
    probe = QTimer()
    probe.timeout.connect(lambda: ticks.append(time.monotonic()))
    probe.start(20)
    t0 = time.monotonic()
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert page.busy() and not page.findChild(QSlider, "playgroundParam_goal_x").isEnabled()
    qtbot.wait(300)
    assert page.busy()  # still running: cancel it mid-run
    with qtbot.waitSignal(page.finished, timeout=10_000) as blocker:
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    probe.stop()
    assert blocker.args == ["cancelled"]
    assert time.monotonic() - t0 < 3.0
    assert page.message_text() == "Adaptation cancelled" and page.status.text() == "cancelled"
    assert page.run_button.isEnabled() and not page.cancel_button.isEnabled() and not page.busy()
    assert page.findChild(QSlider, "playgroundParam_goal_x").isEnabled() and page.steps_spin.isEnabled()
    assert len(ticks) > 5  # the event loop kept running while the worker adapted
    # and it adapts again afterwards
    page.trajectories = None
    page.steps_spin.setValue(1)
    with qtbot.waitSignal(page.adapted, timeout=10_000):
        page.start()


def test_physics_family_plays_frames_of_model_and_baseline_large_at_both_window_sizes(qtbot, tmp_path):
    from workbench.gui.playground import PlaygroundTab

    small = ("algorithm.trajectories=3", "task.horizon=40")
    model = tiny_bundle_path(tmp_path, "maml-trpo-cartpole", *small, name="model.safetensors")
    base = tiny_bundle_path(tmp_path, "maml-trpo-cartpole", "algorithm.name=\"pretrained-rl\"", *small,
                            name="baseline.safetensors")
    tab = PlaygroundTab(tmp_path)
    qtbot.addWidget(tab)
    tab.resize(*WINDOW_PAGES[0])
    tab.show()
    qtbot.waitExposed(tab)
    assert tab.set_model(model) and tab.set_baseline(base)
    page = tab.page()
    assert page.objectName() == "rlPlayground" and page.view_stack.currentWidget() is page.frames_page
    names = [n for n in ("pole_length", "pole_mass", "cart_mass", "gravity", "force")]
    for n in names:
        assert page.findChild(QSlider, f"playgroundParam_{n}") is not None
    slider = page.findChild(QSlider, "playgroundParam_gravity")
    slider.setValue(slider.maximum())
    assert page.values()["gravity"] == pytest.approx(14.7)
    assert page.findChild(QLabel, "playgroundParamValue_gravity").text() == "14.7"
    with qtbot.waitSignal(page.adapted, timeout=15_000) as blocker:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    r = blocker.args[0]
    assert r.task["gravity"] == pytest.approx(14.7)
    assert page.frames.frames is not None and page.frames.frames.shape[0] == 2 and page.frames.timer.isActive()
    assert page.frames_baseline_stack.currentWidget() is page.frames_baseline
    assert page.frames_baseline.frames is not None
    assert "before adaptation" in page.frames.panels[0].titleLabel.text
    assert len(page.baseline_curve.getData()[0]) == 2
    for size in WINDOW_PAGES:  # the tab as a full page of a 1400×900 and of a 1024×768 window
        tab.resize(*size)
        qtbot.waitUntil(lambda: tab.size().width() == size[0])
        qtbot.wait(30)
        heights = page.frames_page.frame_heights()  # model and baseline, before and after: drawn heights
        assert len(heights) == 4 and min(heights) >= 160, (size, heights)
        for w in (page.frames, page.frames_baseline, page.run_button, page.returns):
            at = QRect(w.mapTo(tab, QPoint(0, 0)), w.size())
            assert tab.rect().contains(at), (size, w.objectName(), at)
        assert page.column.verticalScrollBar().maximum() == 0  # the controls fit: nothing scrolls


def test_a_bandits_bundle_is_refused_with_a_message(qtbot, tmp_path, bundles):
    model = tiny_bundle(tmp_path, "rl2-bandits")
    page = RLPlayground()
    qtbot.addWidget(page)
    assert not RLPlayground.supports(model) and "no playground" in RLPlayground.why_not(model)
    assert RLPlayground.why_not(tiny_bundle(tmp_path, "maml-sinusoid")) == ""  # another page's business
    with qtbot.waitSignal(page.message, timeout=2000) as blocker:
        assert not page.set_models(model)
    assert blocker.args == ["The bandits family has no playground: its tasks are random tables; use Open model… "
                            "to evaluate it", True]
    assert "no playground" in page.message_text() and not page.run_button.isEnabled()
    assert page.set_models(*bundles) and page.run_button.isEnabled()  # and a good model afterwards works
