"""The task-space map: its numbers are the bundle's own evaluation on the grid's exact tasks, it reaches past
the training range and marks it, the live map follows the run, and bad requests are one line with exit 2."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from conftest import tiny_config
from workbench.cli import main
from workbench.core import events as ev
from workbench.core import seeding, taskmap
from workbench.services.taskmap import bundle_map
from workbench.services.trainer import Trainer

JSON_KEYS = {"family", "metric", "steps", "params", "axes", "tasks_per_cell", "seed", "before", "after", "after_ci95",
             "gain", "baseline", "gap", "inside_training_range", "model", "algorithm", "baseline_model"}


@pytest.fixture(scope="module")
def sinusoid(tmp_path_factory):
    root = tmp_path_factory.mktemp("taskmap")
    maml = Trainer(tiny_config("maml", 30), root / "maml").run().bundle_path
    pre = Trainer(tiny_config("pretrained", 30), root / "pre").run().bundle_path
    return Path(maml), Path(pre)


def cell_means(per_task, shape, tpc):
    return np.asarray(per_task, dtype=np.float64).reshape(*shape, tpc, -1).mean(-2)


def test_map_values_are_the_bundles_evaluation_on_the_grids_exact_tasks(sinusoid):
    model = workbench.load_model(sinusoid[0])
    m = bundle_map(model, grid=4, tasks_per_cell=3, seed=5, steps=2)
    assert m.after.shape == m.before.shape == (4, 4) and m.steps == 2
    rows = taskmap.grid_tasks(model.family, m.params, m.axes, 3, seeding.generator(taskmap.MAP_STREAM, 5))
    cell = rows.reshape(4, 4, 3, 2)
    assert torch.allclose(cell[1, 2, :, 0], torch.tensor(float(m.axes[0][1])))  # amplitude of cell (1, 2)
    assert torch.allclose(cell[1, 2, :, 1], torch.tensor(float(m.axes[1][2])))  # its phase
    res = model.evaluate(task_params=rows.numpy(), seed=5, steps=[0, 2])
    means = cell_means(res["per_task"], (4, 4), 3)
    np.testing.assert_allclose(m.before, means[..., 0], rtol=1e-12)
    np.testing.assert_allclose(m.after, means[..., 1], rtol=1e-12)
    # the first cell's tasks alone: the same numbers (a task's data does not depend on the rest of the grid)
    alone = model.evaluate(task_params=rows[:3].numpy(), seed=5, steps=[0, 2])
    assert alone["mean"][1] == pytest.approx(m.after[0, 0], rel=1e-6)


def test_the_grid_reaches_past_the_training_range_and_marks_it(sinusoid):
    model = workbench.load_model(sinusoid[0])
    m = bundle_map(model, grid=11, margin=0.4)
    amp, phase = m.params
    assert (amp.low, amp.high) == (0.1, 5.0) and (phase.low, phase.high) == pytest.approx((0.0, math.pi))
    assert m.axes[0][-1] == pytest.approx(5.0 + 0.4 * 4.9) and m.axes[0][0] >= 0  # up to ~7, never below 0
    assert m.axes[1][0] == pytest.approx(-0.4 * math.pi)  # the phase has no floor
    inside = m.inside()
    expect = (((m.axes[0] >= 0.1) & (m.axes[0] <= 5.0))[:, None]
              & ((m.axes[1] >= 0) & (m.axes[1] <= math.pi + 1e-12))[None, :])
    assert (inside == expect).all() and inside.any() and not inside.all()


def test_cli_json_has_the_documented_keys_and_a_baseline_gives_the_gap(sinusoid, capsys):
    maml, pre = sinusoid
    assert main(["taskmap", str(maml), "--grid", "3", "--params", "amplitude", "--json", "--baseline", str(pre),
                 "--tasks-per-cell", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == JSON_KEYS
    assert doc["params"] == ["amplitude"] and doc["axes"][0]["train_range"] == [0.1, 5.0]
    assert len(doc["after"]) == 3 and doc["baseline_model"] == str(pre)
    np.testing.assert_allclose(doc["gap"], np.array(doc["after"]) - np.array(doc["baseline"]))
    np.testing.assert_allclose(doc["gain"], np.array(doc["after"]) - np.array(doc["before"]))
    assert all(c is not None and c >= 0 for c in doc["after_ci95"])  # four tasks per point: a CI


def test_an_rl_map_is_the_policys_return_on_those_goals(navigation_bundle):
    model = workbench.load_model(navigation_bundle)
    m = bundle_map(model, grid=3, tasks_per_cell=1)
    assert [p.name for p in m.params] == ["goal_x", "goal_y"] and m.metric == "return" and m.higher_is_better
    assert m.axes[0][0] == pytest.approx(-0.9) and m.axes[0][-1] == pytest.approx(0.9)
    rows = taskmap.grid_tasks(model.family, m.params, m.axes, 1, seeding.generator(taskmap.MAP_STREAM, 0))
    res = model.evaluate(task_params=rows.numpy(), steps=[0, m.steps])
    means = cell_means(res["per_task"], (3, 3), 1)
    np.testing.assert_allclose(m.after, means[..., 1], rtol=1e-9)
    assert m.after[0, 0] < m.after[1, 1]  # a far goal costs more steps than the origin's neighbourhood


def test_a_classification_map_is_over_shots(glyph_bundles):
    model = workbench.load_model(glyph_bundles["protonet"])
    m = bundle_map(model, grid=3, tasks_per_cell=4, seed=2)
    assert [p.name for p in m.params] == ["shots"] and list(m.axes[0]) == [1.0, 3.0, 5.0] and m.steps == 0
    assert m.inside().tolist() == [True, False, False]  # trained 1-shot
    res = model.evaluate(tasks=4, seed=2, steps=[0], shots=3)
    assert m.after[1] == pytest.approx(res["mean"][0])


def test_the_live_map_follows_each_evaluation_coarsely():
    seen = []
    trainer = Trainer(tiny_config("maml", 50), None, [seen.append])
    trainer.live_task_map = True
    trainer.run()
    maps = [e for e in seen if isinstance(e, ev.TaskMapMade)]
    evals = [e for e in seen if isinstance(e, ev.Evaluation)]
    assert [m.iteration for m in maps] == [e.iteration for e in evals] == [0, 25, 50]
    m = maps[-1].task_map
    assert m.after.shape == (4, 4) and m.tasks_per_cell == 1  # the floor: 15% of 20 tasks x 4 steps is 6 tasks
    assert taskmap.live_plan(m.params, 100, 10, 1) == (9, 1)  # the sinusoid preset's evaluation: 81 tasks
    assert not np.allclose(maps[0].task_map.after, m.after)  # it follows training


@pytest.mark.parametrize("args, expected", [
    (["--params", "frequency"], "has no task parameter 'frequency'; it has amplitude, phase"),
    (["--params", "amplitude,phase,amplitude"], "name one or two different parameters"),
    (["--grid", "1"], "--grid = 1: the grid needs 2 to 201 points"),
    (["--grid", "200", "--tasks-per-cell", "50"], "more than a map may evaluate"),
    (["--margin", "-1"], "--margin = -1.0"),
    (["--png", "map.jpg"], "must end in .png"),
])
def test_bad_requests_are_one_line_with_exit_2_and_write_nothing(sinusoid, capsys, tmp_path, monkeypatch, args,
                                                               expected):
    monkeypatch.chdir(tmp_path)
    assert main(["taskmap", str(sinusoid[0]), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_baseline_of_another_family_and_a_family_without_parameters_are_refused(sinusoid, navigation_bundle, capsys,
                                                                                 glyph_bundles):
    assert main(["taskmap", str(sinusoid[0]), "--baseline", str(navigation_bundle)]) == 2
    assert "a navigation model; the mapped model is sinusoid" in capsys.readouterr().err
    assert main(["taskmap", str(glyph_bundles["protonet"]), "--steps", "2"]) == 2
    assert "has no inner steps" in capsys.readouterr().err
    assert main(["taskmap", str(glyph_bundles["maml"]), "--baseline", str(glyph_bundles["protonet"])]) == 2
    err = capsys.readouterr().err.strip()  # the baseline is checked as the model is
    assert "--baseline" in err and "has no inner steps" in err and len(err.splitlines()) == 1


def test_png_is_written_whole_and_never_over_a_file(sinusoid, tmp_path, capsys):
    png = tmp_path / "map.png"
    assert main(["taskmap", str(sinusoid[0]), "--grid", "5", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and capsys.readouterr().out.strip().endswith(str(png))
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]
    before = png.read_bytes()
    assert main(["taskmap", str(sinusoid[0]), "--grid", "5", "--png", str(png)]) == 2
    assert "exists: name a new file" in capsys.readouterr().err and png.read_bytes() == before
