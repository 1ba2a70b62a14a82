"""Render payloads are typed: every family's ``render()`` gives its view's dataclass with the documented
shapes, numpy copies that share no memory with the tensors it was given, and the payloads pickle (the app's
trainer process sends them to the GUI inside Render events)."""
import dataclasses
import multiprocessing as mp
import pickle

import numpy as np
import pytest
import torch

from workbench.core import events as ev
from workbench.core import payloads as pl
from workbench.core.registry import FAMILIES
from workbench.rl.rollout import collect

VIEWS = {"regression-1d": pl.RegressionCurves, "trajectories-2d": pl.Trajectories2D, "bandit-arms": pl.BanditArms,
         "state-visitation": pl.StateVisitation, "frames": pl.Frames, "classified-images": pl.ClassifiedImages}


def family(name, **cfg):
    cls = FAMILIES.get(name)
    return cls(cls.Config(**cfg))


class RandomPolicy:
    """Uniform actions of any RL family (discrete: any of its actions; continuous: within ±2)."""

    def __init__(self, fam):
        self.fam, self.discrete = fam, fam.discrete_actions

    def sample(self, params, obs, generator):
        if self.discrete:
            return torch.randint(0, self.fam.n_actions, obs.shape[:2], generator=generator)
        return 4.0 * torch.rand(*obs.shape[:2], self.fam.act_dim, generator=generator) - 2.0


def rl_render(name, tasks=3, steps=(0, 1), n_traj=5, **cfg):
    """(payload, task params, episodes) of an RL family's render of random episodes."""
    fam = family(name, **cfg)
    g = torch.Generator().manual_seed(0)
    params = fam.sample_batch(tasks, g).params
    env = fam.make_env(params)
    episodes = [collect(env, RandomPolicy(fam), None, n_traj, g) for _ in steps]
    return fam.render(params, episodes, list(steps)), params, episodes


def regression_render(name="sinusoid", tasks=3, steps=(0, 1, 2)):
    fam = family(name)
    batch = fam.sample_batch(tasks, torch.Generator().manual_seed(0))
    inputs = fam.render_inputs(batch)
    grid = inputs[0]
    preds = torch.randn(tasks, len(steps), grid.shape[0], 1, generator=torch.Generator().manual_seed(1))
    return fam.render(batch, preds, inputs, list(steps)), batch, preds, grid


def test_every_view_has_one_payload_class_and_payloads_are_plain_dataclasses():
    classes = [c for c in vars(pl).values() if isinstance(c, type) and issubclass(c, pl.RenderPayload)
               and c is not pl.RenderPayload]
    assert {c.view: c for c in classes} == VIEWS
    for cls in classes:
        assert dataclasses.is_dataclass(cls) and cls.__doc__
        assert "view" not in {f.name for f in dataclasses.fields(cls)}  # a class attribute, not a field
        assert {"family", "steps", "step_names"} <= {f.name for f in dataclasses.fields(cls)}
    payload, *_ = rl_render("bandits")
    for shim in ("__getitem__", "get", "__contains__", "keys"):  # no dict-style access left
        assert not hasattr(payload, shim), shim
    with pytest.raises(TypeError):
        payload["returns"]


def test_regression_render_gives_regression_curves():
    payload, batch, preds, grid = regression_render(steps=(0, 1, 2))
    assert type(payload) is pl.RegressionCurves and payload.view == "regression-1d"
    assert payload.family == "sinusoid" and payload.steps == [0, 1, 2] and payload.step_names is None
    g, k = grid.shape[0], batch.xs.shape[1]
    assert payload.x.shape == (g,) and payload.x.dtype == np.float64
    assert payload.y_true.shape == (3, g) and payload.pred.shape == (3, 3, g)
    assert payload.x_support.shape == payload.y_support.shape == (3, k)
    assert payload.task_params.shape == (3, len(payload.task_param_names))
    assert payload.task_param_names == list(FAMILIES.get("sinusoid").task_param_names)
    np.testing.assert_array_equal(payload.pred, preds[..., 0].numpy())
    np.testing.assert_array_equal(payload.y_support, batch.ys[..., 0].numpy())
    np.testing.assert_allclose(payload.y_true, FAMILIES.get("sinusoid").function(
        family("sinusoid"), batch.params, grid.expand(3, *grid.shape))[..., 0].numpy())
    before = preds[..., 0].numpy().copy()
    preds.add_(1.0)  # copies: the trainer's tensors may change afterwards
    assert not np.shares_memory(payload.pred, preds.numpy())
    np.testing.assert_array_equal(payload.pred, before)


def test_navigation_render_gives_trajectories():
    payload, params, episodes = rl_render("navigation", tasks=3, steps=(0, 1, 2), n_traj=6, horizon=10)
    assert type(payload) is pl.Trajectories2D and payload.view == "trajectories-2d"
    assert payload.family == "navigation" and payload.steps == [0, 1, 2]
    assert payload.paths.shape == (3, 3, 4, 11, 2)  # 4 of the 6 trajectories, H+1 positions
    assert payload.goals.shape == (3, 2) and payload.returns.shape == (3, 3)
    np.testing.assert_array_equal(payload.goals, params.numpy())
    np.testing.assert_allclose(payload.returns, torch.stack([e.returns.mean(1) for e in episodes], 1).numpy())
    np.testing.assert_array_equal(payload.paths[:, :, :, 0], 0.0)  # from the origin
    lo, hi = payload.bounds
    assert lo < -0.5 and hi > 0.5
    params.add_(1.0)
    assert not np.shares_memory(payload.goals, params.numpy())


def test_bandit_render_gives_arm_pulls():
    payload, params, episodes = rl_render("bandits", tasks=3, arms=4, pulls=20)
    assert type(payload) is pl.BanditArms and payload.view == "bandit-arms" and payload.family == "bandits"
    assert payload.means.shape == (3, 4) and payload.pull_fraction.shape == (3, 2, 4)
    assert payload.returns.shape == (3, 2) and payload.steps == [0, 1]
    np.testing.assert_allclose(payload.pull_fraction.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(payload.means, params.numpy())


def test_tabular_render_gives_state_visitation():
    payload, _, episodes = rl_render("tabular", tasks=2, states=6, horizon=8)
    assert type(payload) is pl.StateVisitation and payload.view == "state-visitation"
    assert payload.family == "tabular" and payload.steps == [0, 1]
    assert payload.visits.shape == (2, 2, 6) and payload.returns.shape == (2, 2)
    np.testing.assert_allclose(payload.visits.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_physics_render_gives_frames(name):
    payload, params, _ = rl_render(name, tasks=2, steps=(0, 1, 2), n_traj=2, horizon=20)
    assert type(payload) is pl.Frames and payload.view == "frames" and payload.family == name
    assert payload.frames.dtype == np.uint8 and payload.frames.ndim == 5 and payload.frames.shape[0] == 2
    assert payload.frames.shape[-1] == 3 and payload.frame_steps == [0, 2] and payload.steps == [0, 1, 2]
    assert payload.returns.shape == (2, 3) and payload.fps == 30
    assert payload.task == pytest.approx(dict(zip(FAMILIES.get(name).task_param_names, params[0].tolist())))
    assert isinstance(payload.title, str) and payload.title


def test_payloads_and_render_events_pickle():
    payloads = [regression_render()[0], rl_render("navigation", horizon=6)[0], rl_render("bandits")[0],
                rl_render("tabular", horizon=6)[0], rl_render("cartpole", horizon=10, n_traj=1)[0]]
    payloads[-1] = dataclasses.replace(payloads[-1], step_names=["before", "after"])
    for payload in payloads:
        back = pickle.loads(pickle.dumps(ev.Render(7, payload)))
        assert back.iteration == 7 and type(back.payload) is type(payload) and back.payload.view == payload.view
        for f in dataclasses.fields(payload):
            a, b = getattr(payload, f.name), getattr(back.payload, f.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b, f.name
    # and over a pipe, as the trainer process sends its events to the app
    recv, send = mp.Pipe(duplex=False)
    send.send(("events", [ev.Render(1, payloads[1])]))
    _, (event,) = recv.recv()
    assert isinstance(event.payload, pl.Trajectories2D)
    np.testing.assert_array_equal(event.payload.paths, payloads[1].paths)
