"""HalfCheetah-Vel and HalfCheetah-Dir (MuJoCo): the families register and say what to install without
MuJoCo, both gymnasium faces pass gymnasium's env_checker, the batched and gymnasium faces agree step for
step, the tasks change the reward, the rollout view's frames render offscreen and replay the episode, and
the presets load and train."""
import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import PRESETS, REPO
from workbench.core.config import ExperimentConfig, build_section
from workbench.core.errors import ConfigError
from workbench.core.payloads import Frames
from workbench.core.registry import FAMILIES
from workbench.rl.policies import GaussianPolicy
from workbench.rl.rollout import collect
from workbench.tasks import cheetah as ch

MUJOCO_OK, MUJOCO_WHY = ch.mujoco_status()
needs_mujoco = pytest.mark.skipif(not MUJOCO_OK, reason=f"MuJoCo is not usable here: {MUJOCO_WHY}")
FAMILY_NAMES = ["cheetah-vel", "cheetah-dir"]


def require_rendering():
    ok, why = ch.rendering_status()
    if not ok:
        pytest.skip(f"offscreen rendering does not work here: {why}")


def family(name, **cfg):
    cls = FAMILIES.get(name)
    return cls(cls.Config(**cfg))


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_episodes(fam, tasks, n_traj, n_eps, seed=0, hidden=(16,)):
    g = torch.Generator().manual_seed(seed)
    policy = GaussianPolicy(ch.OBS_DIM, ch.ACT_DIM, hidden, "tanh")
    params = [p.to(torch.get_default_dtype()) for p in policy.init(g)]
    env = fam.make_env(tasks)
    return [collect(env, policy, params, n_traj, g) for _ in range(n_eps)]


# -- without MuJoCo --------------------------------------------------------------------------------------
def test_without_mujoco_the_families_register_disabled_and_say_what_to_install(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["mujoco"] = None  # as if MuJoCo were not installed
        import workbench
        from workbench.core.registry import FAMILIES, family_availability
        for name in {FAMILY_NAMES!r}:
            ok, why = family_availability(FAMILIES.get(name))
            print(name, ok, why)
        from workbench.cli import main
        print("exit", main(["train", {str(PRESETS / "maml-trpo-cheetah-vel-quick.toml")!r}, "--iterations", "1",
                            "--quiet", "--out", {str(tmp_path / "run")!r}]))
        try:
            from workbench.tasks.cheetah import HalfCheetahVelEnv
        except ImportError as e:
            print("ImportError", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name, line in zip(FAMILY_NAMES, lines):
        assert line.startswith(f"{name} False MuJoCo is not usable") and "pip install mujoco" in line, line
    assert "exit 2" in lines
    errors = [line for line in out.stderr.splitlines() if line.startswith("workbench: error:")]
    assert len(errors) == 1 and "'cheetah-vel'" in errors[0], out.stderr  # one line, as every ConfigError
    assert "install workbench[mujoco] (pip install mujoco imageio)" in errors[0]
    assert any(line.startswith("ImportError") and "pip install mujoco" in line for line in lines)


def test_without_offscreen_rendering_the_families_are_disabled_and_render_says_why(monkeypatch):
    why = "offscreen rendering failed (MUJOCO_GL='egl': ImportError: no libEGL); " + ch.EGL_HINT
    monkeypatch.setitem(ch._status, "render", (False, why))
    for name in FAMILY_NAMES:
        assert FAMILIES.get(name).available() == (False, why) or not MUJOCO_OK
    if MUJOCO_OK:
        with pytest.raises(ConfigError, match="apt-get install libegl1.*run.render_tasks = 0"):
            family("cheetah-vel").render(torch.zeros(1, 1), [], [0])


# -- configuration ---------------------------------------------------------------------------------------
def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"p.toml: \[task\]: velocity_low = 2.5 is above velocity_high = 2.0"):
        build_section(ch.CheetahVelConfig, {"velocity_low": 2.5}, "p.toml: [task]")
    with pytest.raises(ConfigError, match="frame_size = 480: out of range"):
        build_section(ch.CheetahDirConfig, {"frame_size": 480}, "p.toml: [task]")
    with pytest.raises(ConfigError, match="action_scale = 0.0: out of range"):
        build_section(ch.CheetahDirConfig, {"action_scale": 0.0}, "p.toml: [task]")


@pytest.mark.parametrize("preset", ["maml-trpo-cheetah-vel", "maml-trpo-cheetah-dir", "maml-trpo-cheetah-vel-quick",
                                    "maml-trpo-cheetah-dir-quick"])
def test_presets_load_and_cite_their_source(preset):
    if not MUJOCO_OK:  # refused with the reason and what to install, never half-loaded
        with pytest.raises(ConfigError, match="not available here: .*install workbench\\[mujoco\\]"):
            ExperimentConfig.load(PRESETS / f"{preset}.toml")
        pytest.skip(f"MuJoCo is not usable here: {MUJOCO_WHY}")
    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml")
    assert cfg.family == ("cheetah-vel" if "-vel" in preset else "cheetah-dir")
    assert cfg.algorithm_name == "maml-trpo" and cfg.meta.name == preset
    assert cfg.task.horizon == (100 if preset.endswith("quick") else 200)
    assert cfg.task.ctrl_cost_weight == 0.05
    assert "Finn et al. 2017" in cfg.meta.source and "pytorch-maml-rl" in cfg.meta.source


# -- the environments ------------------------------------------------------------------------------------
@needs_mujoco
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_gymnasium_faces_pass_the_env_checker(name):
    from gymnasium.utils.env_checker import check_env

    rendering, _ = ch.rendering_status()
    fam = family(name, horizon=20)
    env = fam.gym_env(0.7 if name == "cheetah-vel" else -1.0, render_mode="rgb_array" if rendering else None)
    check_env(env, skip_render_check=not rendering)
    key = fam.task_param_names[0]
    obs, info = env.reset(seed=0, options={key: 1.5 if name == "cheetah-vel" else 1.0})
    assert obs.shape == (17,) and info[key] == env.unwrapped.task
    for t in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and truncated == (t == 19)
    assert {"forward_velocity", "reward_forward", "reward_ctrl", key} <= set(info)
    if rendering:
        frame = env.render()
        assert frame.shape == (240, 240, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


@needs_mujoco
@pytest.mark.parametrize("name,frame_skip", [("cheetah-vel", 5), ("cheetah-dir", 5), ("cheetah-vel", 1)])
def test_batched_and_gymnasium_faces_agree_step_for_step(name, frame_skip, float64):
    """Also with the MAML paper's rllab timing (frame_skip 1: dt 0.01 s, gymnasium computes v over its own
    dt, so the batched velocity's dt is checked too)."""
    fam = family(name, horizon=40, frame_skip=frame_skip)
    tasks = torch.tensor([[0.3], [1.8]]) if name == "cheetah-vel" else torch.tensor([[1.0], [-1.0]])
    env = fam.make_env(tasks)
    obs_b = env.reset(2, torch.Generator().manual_seed(1))
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 1.5, (40, 2, 2, 6))  # many beyond the ±1 clip
    faces = []
    for b in range(2):
        face = fam.gym_env(float(tasks[b, 0]))
        face.reset(seed=0)
        qpos, qvel = fam.initial_state(obs_b[b, 0])  # where trajectory 0 of the task started
        face.unwrapped.set_state(qpos, qvel)
        np.testing.assert_allclose(face.unwrapped._get_obs(), obs_b[b, 0].numpy(), rtol=0, atol=1e-12)
        faces.append(face)
    for t in range(40):
        obs_b, rew_b, done_b = env.step(torch.from_numpy(actions[t]))
        assert obs_b.shape == (2, 2, 17) and rew_b.shape == done_b.shape == (2, 2) and not done_b.any()
        for b, face in enumerate(faces):
            obs, rew, terminated, truncated, _ = face.step(actions[t, b, 0])
            np.testing.assert_allclose(obs, obs_b[b, 0].numpy(), rtol=1e-9, atol=1e-9)
            assert rew == pytest.approx(float(rew_b[b, 0]), abs=1e-9)
            assert not terminated and truncated == (t == 39)


@needs_mujoco
def test_tasks_change_the_reward_and_not_the_dynamics(float64):
    """Same initial state and actions: the observations coincide, the rewards follow each task's formula."""
    rng = np.random.default_rng(2)
    actions = torch.from_numpy(rng.normal(0, 1.0, (30, 1, 3, 6)))
    cost = 0.05 * np.square(ch.motor_commands(actions.numpy(), 1.0)).sum(-1)[:, 0]  # (30, 3)

    def run(name, task):
        env = family(name).make_env(torch.tensor([[task]]))
        env.reset(3, torch.Generator().manual_seed(5))
        out = [env.step(a) for a in actions]
        return torch.stack([o for o, _, _ in out]), torch.stack([r[0] for _, r, _ in out]).numpy()

    obs_f, forward = run("cheetah-dir", 1.0)
    obs_r, backward = run("cheetah-dir", -1.0)
    torch.testing.assert_close(obs_f, obs_r, rtol=0, atol=0)  # the task does not change the dynamics
    np.testing.assert_allclose(forward + backward, -2 * cost, atol=1e-12)
    velocity = (forward - backward) / 2  # = v
    assert np.abs(velocity).max() > 0.05
    for goal in (0.0, 1.3):
        obs_v, reward = run("cheetah-vel", goal)
        torch.testing.assert_close(obs_v, obs_f, rtol=0, atol=0)
        np.testing.assert_allclose(reward, -np.abs(velocity - goal) - cost, atol=1e-9)


@needs_mujoco
def test_task_sampling():
    g = torch.Generator().manual_seed(0)
    goals = family("cheetah-vel", velocity_low=0.5, velocity_high=1.5).sample_task_params(500, g)
    assert goals.shape == (500, 1) and 0.5 <= goals.min() and goals.max() <= 1.5 and goals.std() > 0.25
    dirs = family("cheetah-dir").sample_task_params(500, g)
    assert set(dirs.flatten().tolist()) == {-1.0, 1.0} and abs(float(dirs.mean())) < 0.15


@needs_mujoco
def test_the_loop_backend_steps_exactly_as_the_batched_one():
    pytest.importorskip("mujoco.batch", reason="MuJoCo < 4 has no mujoco.batch: only the loop backend exists")
    rng = np.random.default_rng(0)
    m = ch.cheetah_model()
    qpos, qvel = m.qpos0 + rng.uniform(-0.1, 0.1, (5, m.nq)), 0.1 * rng.standard_normal((5, m.nv))
    sims = [ch.make_sims(5, 2, backend) for backend in ("batch", "loop")]
    for s in sims:
        s.reset_to(qpos, qvel)
    for _ in range(20):
        ctrl = rng.uniform(-1, 1, (5, m.nu))
        for s in sims:
            s.step(ctrl, ch.FRAME_SKIP)
        np.testing.assert_array_equal(sims[0].qpos, sims[1].qpos)
        np.testing.assert_array_equal(sims[0].qvel, sims[1].qvel)


# -- the rollout view ------------------------------------------------------------------------------------
@needs_mujoco
@pytest.mark.parametrize("frame_skip", [5, 1])
def test_replay_from_the_stored_initial_state_reproduces_the_episode(frame_skip, float64):
    fam = family("cheetah-vel", horizon=30, frame_skip=frame_skip)
    tasks = torch.tensor([[1.2], [0.4]])
    (ep,) = random_episodes(fam, tasks, 3, 1)
    motor = ch.motor_commands(ep.actions[0, 0].numpy(), 1.0)
    cost = 0.05 * np.square(motor).sum(-1)
    velocity = ch.replay(*fam.initial_state(ep.obs[0, 0, 0]), motor, frame_skip=frame_skip)
    np.testing.assert_allclose(-np.abs(velocity - 1.2) - cost, ep.rewards[0, 0].numpy(), rtol=0, atol=1e-12)
    # an episode the family did not sample starts from what its first observation shows, at x = 0
    velocity = ch.replay(*family("cheetah-vel").initial_state(ep.obs[0, 0, 0]), motor, frame_skip=frame_skip)
    np.testing.assert_allclose(-np.abs(velocity - 1.2) - cost, ep.rewards[0, 0].numpy(), atol=1e-6)


@needs_mujoco
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_render_payload_plays_one_episode_before_and_after_adaptation(name):
    require_rendering()
    fam = family(name, horizon=200, frame_size=48)  # 200 steps, every 2nd rendered: 100 frames
    tasks = fam.sample_task_params(2, torch.Generator().manual_seed(3))
    episodes = random_episodes(fam, tasks, 2, 2)
    payload = fam.render(tasks, episodes, [0, 1])
    assert isinstance(payload, Frames) and payload.step_names is None
    assert {f.name for f in dataclasses.fields(payload)} == {"family", "frames", "returns", "steps", "frame_steps",
                                                             "fps", "task", "title", "step_names"}
    assert payload.frame_steps == [0, 1]
    assert payload.view == "frames" and payload.family == name and payload.fps == 30
    frames = payload.frames
    assert frames.shape == (2, 100, 48, 48, 3) and frames.dtype == np.uint8
    assert payload.steps == [0, 1]
    expected = torch.stack([e.returns.mean(1) for e in episodes], 1).numpy()
    np.testing.assert_allclose(payload.returns, expected)
    key = fam.task_param_names[0]
    assert list(payload.task) == [key] and payload.task[key] == pytest.approx(float(tasks[0, 0]))
    assert isinstance(payload.title, str) and payload.title.startswith("HalfCheetah-")
    assert not np.array_equal(frames[0, 0], frames[0, -1])  # the cheetah moves (and the floor under it)
    assert not np.array_equal(frames[0, -1], frames[1, -1])  # the two episodes differ


@needs_mujoco
def test_a_short_maml_trpo_run_trains_and_renders_frames(tmp_path):
    import workbench
    from workbench.core import events as ev
    from workbench.services.trainer import Trainer

    rendering, _ = ch.rendering_status()
    cfg = ExperimentConfig.load(PRESETS / "maml-trpo-cheetah-dir-quick.toml", [
        "run.iterations=2", "run.eval_interval=2", "run.eval_tasks=2", "run.eval_steps=1", "run.threads=1",
        f"run.render_tasks={1 if rendering else 0}", "algorithm.meta_batch=2", "algorithm.trajectories=2",
        "task.horizon=20", "task.frame_size=48", "model.hidden=[16]"])
    seen = []
    result = Trainer(cfg, tmp_path / "run", [seen.append]).run()
    assert result.status == "finished"
    evals = [e for e in seen if isinstance(e, ev.Evaluation)]
    assert evals[-1].metric == "return" and np.isfinite(evals[-1].mean).all()
    if rendering:
        payload = [e for e in seen if isinstance(e, ev.Render)][-1].payload
        assert payload.view == "frames" and payload.frames.shape == (2, 21, 48, 48, 3)
    res = workbench.load_model(result.bundle_path).evaluate(tasks=2, seed=0, steps=[0, 1])
    assert res["metric"] == "return" and np.isfinite(res["mean"]).all()
