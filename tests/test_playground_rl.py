"""The RL playground's engine: one hand-made task, adapted by the model and by the pretrained baseline.

A trained MAML-TRPO navigation bundle (tests/data, made by tests/data/make_navigation_bundles.py) ends its
trajectories closer to goals across the range after adapting than before, and closer than the baseline;
values outside the family's range and families without a playground are refused with a clear message;
the algorithms' evaluate stops between steps / episodes when cancelled and is unchanged otherwise."""
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PRESETS
from workbench.services.bundle import load_bundle
from workbench.core.config import ExperimentConfig
from workbench.core.errors import Cancelled, ConfigError
from workbench.core.payloads import Trajectories2D
from workbench.services.playground_rl import RLSession, final_distances, summary
from workbench.core.registry import FAMILIES
from workbench.services.trainer import Trainer

DATA = Path(__file__).parent / "data"
MAML = DATA / "navigation-maml-trpo.safetensors"
PRETRAINED = DATA / "navigation-pretrained.safetensors"
GOALS = [(0.35, 0.3), (-0.4, 0.25), (0.3, -0.4), (-0.3, -0.35), (0.05, 0.45)]


@pytest.fixture(scope="module")
def nav():
    return RLSession(load_bundle(MAML), load_bundle(PRETRAINED))


def tiny_bundle(tmp_path, preset, *overrides, iterations=0):
    """A (barely) trained bundle of a shipped preset, small enough to build in a test."""
    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml", [
        f"run.iterations={iterations}", "run.threads=1", "run.eval_tasks=2", "run.eval_interval=1000",
        "run.render_tasks=0", *overrides])
    trainer = Trainer(cfg)
    if iterations:
        assert trainer.run().status == "finished"
    return load_bundle(trainer.export(tmp_path / f"{preset}.safetensors"))


class CountingEvent(threading.Event):
    """An event that becomes set after it has been looked at ``after`` times (a cancel mid-run)."""

    def __init__(self, after):
        super().__init__()
        self.after, self.checks = after, 0

    def is_set(self):
        self.checks += 1
        if self.checks > self.after:
            self.set()
        return super().is_set()


def test_committed_bundles_are_small_and_load():
    for path in (MAML, PRETRAINED):
        assert path.stat().st_size < 200_000
    model = load_bundle(MAML)
    assert model.algorithm == "maml-trpo" and model.meta["family"] == "navigation"
    assert load_bundle(PRETRAINED).algorithm == "pretrained-rl"


def test_adapting_to_clicked_goals_ends_closer_to_them_than_before_and_than_the_baseline(nav):
    assert [p.name for p in nav.controls()] == ["goal_x", "goal_y"]
    assert nav.steps_control().label == "inner steps" and nav.steps_control().default == 1
    before, after, baseline = [], [], []
    for x, y in GOALS:
        r = nav.run({"goal_x": x, "goal_y": y})
        assert r.steps == [0, 1] and r.step_label == "inner step"
        assert r.step_names == ["before adaptation", "after 1 step"]
        assert r.returns.shape == (2,) and r.returns[1] > r.returns[0]
        assert r.payload.view == "trajectories-2d" and r.payload.paths.shape[:2] == (1, 2)
        np.testing.assert_allclose(r.payload.goals[0], [x, y], atol=1e-6)
        assert r.final_distance[1] < r.final_distance[0], (x, y, r.final_distance)
        assert r.baseline_algorithm == "pretrained-rl" and r.baseline_steps == [0, 1]
        assert r.baseline_payload.view == "trajectories-2d" and r.baseline_returns.shape == (2,)
        before.append(r.final_distance[0])
        after.append(r.final_distance[1])
        baseline.append(r.baseline_final_distance[1])
    assert np.mean(after) < 0.6 * np.mean(before), (before, after)
    assert np.mean(after) < np.mean(baseline), (after, baseline)  # the benefit of meta-learning
    assert "maml-trpo: return" in summary(r) and "(baseline)" in summary(r)


def test_more_steps_and_trajectories_and_the_same_task_gives_the_same_result(nav):
    r = nav.run({"goal_x": 0.35, "goal_y": 0.3}, steps=3, trajectories=6)
    assert r.steps == [0, 1, 2, 3] and r.returns.shape == (4,) and r.final_distance.shape == (4,)
    assert r.payload.paths.shape[2] == 4  # the render shows 4 of the 6 trajectories
    again = nav.run({"goal_x": 0.35, "goal_y": 0.3}, steps=3, trajectories=6)
    np.testing.assert_array_equal(r.returns, again.returns)  # seeded: a task is reproducible
    assert nav.learner.cfg.trajectories == 20  # the model's own settings are untouched


def test_final_distance_is_measured_at_the_last_position_of_each_path():
    paths = np.full((1, 2, 2, 4, 2), np.nan)
    paths[0, 0, 0, :] = [[0, 0], [0.1, 0], [0.2, 0], [0.3, 0]]  # ran to the end
    paths[0, 0, 1, :2] = [[0, 0], [0, 0.1]]  # stopped early (reached its goal)
    paths[0, 1, :, :] = [[0, 0], [0.1, 0.1], [0.2, 0.2], [0.3, 0.4]]
    d = final_distances(Trajectories2D(family="navigation", steps=[0, 1], paths=paths, goals=np.array([[0.3, 0.4]]),
                                       returns=np.zeros((1, 2)), bounds=[-0.7, 0.7]))
    np.testing.assert_allclose(d, [(0.4 + np.hypot(0.3, 0.3)) / 2, 0.0])


def test_path_ends_and_mean_paths_hold_a_finished_trajectory_at_its_last_position():
    from workbench.services.playground_rl import mean_path, path_ends

    paths = np.full((2, 4, 2), np.nan)
    paths[0] = [[0, 0], [0.1, 0], [0.2, 0], [0.3, 0]]  # ran to the end
    paths[1, :2] = [[0, 0], [0, 0.2]]  # ended after one move
    np.testing.assert_allclose(path_ends(paths), [[0.3, 0], [0, 0.2]])
    np.testing.assert_allclose(path_ends(paths[None])[0], path_ends(paths))  # any leading shape
    np.testing.assert_allclose(mean_path(paths), [[0, 0], [0.05, 0.1], [0.1, 0.1], [0.15, 0.1]])
    assert np.isnan(paths[1, 2:]).all()  # the input is not changed


def test_sliders_map_task_parameters_and_label_them():
    from workbench.services.playground_rl import param_text, param_tick, tick_param
    from workbench.tasks.rl_base import TaskParam

    g = TaskParam("gravity", "gravity, m/s²", 4.9, 14.7, 9.8)
    assert param_tick(g, 9.8) == 500 and tick_param(g, 1000) == pytest.approx(14.7)
    assert param_tick(g, 99.0) == 1000 and param_tick(g, -5.0) == 0  # clamped to the slider
    assert param_text(g, 14.7) == "14.7" and param_text(g, 123.456) == "123.5"
    d = TaskParam("direction", "direction", -1.0, 1.0, 1.0, kind="choice", choices=(-1.0, 1.0),
                  choice_labels=("backward", "forward"))
    assert param_tick(d, 1.0) == 1 and param_tick(d, -0.7) == 0 and tick_param(d, 0) == -1.0
    assert param_text(d, 1.0) == "+1 forward" and param_text(d, -1.0) == "-1 backward"
    assert param_tick(TaskParam("m", "m", 1.0, 1.0, 1.0), 1.0) == 0  # an empty range


def test_the_return_chart_labels_every_step_and_frames_the_returns():
    from workbench.services.playground_rl import RLResult, navigation_title, returns_view

    r = RLResult({}, "maml-trpo", [0, 1, 2], "inner step", [], np.array([-40.0, -12.0, -3.0]), None,
                 baseline_steps=[0, 1, 2], baseline_returns=np.array([-41.0, np.nan, -9.0]))
    view = returns_view(r)
    assert view.ticks == [(0.0, "0"), (1.0, "1"), (2.0, "2")] and view.x_range == (-0.15, 2.15)
    lo, hi = view.y_range
    assert lo == pytest.approx(-41.0 - 0.12 * 38) and hi == pytest.approx(-3.0 + 0.12 * 38)
    many = RLResult({}, "rl2", list(range(1, 31)), "episode", [], np.zeros(30), None)
    assert returns_view(many).ticks is None and returns_view(many).y_range == (-0.5, 0.5)
    assert navigation_title("Meta-learned: maml", [-40.0, -3.25], np.array([0.4, 0.05])) == \
        "Meta-learned: maml\nreturn -40.0 → -3.2; distance to goal 0.40 → 0.05"
    assert navigation_title("PEARL", [1.0, 2.0], None) == "PEARL\nreturn 1.0 → 2.0"


@pytest.mark.parametrize("values, message", [
    ({"goal_x": 0.8, "goal_y": 0.0}, "goal_x = 0.8 is outside the navigation family's range [-0.5, 0.5]"),
    ({"goal_x": 0.0, "goal_y": -0.51}, "goal_y = -0.51 is outside the navigation family's range [-0.5, 0.5]"),
    ({"goal_x": float("nan")}, "goal_x = nan is not a finite number"),
    ({"goal_x": "left"}, "goal_x = 'left' is not a number"),
    ({"goal_z": 0.1}, "unknown task parameter(s) goal_z; known: goal_x, goal_y"),
])
def test_values_outside_the_range_are_refused_naming_parameter_value_and_range(nav, values, message):
    with pytest.raises(ConfigError) as e:
        nav.run(values)
    assert message in str(e.value)


def test_steps_outside_their_range_are_refused(nav):
    with pytest.raises(ConfigError, match=r"inner steps = 11 is outside \[0, 10\]"):
        nav.run({}, steps=11)


def test_every_physics_and_mujoco_family_has_controls_in_its_ranges():
    for name in ("navigation", "cartpole", "pendulum", "cheetah-vel", "cheetah-dir"):
        cls = FAMILIES.get(name)
        ok, why = getattr(cls, "available", lambda: (True, ""))()
        if not ok:
            continue
        fam = cls(cls.Config())
        params = fam.playground_params()
        assert tuple(p.name for p in params) == fam.task_param_names
        for p in params:
            assert p.low <= p.default <= p.high and p.label
        row = fam.task_params_from({})
        assert row.shape == (1, len(params)) and row.dtype == torch.get_default_dtype()
    cart = FAMILIES.get("cartpole")(FAMILIES.get("cartpole").Config())
    np.testing.assert_allclose(cart.task_params_from({"gravity": 12.0})[0].tolist(), [0.5, 0.1, 1.0, 12.0, 10.0],
                               rtol=1e-6)
    with pytest.raises(ConfigError, match=r"pole_mass = 3 is outside the cartpole family's range \[0.05, 0.5\]"):
        cart.task_params_from({"pole_mass": 3})
    if FAMILIES.get("cheetah-dir").available()[0]:
        d = FAMILIES.get("cheetah-dir")(FAMILIES.get("cheetah-dir").Config())
        (p,) = d.playground_params()
        assert p.kind == "choice" and p.choices == (-1.0, 1.0) and p.choice_labels == ("backward", "forward")
        assert d.task_params_from({"direction": -1}).tolist() == [[-1.0]]
        with pytest.raises(ConfigError, match=r"direction = 0.5 is not allowed .*one of -1 \(backward\), "
                                              r"1 \(forward\)"):
            d.task_params_from({"direction": 0.5})


def test_a_bandits_model_has_no_playground_and_says_why(tmp_path):
    model = tiny_bundle(tmp_path, "rl2-bandits", "algorithm.meta_batch=20", iterations=1)
    why = RLSession.why_not(model)
    assert why == ("The bandits family has no playground: its tasks are random tables; use Open model… to "
                   "evaluate it")
    assert not RLSession.supports(model)
    with pytest.raises(ConfigError, match="no playground"):
        RLSession(model)
    sinusoid = tiny_bundle(tmp_path, "maml-sinusoid")
    assert "not a reinforcement-learning policy" in RLSession.why_not(sinusoid)
    with pytest.raises(ConfigError, match="no playground"):
        model.family.task_params_from({})


def test_a_baseline_of_another_family_is_refused(tmp_path):
    session = RLSession(load_bundle(MAML))
    session.set_baseline(load_bundle(PRETRAINED))  # same family: fine
    assert session.baseline is not None
    other = tiny_bundle(tmp_path, "maml-trpo-cartpole", "algorithm.trajectories=2")
    with pytest.raises(ConfigError, match="the baseline is a cartpole model; the model is navigation"):
        session.set_baseline(other)


def test_cancel_raises_and_stops_between_steps(nav):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        nav.run({"goal_x": 0.3, "goal_y": 0.3}, cancel=cancel)
    mid = CountingEvent(after=3)  # the run's own check, then the model's steps 0 and 1: cancelled at step 2
    with pytest.raises(Cancelled):
        nav.run({"goal_x": 0.3, "goal_y": 0.3}, steps=10, cancel=mid)
    assert mid.checks == 4  # no further step was taken once it was set
    quiet = threading.Event()  # an event that is never set changes nothing
    r1 = nav.run({"goal_x": 0.3, "goal_y": 0.3}, steps=2, cancel=quiet)
    r2 = nav.run({"goal_x": 0.3, "goal_y": 0.3}, steps=2)
    np.testing.assert_array_equal(r1.returns, r2.returns)
    np.testing.assert_array_equal(r1.baseline_returns, r2.baseline_returns)


def test_cartpole_and_pendulum_sessions_return_frames_and_name_their_steps(tmp_path):
    maml = tiny_bundle(tmp_path, "maml-trpo-cartpole", "algorithm.trajectories=3", "task.horizon=40")
    session = RLSession(maml)
    assert [p.name for p in session.controls()] == ["pole_length", "pole_mass", "cart_mass", "gravity", "force"]
    r = session.run({"pole_length": 0.8, "gravity": 6.0})
    assert r.task["pole_length"] == pytest.approx(0.8) and r.task["gravity"] == pytest.approx(6.0)
    assert r.payload.view == "frames" and r.payload.frames.ndim == 5 and r.payload.frames.shape[0] == 2
    assert r.payload.step_names == ["before adaptation", "after 1 step"] and r.final_distance is None
    assert r.baseline_returns is None and r.baseline_payload is None

    # RL² adapts over the episodes of a trial, PEARL as its context grows; a pretrained baseline beside them
    # adapts with its own gradient steps
    rl2 = tiny_bundle(tmp_path, "rl2-pendulum", "algorithm.eval_trials=2", "task.horizon=30")
    pre = tiny_bundle(tmp_path, "maml-trpo-pendulum", "algorithm.trajectories=2", "task.horizon=30")
    s = RLSession(rl2, pre)
    ctl = s.steps_control()
    assert ctl.label == "episodes in the trial" and ctl.default == rl2.learner.cfg.episodes
    r = s.run({"mass": 1.2}, steps=3)
    assert r.steps == [1, 2, 3] and r.step_label == "episode of the trial" and r.returns.shape == (3,)
    assert r.step_names == ["episode 1 of the trial", "episode 2 of the trial", "episode 3 of the trial"]
    assert r.payload.view == "frames" and r.payload.frames.shape[0] == 2  # the first and the last episode
    assert r.baseline_steps == [0, 1] and r.baseline_step_label == "inner step"
    assert rl2.learner.cfg.episodes == ctl.default  # the model's own trial length is untouched
    cancel = CountingEvent(after=2)
    with pytest.raises(Cancelled):
        s.run({"mass": 1.2}, steps=5, cancel=cancel)
    assert cancel.checks == 3

    pearl = tiny_bundle(tmp_path, "pearl-navigation", "algorithm.eval_trials=1", "algorithm.train_tasks=4",
                        "task.horizon=20")
    s = RLSession(pearl)
    assert s.steps_control().label == "episodes of context"
    r = s.run({"goal_x": -0.2, "goal_y": 0.4}, steps=2)
    assert r.steps == [0, 1, 2] and r.step_label == "episodes of context"
    assert r.step_names[0] == "no context (prior)" and r.final_distance.shape == (3,)
    with pytest.raises(Cancelled):
        s.run({"goal_x": -0.2, "goal_y": 0.4}, steps=4, cancel=CountingEvent(after=2))


def test_evaluate_without_cancel_is_unchanged(tmp_path):
    """The cancel hook is a keyword with a default: the trainer's positional calls give the same outcome."""
    model = tiny_bundle(tmp_path, "rl2-cartpole", "algorithm.eval_trials=2", "task.horizon=20")
    fam = model.family
    batch = fam.evaluation_batch(3, 0)
    a = model.learner.evaluate(fam, batch, 1, 1)
    b = model.learner.evaluate(fam, batch, 1, 1, cancel=threading.Event())
    np.testing.assert_array_equal(a.per_task, b.per_task)
    np.testing.assert_array_equal(a.payload.frames, b.payload.frames)


def test_mujoco_frames_are_cancellable_between_frames(tmp_path):
    """HalfCheetah's frames take a second or more: the render itself stops when cancelled."""
    cls = FAMILIES.get("cheetah-vel")
    ok, why = cls.available()
    if not ok:
        pytest.skip(why)
    model = tiny_bundle(tmp_path, "maml-trpo-cheetah-vel-quick", "algorithm.trajectories=2", "task.horizon=12",
                        "task.frame_size=48")
    s = RLSession(model)
    assert [p.name for p in s.controls()] == ["goal_velocity"]
    r = s.run({"goal_velocity": 1.5})
    assert r.payload.view == "frames" and r.payload.frames.shape[:2] == (2, 13)
    # checks before the frames: the run's, steps 0 and 1, evaluate's before the render, the render's own; then
    # one per frame
    cancel = CountingEvent(after=7)
    with pytest.raises(Cancelled):
        s.run({"goal_velocity": 1.5}, cancel=cancel)
    assert cancel.checks == 8
