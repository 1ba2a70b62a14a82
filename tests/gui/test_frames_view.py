"""The rollout view plays rendered frames before / after adaptation side by side, and families that need a
missing dependency are shown greyed out with the reason."""
import dataclasses

import numpy as np

from workbench.core.payloads import Frames
from workbench.gui.plots import FramesRenderer, RolloutView


def frames_payload(steps=2, n=6, h=40, w=60):
    frames = np.zeros((steps, n, h, w, 3), np.uint8)
    for s in range(steps):
        for i in range(n):
            frames[s, i, :, :, s] = 20 * i + 10  # before: red ramps, after: green ramps
    return Frames(family="test", frames=frames, returns=np.array([[-50.0, -10.0]]), steps=[0, 1],
                  frame_steps=[0, 1], fps=30, task={"length": 0.5}, title="one episode")


def test_frames_play_side_by_side_and_stop_when_hidden(qtbot):
    view = RolloutView()
    qtbot.addWidget(view)
    view.resize(700, 450)  # a Rollouts dock: room for whole titles (a narrower one elides them)
    view.show()
    view.show_render(10, frames_payload())
    r = view.stack.currentWidget()
    assert isinstance(r, FramesRenderer) and r.timer.isActive()
    assert r.timer.interval() <= 1000 // 15  # at least 15 fps
    assert "before adaptation" in r.panels[0].titleLabel.text and "-50.0" in r.panels[0].titleLabel.text
    assert "after 1 step" in r.panels[1].titleLabel.text and "-10.0" in r.panels[1].titleLabel.text
    seen = set()
    for _ in range(8):
        r.advance()
        before, after = r.images[0].image, r.images[1].image
        assert before.shape == (40, 60, 3) and before[..., 1].max() == 0 and after[..., 0].max() == 0
        seen.add(int(before[0, 0, 0]))
    assert len(seen) == 6  # it cycles through every frame of the episode
    qtbot.waitUntil(lambda: r.index > 10, timeout=3000)  # the timer itself plays them
    view.hide()
    assert not r.timer.isActive()


def test_unavailable_family_is_greyed_out_with_its_reason(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_SETTINGS", str(tmp_path / "settings.ini"))
    from PySide6.QtCore import Qt

    from workbench.core.registry import FAMILIES
    from workbench.gui import MainWindow

    cls = FAMILIES.get("tabular")
    monkeypatch.setattr(cls, "available", classmethod(lambda c: (False, "needs the flux capacitor")), raising=False)
    w = MainWindow()
    qtbot.addWidget(w)
    combo = w.config.family_combo
    i = combo.findData("tabular")
    assert i >= 0 and not combo.model().item(i).isEnabled()
    assert "flux capacitor" in combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
    assert combo.model().item(combo.findData("navigation")).isEnabled()


def test_frames_titles_use_the_algorithms_step_names(qtbot):
    view = RolloutView()
    qtbot.addWidget(view)
    payload = dataclasses.replace(
        frames_payload(), steps=[0, 1, 2], frame_steps=[0, 2], returns=np.array([[-50.0, -30.0, -10.0]]),
        step_names=["no context (prior)", "after 1 episode of context", "after 2 episodes of context"])
    view.show_render(3, payload)
    r = view.stack.currentWidget()
    assert "no context" in r.panels[0].titleLabel.text and "-50.0" in r.panels[0].titleLabel.text
    assert "after 2 episodes of context" in r.panels[1].titleLabel.text and "-10.0" in r.panels[1].titleLabel.text
