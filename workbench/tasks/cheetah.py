"""HalfCheetah-Vel and HalfCheetah-Dir on gymnasium's MuJoCo HalfCheetah (Finn et al. 2017 sec. 5.3;
Rakelly et al. 2019, PEARL; pytorch-maml-rl's HalfCheetahVelEnv / HalfCheetahDirEnv).

Both families share the robot, gymnasium's ``half_cheetah.xml`` (MuJoCo timestep 0.01 s; observation =
qpos[1:] and qvel, 17 numbers, the x position left out) and differ in the reward.  A control step is
``frame_skip`` MuJoCo steps: 5 (dt 0.05 s) as gymnasium's HalfCheetah-v5, or 1 (dt 0.01 s) as the rllab
HalfCheetah of the MAML paper's code, whose ``half_cheetah.xml`` sets no frame skip.

* ``cheetah-vel``: a goal velocity v* ~ U[velocity_low, velocity_high] (U[0, 2]);
  reward = -|v - v*| - ctrl_cost_weight * |a|^2
* ``cheetah-dir``: a direction d = ±1 (each with probability 1/2); reward = d * v - ctrl_cost_weight * |a|^2

where v is the forward velocity of the root over the control step, (x_after - x_before) / dt, and ``a`` the
motor command: the policy's action clipped to ±action_scale and divided by it (so in [-1, 1], the actuators'
range; rllab's ``normalize`` as used by the original MAML code clips the same way).  Episodes last
``horizon`` steps (200) and never terminate early.  Resets follow gymnasium: qpos = qpos0 + U(-s, s),
qvel = s * N(0, 1), s = reset_noise_scale, drawn from the torch generator passed to ``reset``.

Two faces with identical dynamics, like navigation:

* :class:`CheetahBatch`, the batched environment used for training: B tasks x N trajectories stepped
  together by ``mujoco.batch.Batch`` (MuJoCo >= 4; a thread pool stepping many MjData rows in one call,
  bit-identical to a loop of ``mj_step``), or by such a loop with older MuJoCo, split over threads too;
  ``run.sampler_workers`` sets the threads (0: as many as the torch threads), never the results;
* ``HalfCheetahVelEnv`` / ``HalfCheetahDirEnv``, gymnasium ``Env`` subclasses of gymnasium's
  HalfCheetahEnv (v5) with the task's reward, for the API checks, the playground and rendering.

MuJoCo is optional (``pip install workbench[mujoco]``, i.e. ``pip install mujoco imageio``): without it the families
stay registered, ``available()`` says why they cannot run, and using one raises a ConfigError that says
what to install.  Frames are rendered offscreen (MUJOCO_GL=egl by default on Linux).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from workbench.core.config import param
from workbench.core.errors import Cancelled, ConfigError, TrainingDiverged
from workbench.core.payloads import Frames
from workbench.core.registry import FAMILIES

from .rl_base import BatchedEnv, RLFamily, TaskParam

FRAME_SKIP = 5  # gymnasium HalfCheetah-v5's (the families' default; cfg.frame_skip)
OBS_DIM, ACT_DIM = 17, 6
MAX_FRAMES = 100  # frames per rendered episode
MAX_FRAME_SIZE = 240
FPS = 30
INSTALL_HINT = "install workbench[mujoco] (pip install mujoco imageio)"
EGL_HINT = ("install EGL (apt-get install libegl1 libegl-mesa0 libgl1) or set MUJOCO_GL to a backend that "
            "works here (glfw with a display, osmesa)")


# -- optional MuJoCo ---------------------------------------------------------------------------------------
_lock = threading.Lock()
_status: dict[str, tuple[bool, str]] = {}


def _import_mujoco():
    """The mujoco module, imported on first use (offscreen EGL rendering by default on Linux)."""
    if "mujoco" not in _status:
        with _lock:
            if "mujoco" not in _status:
                if sys.platform.startswith("linux"):
                    os.environ.setdefault("MUJOCO_GL", "egl")
                try:
                    import mujoco  # noqa: F401
                    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv  # noqa: F401
                    _status["mujoco"] = (True, "")
                except Exception as e:  # ImportError, or a broken native library
                    _status["mujoco"] = (False, f"MuJoCo is not usable ({type(e).__name__}: {e}); {INSTALL_HINT}")
    if not _status["mujoco"][0]:
        return None
    import mujoco

    return mujoco


def mujoco_status() -> tuple[bool, str]:
    """(True, "") when MuJoCo and gymnasium's MuJoCo environments import; else (False, what to install)."""
    _import_mujoco()
    return _status["mujoco"]


def rendering_status() -> tuple[bool, str]:
    """(True, "") when an offscreen frame renders here (probed once per process, in the calling thread)."""
    if "render" not in _status:
        ok, why = mujoco_status()
        if ok:
            try:
                mujoco = _import_mujoco()
                model = cheetah_model()
                data = mujoco.MjData(model)
                mujoco.mj_forward(model, data)
                renderer = mujoco.Renderer(model, 16, 16)
                try:
                    renderer.update_scene(data, camera="track")
                    img = renderer.render()
                finally:
                    renderer.close()
                if img.shape != (16, 16, 3):
                    raise RuntimeError(f"a frame of shape {img.shape}")
            except Exception as e:
                ok = False
                why = (f"offscreen rendering failed (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}: "
                       f"{type(e).__name__}: {e}); {EGL_HINT}")
        _status["render"] = (ok, why)
    return _status["render"]


def require_mujoco(what: str):
    mujoco = _import_mujoco()
    if mujoco is None:
        raise ConfigError(f"{what} needs MuJoCo: {_status['mujoco'][1]}")
    return mujoco


@contextlib.contextmanager
def _quiet_deprecations(mujoco):
    """Load gymnasium's half_cheetah.xml without recent MuJoCo's (4.0) warning about its deprecated
    ``settotalmass`` attribute, which MuJoCo prints and appends to MUJOCO_LOG.TXT in the working directory at
    every load; other warnings go to Python's ``warnings``."""
    previous = mujoco.get_mju_user_warning()

    def handler(message):
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


_model_cache: dict[str, object] = {}


def cheetah_model():
    """gymnasium's half_cheetah.xml, compiled once per process (an MjModel is read-only here)."""
    if "model" not in _model_cache:
        mujoco = require_mujoco("HalfCheetah")
        import gymnasium

        path = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", "half_cheetah.xml")
        with _quiet_deprecations(mujoco):
            _model_cache["model"] = mujoco.MjModel.from_xml_path(path)
    return _model_cache["model"]


def _dt(model, frame_skip: int) -> float:
    return model.opt.timestep * frame_skip  # as gymnasium's MujocoEnv.dt


def motor_commands(actions: np.ndarray, action_scale: float) -> np.ndarray:
    """Policy actions -> actuator commands in [-1, 1]: clipped to ±action_scale, divided by it."""
    a = np.clip(np.asarray(actions, dtype=np.float64), -action_scale, action_scale)
    return a if action_scale == 1.0 else a / action_scale


# -- many simulations at once ----------------------------------------------------------------------------
class _BatchSims:
    """MuJoCo >= 4: ``mujoco.batch.Batch`` steps all simulations in one call on a thread pool of ``nthread``
    threads (each simulation on one thread: the results do not depend on ``nthread``)."""

    def __init__(self, mujoco, model, nsim: int, nthread: int):
        from mujoco.batch import Batch

        self.mujoco, self.nsim, self.nthread = mujoco, nsim, max(1, nthread)
        self.batch = Batch(model, nsim, nthread=self.nthread)
        self.qpos, self.qvel, self.ctrl = (self.batch.bind(f) for f in ("qpos", "qvel", "ctrl"))

    def reset_to(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        # as gymnasium: mj_resetData, then set_state (qpos, qvel, mj_forward)
        self.batch.reset(stage=self.mujoco.mjtStage.mjSTAGE_NONE.value)
        self.qpos[:] = qpos
        self.qvel[:] = qvel
        self.batch.forward()

    def step(self, ctrl: np.ndarray, nstep: int) -> None:
        self.ctrl[:] = ctrl
        self.batch.step(nstep=nstep)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _thread_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads, made on first use and shared by every :class:`_LoopSims` that
    asks for that many (environments are made once per meta-step: their threads are not)."""
    with _pools_lock:
        if n not in _pools:
            _pools[n] = ThreadPoolExecutor(n, thread_name_prefix=f"mujoco-sims-{n}")
        return _pools[n]


class _LoopSims:
    """Older MuJoCo: one MjData per simulation, stepped by ``mj_step`` in a loop; with ``nthread`` > 1 the
    simulations are split into ``nthread`` contiguous chunks stepped at once, one by the calling thread and
    the others by a thread pool (``mj_step`` releases the GIL).  Each simulation is stepped by one thread
    from its own MjData, so the results do not depend on ``nthread``."""

    def __init__(self, mujoco, model, nsim: int, nthread: int):
        self.mujoco, self.model, self.nsim = mujoco, model, nsim
        self.nthread = max(1, min(nthread, nsim))
        self.datas = [mujoco.MjData(model) for _ in range(nsim)]
        self.qpos = np.zeros((nsim, model.nq))
        self.qvel = np.zeros((nsim, model.nv))
        # each simulation's arrays, looked up once: (data, data.ctrl, data.qpos, data.qvel, qpos row, qvel row)
        self._rows = [(d, d.ctrl, d.qpos, d.qvel, self.qpos[i], self.qvel[i]) for i, d in enumerate(self.datas)]
        bounds = np.linspace(0, nsim, self.nthread + 1).round().astype(int)
        self.chunks = [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def reset_to(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        mj = self.mujoco
        for i, d in enumerate(self.datas):
            mj.mj_resetData(self.model, d)
            d.qpos[:] = qpos[i]
            d.qvel[:] = qvel[i]
            mj.mj_forward(self.model, d)
        self.qpos[:], self.qvel[:] = qpos, qvel

    def _step_chunk(self, rows: range, ctrl: np.ndarray, nstep: int) -> None:
        mj_step, m, copyto = self.mujoco.mj_step, self.model, np.copyto
        for i in rows:
            d, d_ctrl, d_qpos, d_qvel, qpos, qvel = self._rows[i]
            copyto(d_ctrl, ctrl[i])
            mj_step(m, d, nstep)
            copyto(qpos, d_qpos)
            copyto(qvel, d_qvel)

    def step(self, ctrl: np.ndarray, nstep: int) -> None:
        if self.nthread == 1:
            self._step_chunk(self.chunks[0], ctrl, nstep)
            return
        pool = _thread_pool(self.nthread - 1)
        futures = [pool.submit(self._step_chunk, rows, ctrl, nstep) for rows in self.chunks[1:]]
        try:
            self._step_chunk(self.chunks[0], ctrl, nstep)
        finally:
            wait(futures)  # every chunk has finished with its MjData before anything is raised or read
        for f in futures:
            f.result()  # a chunk's failure (an unstable simulation) is raised here


def resolve_workers(workers: int) -> int:
    """The physics threads of ``run.sampler_workers = workers``: itself, or for 0 (automatic) the torch
    threads of the calling thread (what a run sets from ``run.threads``)."""
    return workers if workers > 0 else max(1, torch.get_num_threads())


def make_sims(nsim: int, nthread: int | None = None, backend: str = "auto"):
    """``nsim`` simulations of the cheetah stepped on ``nthread`` threads (None or 0: as many as the torch
    threads) with the fastest stepping this MuJoCo offers: 'batch' (``mujoco.batch.Batch``, MuJoCo >= 4) or
    'loop' (a loop of ``mj_step`` split over a thread pool); or, after
    :func:`workbench.tasks.cheetah_remote.use_ray_actors`, 'ray' (on that many Ray actors)."""
    mujoco = require_mujoco("HalfCheetah")
    nthread = resolve_workers(nthread or 0)
    from . import cheetah_remote

    if backend == "ray" or (backend == "auto" and cheetah_remote.ray_actors()):
        return cheetah_remote.ray_sims(nsim)  # on the Ray cluster's actors (workbench train --address)
    if backend == "auto":
        try:
            import mujoco.batch  # noqa: F401

            backend = "batch"
        except ImportError:
            backend = "loop"
    cls = _BatchSims if backend == "batch" else _LoopSims
    return cls(mujoco, cheetah_model(), nsim, nthread)


class CheetahBatch(BatchedEnv):
    """B tasks x N trajectories of HalfCheetah with the family's reward, as tensors on the tasks' device."""

    def __init__(self, family: "_CheetahFamily", task_params: torch.Tensor, workers: int = 0):
        """``workers``: threads stepping the simulations (``run.sampler_workers``; 0: as many as the torch
        threads when the first episode starts).  The episodes do not depend on it."""
        self.family, self.cfg = family, family.cfg
        self.n_tasks, self.horizon = task_params.shape[0], family.cfg.horizon
        self.device = task_params.device
        self.goal = task_params[:, 0].detach().to("cpu", torch.float64).numpy()
        self.workers = workers
        self.model = cheetah_model()
        self.frame_skip = family.cfg.frame_skip
        self.dt = _dt(self.model, self.frame_skip)
        self.sims = None

    def reset(self, n_traj, generator):
        m, b, s = self.model, self.n_tasks, self.cfg.reset_noise_scale
        n_sim = b * n_traj
        dev = generator.device
        u = torch.rand(b, n_traj, m.nq, generator=generator, device=dev, dtype=torch.float64)
        z = torch.randn(b, n_traj, m.nv, generator=generator, device=dev, dtype=torch.float64)
        qpos = m.qpos0 + (-s + 2 * s * u).reshape(n_sim, m.nq).cpu().numpy()
        qvel = s * z.reshape(n_sim, m.nv).cpu().numpy()
        if self.sims is None or self.sims.nsim != n_sim:
            self.sims = make_sims(n_sim, self.workers)
        self.sims.reset_to(qpos, qvel)
        self.n_traj = n_traj
        self.task_goal = np.repeat(self.goal, n_traj)
        obs = self._obs()
        # remember where trajectory 0 of each task started, so that render() replays it exactly
        first = np.arange(b) * n_traj
        self.family.remember_initial_states(obs[:, 0], qpos[first], qvel[first])
        return obs

    def _obs(self) -> torch.Tensor:
        o = np.concatenate([self.sims.qpos[:, 1:], self.sims.qvel], 1)
        out = torch.from_numpy(o).to(device=self.device, dtype=torch.get_default_dtype())
        return out.view(self.n_tasks, self.n_traj, OBS_DIM)

    def step(self, actions):
        a = motor_commands(actions.detach().to("cpu", torch.float64).numpy().reshape(-1, ACT_DIM),
                           self.cfg.action_scale)
        x_before = self.sims.qpos[:, 0].copy()
        try:
            self.sims.step(a, self.frame_skip)
        except Exception as e:
            if type(e).__name__ not in ("SimulationError", "FatalError"):  # mujoco.batch's, mujoco's
                raise
            raise TrainingDiverged(f"the MuJoCo simulation became unstable: {e}") from e
        velocity = (self.sims.qpos[:, 0] - x_before) / self.dt
        reward = (self.family.forward_reward(self.task_goal, velocity)
                  - self.cfg.ctrl_cost_weight * np.square(a).sum(-1))
        reward = torch.from_numpy(reward).to(device=self.device, dtype=torch.get_default_dtype())
        reward = reward.view(self.n_tasks, self.n_traj)
        return self._obs(), reward, torch.zeros(reward.shape, dtype=torch.bool, device=self.device)


def replay(qpos0, qvel0, motor: np.ndarray, on_state=None, frame_skip: int = FRAME_SKIP) -> np.ndarray:
    """Replay motor commands (T, 6) from an initial state in a fresh MjData, as the batched environment
    steps (``frame_skip`` MuJoCo steps per command); ``on_state(t, data)`` sees the state after t steps
    (t = 0..T) with its derived quantities current.  Returns the forward velocity of each step (T,), m/s."""
    mujoco = require_mujoco("HalfCheetah")
    model = cheetah_model()
    data, view = mujoco.MjData(model), mujoco.MjData(model) if on_state else None
    mujoco.mj_resetData(model, data)
    data.qpos[:], data.qvel[:] = qpos0, qvel0
    mujoco.mj_forward(model, data)
    dt = _dt(model, frame_skip)

    def show(t):
        if on_state is not None:
            view.qpos[:], view.qvel[:] = data.qpos, data.qvel
            mujoco.mj_forward(model, view)  # a separate MjData: the replay itself stays untouched
            on_state(t, view)

    show(0)
    velocity = np.empty(len(motor))
    for t, a in enumerate(motor):
        x_before = data.qpos[0]
        data.ctrl[:] = a
        mujoco.mj_step(model, data, nstep=frame_skip)
        velocity[t] = (data.qpos[0] - x_before) / dt
        show(t + 1)
    return velocity


# -- configuration ---------------------------------------------------------------------------------------
def _horizon():
    return param(200, "Steps per episode (MAML and PEARL: 200; pytorch-maml-rl's current configs: 100).",
                 low=1, high=10_000)


def _ctrl_cost_weight():
    return param(0.05, "Weight of the control cost |a|^2 (MAML, PEARL, pytorch-maml-rl: 0.5 * 0.1 = 0.05).",
                 low=0.0, high=100.0)


def _action_scale():
    return param(1.0, "Policy actions are clipped to ±action_scale and divided by it to give motor commands "
                 "in [-1, 1] (MAML's rllab code: 1; pytorch-maml-rl's normalization_scale: 10).",
                 low=0.0, high=1000.0, low_inclusive=False)


def _reset_noise_scale():
    return param(0.1, "Initial state: qpos0 + U(-s, s), qvel = s * N(0, 1) (gymnasium HalfCheetah-v5: 0.1).",
                 low=0.0, high=10.0)


def _frame_skip():
    return param(FRAME_SKIP, "MuJoCo steps of 0.01 s per control step: 5 (dt 0.05 s) as gymnasium's "
                 "HalfCheetah-v5 and pytorch-maml-rl, 1 (dt 0.01 s) as the MAML paper's rllab HalfCheetah.",
                 low=1, high=100)


def _frame_size():
    return param(240, "Width and height of the rendered frames in pixels.", low=32, high=MAX_FRAME_SIZE)


def _frame_stride():
    return param(2, f"Render every k-th step of the shown episode (at most {MAX_FRAMES} frames per episode).",
                 low=1, high=1000)


@dataclass
class CheetahVelConfig:
    velocity_low: float = param(0.0, "Lower end of the goal velocity (m/s).", low=-10.0, high=10.0)
    velocity_high: float = param(2.0, "Upper end of the goal velocity (m/s).", low=-10.0, high=10.0)
    horizon: int = _horizon()
    ctrl_cost_weight: float = _ctrl_cost_weight()
    action_scale: float = _action_scale()
    reset_noise_scale: float = _reset_noise_scale()
    frame_skip: int = _frame_skip()
    frame_size: int = _frame_size()
    frame_stride: int = _frame_stride()

    def validate(self, where):
        if self.velocity_low > self.velocity_high:
            raise ConfigError(f"{where}: velocity_low = {self.velocity_low!r} is above velocity_high = "
                              f"{self.velocity_high!r}")


@dataclass
class CheetahDirConfig:
    horizon: int = _horizon()
    ctrl_cost_weight: float = _ctrl_cost_weight()
    action_scale: float = _action_scale()
    reset_noise_scale: float = _reset_noise_scale()
    frame_skip: int = _frame_skip()
    frame_size: int = _frame_size()
    frame_stride: int = _frame_stride()


# -- the families ----------------------------------------------------------------------------------------
class _CheetahFamily(RLFamily):
    payload = Frames  # what render() gives the rollout view
    obs_dim, act_dim = OBS_DIM, ACT_DIM
    short: ClassVar[str]  # the gymnasium face's class name

    def __init__(self, cfg):
        require_mujoco(f"task family {self.name!r}")
        super().__init__(cfg)
        self._initial: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._initial_lock = threading.Lock()

    @property
    def action_scale(self) -> float:
        """Policies squashing their actions squash to ±action_scale: the motors' full range."""
        return float(self.cfg.action_scale)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this family can run and render here, and if not, why (and what to install)."""
        ok, why = mujoco_status()
        if ok:
            ok, why = rendering_status()
        return ok, why

    # -- per family -----------------------------------------------------------------------------------
    @staticmethod
    def forward_reward(goal: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def task_dict(self, row: torch.Tensor) -> dict:
        raise NotImplementedError

    def describe(self, task: dict) -> str:
        raise NotImplementedError

    # -- RLFamily -------------------------------------------------------------------------------------
    def make_env(self, task_params, workers: int = 0):
        """B tasks x N trajectories stepped on ``workers`` threads (``run.sampler_workers``; 0: automatic)."""
        return CheetahBatch(self, task_params, workers)

    def gym_env(self, task: float, render_mode=None, **kwargs):
        """The gymnasium face of one task with this family's settings."""
        cls = face(self.short)
        c = self.cfg
        return cls(task, horizon=c.horizon, ctrl_cost_weight=c.ctrl_cost_weight, action_scale=c.action_scale,
                   reset_noise_scale=c.reset_noise_scale, frame_skip=c.frame_skip, render_mode=render_mode,
                   width=c.frame_size, height=c.frame_size, **kwargs)

    def remember_initial_states(self, obs0: torch.Tensor, qpos: np.ndarray, qvel: np.ndarray) -> None:
        keys = obs0.detach().to("cpu", torch.float32).numpy()
        with self._initial_lock:
            for k, p, v in zip(keys, qpos, qvel):
                self._initial[k.tobytes()] = (p.copy(), v.copy())
                self._initial.move_to_end(k.tobytes())
            while len(self._initial) > 4096:
                self._initial.popitem(last=False)

    def initial_state(self, obs0: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The exact initial (qpos, qvel) of an episode that started with observation ``obs0``; for one this
        family did not sample, the state the observation shows, at x = 0 (the dynamics do not depend on x)."""
        key = obs0.detach().to("cpu", torch.float32).numpy().tobytes()
        with self._initial_lock:
            hit = self._initial.get(key)
        if hit is not None:
            return hit
        o = obs0.detach().to("cpu", torch.float64).numpy()
        return np.concatenate([[0.0], o[:8]]), o[8:].copy()

    def render(self, task_params, episodes, steps, cancel=None) -> Frames:
        """Frames of one episode (task 0, trajectory 0) after each adaptation step, replayed offscreen.
        ``cancel`` (a threading.Event; the playground's) is checked at every frame (a second or more of work)."""
        ok, why = rendering_status()
        if not ok:
            raise ConfigError(f"{self.name}: cannot render the rollout view: {why}; or set run.render_tasks = 0 "
                              f"to train without it")
        mujoco = require_mujoco(self.name)
        model = cheetah_model()
        horizon = episodes[0].rewards.shape[-1]
        stride = max(self.cfg.frame_stride, math.ceil(horizon / MAX_FRAMES))
        shown = list(range(0, horizon + 1, stride))[:MAX_FRAMES]
        size = self.cfg.frame_size
        drawn = [episodes[0], episodes[-1]] if len(episodes) > 1 else episodes  # the view shows these two
        frames = np.empty((len(drawn), len(shown), size, size, 3), np.uint8)
        renderer = mujoco.Renderer(model, height=size, width=size)
        try:
            # shadows and reflections cost ~5x the rest with software EGL
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            slot = {t: i for i, t in enumerate(shown)}
            for s, ep in enumerate(drawn):
                alive = max(1, int((ep.mask[0, 0] > 0).sum()))
                qpos0, qvel0 = self.initial_state(ep.obs[0, 0, 0])
                motor = motor_commands(ep.actions[0, 0, :alive].detach().to("cpu", torch.float64).numpy(),
                                       self.cfg.action_scale)
                last = [0]

                def capture(t, data, s=s, last=last):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled")
                    if t in slot:
                        renderer.update_scene(data, camera="track")
                        renderer.render(out=frames[s, slot[t]])
                        last[0] = slot[t]

                replay(qpos0, qvel0, motor, capture, frame_skip=self.cfg.frame_skip)
                frames[s, last[0] + 1:] = frames[s, last[0]]  # an episode that ended early holds its last frame
        finally:
            renderer.close()
        task = self.task_dict(task_params[0])
        return Frames(
            family=self.name,
            frames=frames,
            returns=torch.stack([ep.returns.mean(1) for ep in episodes], 1).detach().cpu().numpy().copy(),
            steps=list(steps),
            frame_steps=[steps[0], steps[-1]] if len(episodes) > 1 else [steps[0]],
            fps=FPS,
            task=task,
            title=f"{self.title.split(' (')[0]}: {self.describe(task)}",
        )


@FAMILIES.register
class CheetahVel(_CheetahFamily):
    name = "cheetah-vel"
    title = "HalfCheetah-Vel (MuJoCo, run at a goal velocity)"
    Config = CheetahVelConfig
    task_param_names = ("goal_velocity",)
    short = "HalfCheetahVelEnv"

    def sample_task_params(self, n, generator):
        c = self.cfg
        return c.velocity_low + (c.velocity_high - c.velocity_low) * torch.rand(n, 1, generator=generator)

    @staticmethod
    def forward_reward(goal, velocity):
        return -np.abs(velocity - goal)

    def task_dict(self, row):
        return {"goal_velocity": float(row[0])}

    def playground_params(self):
        lo, hi = self.cfg.velocity_low, self.cfg.velocity_high
        return [TaskParam("goal_velocity", "goal velocity, m/s", lo, hi, (lo + hi) / 2)]

    def describe(self, task):
        return f"goal velocity {task['goal_velocity']:.2f} m/s"


@FAMILIES.register
class CheetahDir(_CheetahFamily):
    name = "cheetah-dir"
    title = "HalfCheetah-Dir (MuJoCo, run forward or backward)"
    Config = CheetahDirConfig
    task_param_names = ("direction",)
    short = "HalfCheetahDirEnv"

    def sample_task_params(self, n, generator):
        return (2 * torch.randint(0, 2, (n, 1), generator=generator) - 1).to(torch.get_default_dtype())

    @staticmethod
    def forward_reward(goal, velocity):
        return goal * velocity

    def task_dict(self, row):
        return {"direction": int(round(float(row[0])))}

    def playground_params(self):
        return [TaskParam("direction", "direction", -1.0, 1.0, 1.0, kind="choice", choices=(-1.0, 1.0),
                          choice_labels=("backward", "forward"))]

    def describe(self, task):
        return "run forward" if task["direction"] > 0 else "run backward"


# -- the gymnasium faces (defined on first use: they subclass gymnasium's MuJoCo HalfCheetahEnv) --------
_faces: dict[str, type] = {}


def _define_faces() -> None:
    require_mujoco("HalfCheetah's gymnasium environments")
    from gymnasium import spaces, utils
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    class CheetahTaskEnv(HalfCheetahEnv):
        """gymnasium's HalfCheetah-v5 with a task's reward, actions clipped to ±action_scale and scaled to
        the motors' [-1, 1], truncated after ``horizon`` steps; ``reset(options={task_key: value})`` changes
        the task.  Renders from the tracking camera."""

        task_key: ClassVar[str]

        def __init__(self, task: float, horizon: int = 200, ctrl_cost_weight: float = 0.05,
                     action_scale: float = 1.0, reset_noise_scale: float = 0.1, render_mode=None,
                     width: int = MAX_FRAME_SIZE, height: int = MAX_FRAME_SIZE, **kwargs):
            if "camera_id" not in kwargs:
                kwargs.setdefault("camera_name", "track")
            with _quiet_deprecations(_import_mujoco()):
                super().__init__(ctrl_cost_weight=ctrl_cost_weight, reset_noise_scale=reset_noise_scale,
                                 render_mode=render_mode, width=width, height=height, **kwargs)
            utils.EzPickle.__init__(self, task, horizon=horizon, ctrl_cost_weight=ctrl_cost_weight,
                                    action_scale=action_scale, reset_noise_scale=reset_noise_scale,
                                    render_mode=render_mode, width=width, height=height, **kwargs)
            self.task = float(task)
            self.horizon, self.action_scale = horizon, action_scale
            self.action_space = spaces.Box(-action_scale, action_scale, (ACT_DIM,), np.float32)
            self._t = 0

        def reset(self, *, seed=None, options=None):
            if options and self.task_key in options:
                self.task = float(options[self.task_key])
            self._t = 0
            obs, info = super().reset(seed=seed)
            return obs, {**info, self.task_key: self.task}

        def step(self, action):
            obs, reward, terminated, _, info = super().step(motor_commands(action, self.action_scale))
            self._t += 1
            return obs, reward, terminated, self._t >= self.horizon, info

        def _get_rew(self, x_velocity, action):
            forward = float(self.forward_reward(np.float64(self.task), np.float64(x_velocity)))
            ctrl_cost = self.control_cost(action)
            return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost,
                                         "forward_velocity": x_velocity, self.task_key: self.task}

    class HalfCheetahVelEnv(CheetahTaskEnv):
        """HalfCheetah-Vel: reward = -|v - goal_velocity| - ctrl_cost_weight * |a|^2."""

        task_key = "goal_velocity"
        forward_reward = staticmethod(CheetahVel.forward_reward)

        def __init__(self, goal_velocity: float = 1.0, **kwargs):
            super().__init__(goal_velocity, **kwargs)

        @property
        def goal_velocity(self) -> float:
            return self.task

    class HalfCheetahDirEnv(CheetahTaskEnv):
        """HalfCheetah-Dir: reward = direction * v - ctrl_cost_weight * |a|^2, direction = ±1."""

        task_key = "direction"
        forward_reward = staticmethod(CheetahDir.forward_reward)

        def __init__(self, direction: float = 1.0, **kwargs):
            super().__init__(direction, **kwargs)

        @property
        def direction(self) -> float:
            return self.task

    for cls in (CheetahTaskEnv, HalfCheetahVelEnv, HalfCheetahDirEnv):
        cls.__module__ = __name__
        _faces[cls.__name__] = cls


_faces_lock = threading.Lock()
FACES = ("CheetahTaskEnv", "HalfCheetahVelEnv", "HalfCheetahDirEnv")


def face(name: str) -> type:
    """One of the gymnasium faces by class name (ConfigError without MuJoCo)."""
    with _faces_lock:
        if not _faces:
            _define_faces()
    return _faces[name]


def __getattr__(name: str):
    """``HalfCheetahVelEnv``, ``HalfCheetahDirEnv`` and ``CheetahTaskEnv``, built on first access
    (``from workbench.tasks.cheetah import HalfCheetahVelEnv`` raises ImportError without MuJoCo)."""
    if name in FACES:
        try:
            return face(name)
        except ConfigError as e:
            raise ImportError(str(e)) from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
