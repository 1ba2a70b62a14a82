"""The rollout view draws every family's typed render payload with the renderer registered for its view."""
import dataclasses

import numpy as np
import pytest

from test_payloads import VIEWS, regression_render, rl_render
from .test_classification_view import make_payload
from workbench.core.payloads import RenderPayload
from workbench.gui.plots import RENDERERS, RolloutView

CASES = {
    "regression-1d": lambda: regression_render(tasks=2, steps=(0, 1, 2))[0],
    "trajectories-2d": lambda: rl_render("navigation", tasks=2, horizon=8)[0],
    "bandit-arms": lambda: rl_render("bandits", tasks=2, arms=4)[0],
    "state-visitation": lambda: rl_render("tabular", tasks=2, horizon=6)[0],
    "frames": lambda: rl_render("cartpole", tasks=1, n_traj=1, horizon=12)[0],
    "classified-images": lambda: make_payload(),
}


def test_every_payload_view_has_a_renderer():
    assert set(RENDERERS) == set(VIEWS) == set(CASES)
    for view, cls in RENDERERS.items():
        assert cls.view == view


@pytest.mark.parametrize("view", sorted(CASES))
def test_rollout_view_shows_each_payload(qtbot, view):
    w = RolloutView()
    qtbot.addWidget(w)
    w.show()
    payload = CASES[view]()
    assert payload.view == view
    with qtbot.waitSignal(w.payloadShown) as shown:
        w.show_render(5, payload)
    assert shown.args == [view]
    renderer = w.stack.currentWidget()
    assert isinstance(renderer, RENDERERS[view]) and w.payload is payload and w.iteration == 5
    assert len(renderer.plot_items()) >= 1 and "iteration 5" in w.iteration_label.text()
    if view == "classified-images":
        assert "green: right" in w.caption.text()
    elif view == "frames":
        assert payload.title in w.caption.text()
    else:
        assert "red: before adaptation; green: after " in w.caption.text()
    w.show_render(6, payload)  # the same view again reuses its renderer
    assert w.stack.currentWidget() is renderer and len(w.renderers) == 1


def test_regression_panels_are_titled_with_the_task_parameters(qtbot):
    w = RolloutView()
    qtbot.addWidget(w)
    payload = CASES["regression-1d"]()
    w.show_render(1, payload)
    panels = w.stack.currentWidget().panels
    assert len(panels) == 2 and len(panels[0]["steps"]) == 3
    name = payload.task_param_names[0]
    assert panels[1]["title"].startswith(f"{name} {payload.task_params[1, 0]:.2f}")
    _, y = panels[0]["steps"][2].getData()
    np.testing.assert_allclose(y, payload.pred[0, 2], rtol=1e-6)


def test_a_payload_without_a_renderer_says_so(qtbot):
    @dataclasses.dataclass(kw_only=True)
    class Hologram(RenderPayload):
        view = "hologram"

    w = RolloutView()
    qtbot.addWidget(w)
    w.show_render(1, Hologram(family="test", steps=[0]))
    assert w.stack.currentWidget() is w.empty and "'hologram'" in w.empty.text()


def test_redrawing_a_visible_grid_with_other_shapes_does_not_crash(tmp_path):
    """Finding 20 of the desktop issue: the third redraw of a visible rollout grid with another number of
    tasks or steps aborted the process (deleted plot items painted).  Run in a subprocess: a crash is its
    exit status, not this test run's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    script = f"""
import sys
sys.path.insert(0, {str(tests)!r})
from workbench.gui.app import make_app
from workbench.gui.plots import RolloutView
from test_payloads import regression_render, rl_render
app = make_app()
v = RolloutView()
v.resize(800, 600)
v.show()
shapes = [(4, (0, 1, 2)), (2, (0, 1)), (3, (0, 1, 2, 3)), (1, (0, 1)), (4, (0, 1))] * 2
for i, (t, s) in enumerate(shapes):
    v.show_render(i, regression_render(tasks=t, steps=s)[0])
    app.processEvents()
for name in ("navigation", "bandits", "tabular"):
    for i, (t, s) in enumerate(shapes):
        v.show_render(i, rl_render(name, tasks=t, steps=s, n_traj=2)[0])
        app.processEvents()
print("drawn")
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "drawn" in r.stdout, (r.returncode, r.stderr[-1500:])
