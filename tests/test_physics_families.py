"""CartPole and Pendulum with randomised physics: the gymnasium faces pass the env checker, the batched
and gymnasium faces agree step for step, every physics parameter changes the dynamics, configs are
checked, and the render payload is the GUI's "frames" payload, fast enough to send at every evaluation."""
import time
import warnings

import numpy as np
import pytest
import torch

from conftest import PRESETS
from workbench.core.config import ExperimentConfig, build_section
from workbench.core.errors import ConfigError
from workbench.core.payloads import Frames
from workbench.core.registry import FAMILIES
from workbench.rl.rollout import collect
from workbench.tasks import cartpole as cp
from workbench.tasks import pendulum as pd

ENVS = {"cartpole": cp.CartPolePhysicsEnv, "pendulum": pd.PendulumPhysicsEnv}
# warnings gymnasium gives for its own CartPole / Pendulum spaces, and for an env made without gym.make
INHERITED = ("infinity", "symmetric and normalized", "not having a spec")


def family(name, **cfg):
    cls = FAMILIES.get(name)
    return cls(cls.Config(**cfg))


class RandomPolicy:
    """Uniform pushes (CartPole) or N(0, 2.5²) torques (Pendulum, many beyond the ±2 clip)."""

    def __init__(self, discrete):
        self.discrete = discrete

    def sample(self, params, obs, generator):
        if self.discrete:
            return torch.randint(0, 2, obs.shape[:2], generator=generator)
        return 2.5 * torch.randn(*obs.shape[:2], 1, generator=generator)


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_gymnasium_face_passes_the_env_checker_and_renders_small_frames(name):
    from gymnasium.utils.env_checker import check_env

    env = ENVS[name](render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    unexpected = [str(w.message) for w in caught if not any(s in str(w.message) for s in INHERITED)]
    assert not unexpected
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert max(first.shape[:2]) <= 240
    for _ in range(15):
        env.step(env.action_space.sample())
    assert not np.array_equal(first, env.render())  # the picture follows the state
    assert ENVS[name]().render() is None  # no render mode, no frame
    if name == "pendulum":  # squashed policies scale their actions to the gymnasium face's bounds
        assert family(name).action_scale == float(env.action_space.high[0]) == 2.0


def lockstep(name, actions, n_tasks=3, n_traj=2):
    """Step the batched env and one gymnasium env per (task, trajectory), from the same start states."""
    fam = family(name)
    g = torch.Generator().manual_seed(7)
    params = fam.sample_batch(n_tasks, g).params
    batched = fam.make_env(params)
    batched.reset(n_traj, g)
    envs = []
    for i in range(n_tasks):
        for j in range(n_traj):
            env = ENVS[name].from_task(params[i], horizon=fam.horizon)
            env.reset(seed=0)
            env.state = batched.state[i, j].numpy().copy()  # the batched env integrates in float64, like gymnasium
            envs.append(env)
    live = np.ones(n_tasks * n_traj, bool)
    lengths = np.zeros(n_tasks * n_traj, int)
    final = {}
    for t, a in enumerate(actions):
        obs_b, rew_b, done_b = batched.step(torch.from_numpy(a))
        obs_b, rew_b, done_b = obs_b.reshape(-1, obs_b.shape[-1]), rew_b.reshape(-1), done_b.reshape(-1)
        flat_a = a.reshape(n_tasks * n_traj, *a.shape[2:])
        for k, env in enumerate(envs):
            if not live[k]:  # terminated: the batched trajectory stays put (finite), done, with reward 0
                assert bool(done_b[k]) and float(rew_b[k]) == 0.0
                assert torch.equal(obs_b[k], final[k])
                continue
            action = int(flat_a[k]) if name == "cartpole" else flat_a[k]
            obs, rew, terminated, truncated, _ = env.step(action)
            np.testing.assert_allclose(obs, obs_b[k].numpy(), atol=1e-4, rtol=0)
            assert rew == pytest.approx(float(rew_b[k]), abs=1e-4)
            assert terminated == bool(done_b[k])
            assert truncated == (t == len(actions) - 1)
            lengths[k] += 1
            live[k] = not terminated
            final[k] = obs_b[k]
    return lengths


def test_batched_and_gymnasium_cartpole_agree_step_for_step():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, (200, 3, 2))
    actions[:, 0, 0] = np.arange(200) % 2  # alternating pushes keep this one up for a while
    lengths = lockstep("cartpole", actions)
    assert lengths.min() < 200 and lengths.max() > lengths.min()  # terminations, at different times


def test_batched_and_gymnasium_pendulum_agree_step_for_step():
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 2.5, (200, 3, 2, 1)).astype(np.float32)  # many beyond the ±2 clip
    lengths = lockstep("pendulum", actions)
    assert (lengths == 200).all()  # never done


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_every_physics_parameter_changes_the_trajectory(name):
    """Tasks that differ in one parameter only, same start state, same actions: different trajectories
    (before a CartPole falls: only 20 steps)."""
    fam = family(name)
    base = torch.tensor([(lo + hi) / 2 for lo, hi in zip(*fam.cfg.bounds())])
    rows = [base]
    for i in range(len(base)):
        row = base.clone()
        row[i] = fam.cfg.bounds()[1][i]
        rows.append(row)
    env = fam.make_env(torch.stack(rows))
    env.reset(1, torch.Generator().manual_seed(0))
    env.state = env.state[:1].expand_as(env.state).clone()
    gen = torch.Generator().manual_seed(1)
    obs = []
    for _ in range(20):
        if name == "cartpole":
            a = torch.randint(0, 2, (1, 1), generator=gen).expand(len(rows), 1)
        else:
            a = (torch.rand(1, 1, 1, generator=gen) * 4 - 2).expand(len(rows), 1, 1)
        obs.append(env.step(a)[0][:, 0])
    traj = torch.stack(obs, 1)  # (tasks, steps, obs_dim)
    for i, param_name in enumerate(fam.task_param_names, start=1):
        assert (traj[i] - traj[0]).abs().max() > 1e-3, f"{param_name} does not change the dynamics"


def test_changing_the_physics_of_the_gymnasium_cartpole_recomputes_its_derived_quantities():
    heavy = dict(pole_length=0.9, pole_mass=0.4, cart_mass=1.7, gravity=12.0, force=7.0)
    changed = cp.CartPolePhysicsEnv()
    changed.set_physics(**heavy)
    fresh = cp.CartPolePhysicsEnv(**heavy)
    via_reset = cp.CartPolePhysicsEnv()
    via_reset.reset(seed=0, options={"physics": heavy})
    for env in (changed, via_reset):
        assert env.total_mass == pytest.approx(0.4 + 1.7) and env.polemass_length == pytest.approx(0.4 * 0.9)
        assert env.physics == pytest.approx(fresh.physics)
    runs = []
    for env in (changed, fresh, cp.CartPolePhysicsEnv()):
        env.reset(seed=3)
        runs.append([env.step(t % 3 == 0)[0] for t in range(10)])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(np.array(runs[0]) - np.array(runs[2])).max() > 1e-3
    with pytest.raises(ValueError, match="pole_weight"):
        changed.set_physics(pole_weight=1.0)


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_tasks_are_drawn_from_the_configured_ranges_with_the_generator(name):
    fam = family(name)
    a = fam.sample_task_params(500, torch.Generator().manual_seed(1))
    b = fam.sample_task_params(500, torch.Generator().manual_seed(1))
    c = fam.sample_task_params(500, torch.Generator().manual_seed(2))
    assert a.shape == (500, len(fam.task_param_names)) and torch.equal(a, b) and not torch.equal(a, c)
    lo, hi = (torch.tensor(v) for v in fam.cfg.bounds())
    assert (a >= lo).all() and (a <= hi).all()
    assert ((a - lo) / (hi - lo)).mean(0).sub(0.5).abs().max() < 0.05  # spread over the whole range
    held_out = fam.evaluation_batch(4, seed=0).params
    assert torch.equal(held_out, fam.evaluation_batch(4, seed=0).params)


@pytest.mark.parametrize("name, values, message", [
    ("cartpole", {"pole_mass_low": 0.6, "pole_mass_high": 0.2}, "pole_mass_low = 0.6 is above pole_mass_high = 0.2"),
    ("cartpole", {"force_low": 20.0}, "force_low = 20.0 is above force_high = 15.0"),
    ("cartpole", {"gravity_high": -1.0}, "gravity_high = -1.0: out of range"),
    ("cartpole", {"pole_length_low": 0.0}, "pole_length_low = 0.0: out of range"),
    ("pendulum", {"length_low": 2.0, "length_high": 1.0}, "length_low = 2.0 is above length_high = 1.0"),
    ("pendulum", {"mass_high": 0}, "mass_high = 0.0: out of range"),
    ("pendulum", {"horizon": 0}, "horizon = 0: out of range"),
])
def test_bad_ranges_name_the_key_and_value(name, values, message):
    with pytest.raises(ConfigError, match=message):
        build_section(FAMILIES.get(name).Config, values, "[task]")


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_observations_follow_the_dtype_of_the_task_parameters(name):
    fam = family(name)
    for dtype in (torch.float32, torch.float64):
        env = fam.make_env(fam.sample_batch(2, torch.Generator().manual_seed(0)).params.to(dtype))
        obs = env.reset(3, torch.Generator().manual_seed(0))
        a = torch.zeros(2, 3, dtype=torch.long) if name == "cartpole" else torch.zeros(2, 3, 1, dtype=dtype)
        nxt, rew, done = env.step(a)
        assert obs.shape == nxt.shape == (2, 3, fam.obs_dim)
        assert obs.dtype == nxt.dtype == rew.dtype == dtype and done.dtype == torch.bool
    assert (obs[..., :1].abs() <= 0.05).all() if name == "cartpole" else torch.allclose(obs[..., :2].norm(dim=-1),
                                                                                         torch.ones(2, 3, dtype=dtype))


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_render_payload_plays_one_episode_per_adaptation_step(name):
    fam = family(name, horizon=200)
    g = torch.Generator().manual_seed(0)
    params = fam.sample_batch(3, g).params
    env = fam.make_env(params)
    policy = RandomPolicy(fam.discrete_actions)
    episodes = [collect(env, policy, None, 4, g) for _ in range(2)]
    if name == "cartpole":
        episodes[1].mask[0, 0, :] = 1  # one full-length episode: every frame distinct from the last
    alive = [int(ep.mask[0, 0].sum()) for ep in episodes]
    start = time.perf_counter()
    p = fam.render(params, episodes, [0, 1])
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"rendering 2 x {max(alive)} frames took {elapsed:.2f} s"
    frames = p.frames
    assert isinstance(p, Frames) and p.view == "frames" and p.family == name and p.fps == 30 and p.steps == [0, 1]
    # episodes of 200 steps are drawn every 2nd step (at most 100 frames an episode)
    drawn = [-(-n // 2) for n in alive]
    assert frames.dtype == np.uint8 and frames.shape[:2] == (2, max(drawn)) and frames.shape[4] == 3
    assert p.frame_steps == [0, 1]
    assert max(frames.shape[2:4]) <= 240 and frames.shape[1] <= fam.horizon
    np.testing.assert_allclose(p.returns, torch.stack([ep.returns.mean(1) for ep in episodes], 1).numpy())
    assert p.returns.shape == (3, 2)
    assert p.task == pytest.approx(dict(zip(fam.task_param_names, params[0].tolist())))
    assert isinstance(p.title, str) and p.title
    for s, n in enumerate(drawn):  # padded with the last frame; the running part moves
        assert (frames[s, n:] == frames[s, n - 1]).all()
        assert not np.array_equal(frames[s, 0], frames[s, n - 1])
    # each frame is the stored observation of task 0, trajectory 0
    obs = episodes[0].obs[0, 0, 0].double().numpy()
    act = episodes[0].actions[0, 0, 0].numpy()
    if name == "cartpole":
        expected = cp.draw(obs[None], p.task["pole_length"], act[None])[0]
    else:
        expected = pd.draw(np.arctan2(obs[1:2], obs[0:1]), p.task["length"], act[None, 0],
                           max(2.2, 1.1 * fam.cfg.length_high))[0]
    np.testing.assert_array_equal(frames[0, 0], expected)
    # with more steps, only the episodes the view plays are drawn: before adaptation and after the last step
    p3 = fam.render(params, episodes + [episodes[0]], [0, 1, 2])
    assert p3.frames.shape[0] == 2 and p3.frame_steps == [0, 2] and p3.returns.shape == (3, 3)


def test_frames_show_the_pole_where_the_state_puts_it():
    pole = np.array(cp.POLE)
    for theta, side in ((0.2, 1), (-0.2, -1)):
        img = cp.draw(np.array([[0.5, 0.0, theta, 0.0]]), 0.5)[0]
        ys, xs = np.nonzero((img == pole).all(-1))
        cart_x = cp.WIDTH / 2 + 0.5 * cp.SCALE
        assert len(xs) > 50 and np.sign(xs[ys < cp.AXLE_Y - 20].mean() - cart_x) == side
    rod = np.array(pd.ROD)
    for theta, (dx, dy) in ((0.0, (0, -1)), (np.pi, (0, 1)), (np.pi / 2, (-1, 0))):  # upright, down, left
        img = pd.draw(np.array([theta]), 1.0)[0]
        ys, xs = np.nonzero((img == rod).all(-1))
        centre = pd.SIZE / 2
        assert np.sign(round(xs.mean() - centre)) == dx and np.sign(round(ys.mean() - centre)) == dy


@pytest.mark.parametrize("preset, family_name", [("rl2-cartpole", "cartpole"), ("maml-trpo-cartpole", "cartpole"),
                                                 ("rl2-pendulum", "pendulum"), ("maml-trpo-pendulum", "pendulum")])
def test_presets_load_cite_their_source_and_use_the_family(preset, family_name):
    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml")
    assert cfg.family == family_name and cfg.meta.name == preset
    assert "gymnasium" in cfg.meta.source and "workbench choice" in cfg.meta.source
    assert ("Duan et al. 2016" if preset.startswith("rl2") else "Finn et al. 2017") in cfg.meta.source
    assert cfg.task == FAMILIES.get(family_name).Config()  # the presets spell out the defaults
