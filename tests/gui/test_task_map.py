"""The Task map view in the app: an opened bundle is mapped in the background with its training range
outlined, layers switch, a click opens that task in the Playground, and the Playground exports the model
adapted to it."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QComboBox, QDockWidget, QWidget

from conftest import tiny_config
from workbench.services.trainer import Trainer

DATA = Path(__file__).resolve().parents[1] / "data"


def test_an_opened_bundle_is_mapped_and_a_cell_opens_its_task_in_the_playground(window, qtbot, tmp_path):
    runs = tmp_path / "runs"
    maml = Path(Trainer(tiny_config("maml", 20), runs / "maml-run").run().bundle_path)
    Trainer(tiny_config("pretrained", 20), runs / "pretrained-run").run()
    view = window.findChild(QWidget, "taskMapView")
    assert window.findChild(QDockWidget, "taskMapDock") is not None
    assert window.open_model(maml)
    qtbot.waitUntil(lambda: view.map is not None, timeout=20_000)
    m = view.map
    assert m.after.shape == (25, 25) and m.baseline is not None  # the newest pretrained run is the baseline
    x, y = view.outline.getData()
    assert (min(x), max(x), min(y), max(y)) == pytest.approx((0.1, 5.0, 0.0, np.pi))  # the training range
    layer = window.findChild(QComboBox, "taskMapLayer")
    for key in ("gain", "gap", "after"):
        layer.setCurrentIndex(layer.findData(key))
        assert view.image.isVisible()
        np.testing.assert_allclose(view.image.image, {"gain": m.gain, "gap": m.gap, "after": m.after}[key].T)
    # a click on the cell at amplitude 6.4 (beyond training), phase 1.6
    i, j = 22, 12
    assert view.cell_at(m.axes[0][i] + 0.01, m.axes[1][j] - 0.01) == (i, j)
    assert view.cell_at(m.axes[0][-1] + 1.0, m.axes[1][j]) is None  # outside the grid
    view.click_cell((i, j))
    assert window.tabs.currentWidget() is window.playground
    page = window.playground.page()
    assert page.support.true == pytest.approx((m.axes[0][i], m.axes[1][j]))
    assert "from the task map" in window.playground.message_text()
    page.adapt()  # beyond the training range, within the map's: the playground adapts to it
    qtbot.waitUntil(lambda: not page.busy(), timeout=10_000)
    assert not window.playground.message_label.property("error"), window.playground.message_text()
    assert page.results and page.results[-1].query_loss is not None  # scored against the true task
    # Export adapted model… writes the adapted bundle and its ONNX files
    out = tmp_path / "exports"
    out.mkdir()
    assert window.playground.export_adapted(out)
    qtbot.waitUntil(lambda: any(out.glob("*/model.int8.onnx")), timeout=20_000)
    qtbot.waitUntil(lambda: "Exported to" in window.playground.message_text(), timeout=5_000)
    folder = next(out.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["model.int8.onnx", "model.onnx", "model.safetensors"]


def test_an_rl_bundles_cell_beyond_the_playgrounds_range_opens_the_nearest_task(window, qtbot):
    view = window.findChild(QWidget, "taskMapView")
    window.task_maps.grid, window.task_maps.tasks_per_cell = 5, 1  # (the app's 25 x 25 takes ~10 s here)
    assert window.open_model(DATA / "navigation-maml-trpo.safetensors")
    qtbot.waitUntil(lambda: view.map is not None, timeout=60_000)
    m = view.map
    assert [p.name for p in m.params] == ["goal_x", "goal_y"] and m.after.shape == (5, 5)
    view.click_cell((0, 2))  # goal_x -0.9: beyond the training range [-0.5, 0.5]
    page = window.playground.page()
    assert page.values()["goal_x"] == pytest.approx(-0.5) and page.values()["goal_y"] == pytest.approx(m.axes[1][2])
    assert "beyond the range" in window.playground.message_text()


@pytest.mark.parametrize("metric", ["mse", "return"])
def test_every_layer_draws_its_grid_with_better_in_blue(qtbot, metric):
    from workbench.core.taskmap import MapParam, TaskMap
    from workbench.gui.taskmap_view import TaskMapView

    view = TaskMapView()
    qtbot.addWidget(view)
    view.resize(420, 320)
    rng = np.random.default_rng(0)
    after, before, base = rng.normal(size=(3, 4, 3))
    m = TaskMap("x", metric, [MapParam("a", "a", 0, 1, column=0), MapParam("b", "b", 0, 2, column=1)],
                [np.linspace(-0.5, 1.5, 4), np.linspace(-1, 3, 3)], 1, 1, 0, before, after, np.zeros((4, 3)), base)
    view.show_map(m)
    for key, grid in (("gain", m.gain), ("gap", m.gap), ("after", m.after)):
        view.layer.setCurrentIndex(view.layer.findData(key))
        np.testing.assert_allclose(view.image.image, grid.T)
        if key != "after":  # diverging: symmetric levels, blue at the better end
            lo, hi = view.colorbar.levels()
            assert lo == -hi
            better_end = view.colorbar.colorMap().map(1.0 if metric == "return" else 0.0, mode="float")
            assert better_end[2] > better_end[0]  # blue over red


def test_a_click_picks_the_nearest_point_of_an_uneven_shots_grid(qtbot):
    from workbench.core.taskmap import MapParam, TaskMap
    from workbench.gui.taskmap_view import TaskMapView

    view = TaskMapView()
    qtbot.addWidget(view)
    shots = np.array([1.0, 4.0, 8.0, 12.0, 15.0])  # 1..15 in 5 points, rounded
    z = np.zeros(5)
    view.show_map(TaskMap("g", "accuracy", [MapParam("shots", "shots", 1, 1, 1, 15, integer=True)], [shots], 0, 4,
                          0, z, z, z))
    assert [view.cell_at(v) for v in (1.2, 4.4, 11.6, 12.0, 15.0, 14.2)] == [(0,), (1,), (3,), (3,), (4,), (4,)]
    assert view.cell_at(20.0) is None and view.cell_at(-3.0) is None
    got = []
    view.cellClicked.connect(got.append)
    view.click_cell(view.cell_at(12.0))
    assert got == [{"shots": 12.0}]


def test_a_pretrained_run_of_other_tasks_is_no_baseline(tmp_path):
    from conftest import PRESETS
    from workbench.core.config import ExperimentConfig
    from workbench.gui.taskmap_controller import _map_job

    runs = tmp_path / "runs"
    maml = Path(Trainer(tiny_config("maml", 10), runs / "maml-run").run().bundle_path)
    other = ExperimentConfig.load(PRESETS / "pretrained-sinusoid.toml", [
        "run.iterations=10", "run.eval_tasks=5", "run.eval_interval=10", "run.threads=1", "task.amp_max=3"])
    Trainer(other, runs / "pretrained-other-tasks").run()
    m = _map_job(maml, runs, None, 3, 2, False)
    assert m.after.shape == (3, 3) and m.baseline is None  # trained on amplitudes up to 3: not comparable
