"""Pendulum swing-up with randomised physics: each task draws the pendulum's mass, length and gravity from
configurable ranges; the dynamics are gymnasium's Pendulum-v1 (gymnasium/envs/classic_control/pendulum.py:
dt = 0.05 s, torque clipped to ±2, angular speed clipped to ±8, reward −(angle_normalize(θ)² + 0.1 θ̇² +
0.001 u²), observation (cos θ, sin θ, θ̇), θ = 0 upright; start θ ~ U(−π, π), θ̇ ~ U(−1, 1); never done).

Two faces with identical dynamics: :class:`PendulumBatch` (tensors over tasks x trajectories, for
training) and :class:`PendulumPhysicsEnv` (gymnasium's ``PendulumEnv`` with the task's physics).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from workbench.core.config import param
from workbench.core.payloads import Frames
from workbench.core.registry import FAMILIES

from . import frames as fr
from .cartpole import check_ranges, physics_dtype, physics_params
from .rl_base import BatchedEnv, RLFamily

PARAMS = ("mass", "length", "gravity")
# the playground's labels, and gymnasium's Pendulum-v1 values as its defaults (clipped to the ranges)
LABELS = {"mass": ("mass, kg", 1.0), "length": ("length, m", 1.0), "gravity": ("gravity, m/s²", 10.0)}
MAX_SPEED, MAX_TORQUE, DT = 8.0, 2.0, 0.05


@dataclass
class PendulumConfig:
    mass_low: float = param(0.5, "Lower end of the pendulum's mass, in kg (gymnasium's `m`, 1.0).", low=0.0,
                            high=100.0, low_inclusive=False)
    mass_high: float = param(1.5, "Upper end of the pendulum's mass, in kg.", low=0.0, high=100.0,
                             low_inclusive=False)
    length_low: float = param(0.5, "Lower end of the pendulum's length, in m (gymnasium's `l`, 1.0).", low=0.0,
                              high=10.0, low_inclusive=False)
    length_high: float = param(1.5, "Upper end of the pendulum's length, in m.", low=0.0, high=10.0,
                               low_inclusive=False)
    gravity_low: float = param(5.0, "Lower end of gravity, in m/s² (gymnasium's `g`, 10).", low=0.0, high=100.0)
    gravity_high: float = param(15.0, "Upper end of gravity, in m/s².", low=0.0, high=100.0)
    horizon: int = param(200, "Steps per episode (Pendulum-v1's time limit).", low=1, high=10_000)

    def validate(self, where):
        check_ranges(self, PARAMS, where)

    def bounds(self) -> tuple[list[float], list[float]]:
        return [getattr(self, f"{p}_low") for p in PARAMS], [getattr(self, f"{p}_high") for p in PARAMS]


def angle_normalize(x):
    return ((x + math.pi) % (2 * math.pi)) - math.pi


class PendulumBatch(BatchedEnv):
    def __init__(self, task_params: torch.Tensor, cfg: PendulumConfig):
        self.cfg, self.out_dtype, self.device = cfg, task_params.dtype, task_params.device
        self.n_tasks, self.horizon = task_params.shape[0], cfg.horizon
        self.dtype = physics_dtype(self.device)
        p = task_params.to(self.dtype)
        self.m, self.l, self.g = (p[:, i:i + 1] for i in range(3))  # (B, 1)

    def reset(self, n_traj, generator):
        u = torch.rand(self.n_tasks, n_traj, 2, generator=generator, device=generator.device, dtype=torch.float64)
        high = torch.tensor([math.pi, 1.0], dtype=torch.float64, device=u.device)
        self.state = (-high + 2 * high * u).to(self.device, self.dtype)  # (B, N, [theta, theta_dot])
        return self._obs()

    def _obs(self):
        th, thdot = self.state.unbind(-1)
        return torch.stack([torch.cos(th), torch.sin(th), thdot], -1).to(self.out_dtype)

    def step(self, actions):
        b, n = self.state.shape[:2]
        u = actions.reshape(b, n, -1)[..., 0].to(self.dtype).clamp(-MAX_TORQUE, MAX_TORQUE)
        th, thdot = self.state.unbind(-1)
        costs = angle_normalize(th).square() + 0.1 * thdot.square() + 0.001 * u.square()
        newthdot = thdot + (3 * self.g / (2 * self.l) * torch.sin(th) + 3.0 / (self.m * self.l.square()) * u) * DT
        newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED)
        newth = th + newthdot * DT
        self.state = torch.stack([newth, newthdot], -1)
        return self._obs(), (-costs).to(self.out_dtype), torch.zeros(b, n, dtype=torch.bool, device=self.device)


# -- drawing ---------------------------------------------------------------------------------------------
SIZE = 200
ROD, AXLE, UPRIGHT, TORQUE = (204, 77, 77), (220, 220, 220), (70, 70, 70), (240, 200, 60)


def draw(thetas: np.ndarray, length: float, torques: np.ndarray | None = None,
         bound: float | None = None) -> np.ndarray:
    """Frames (F, 200, 200, 3) of a pendulum of ``length`` at angles ``thetas`` (F,) (0: upright,
    counter-clockwise positive, as gymnasium draws it); ``torques`` (F,) as a bar along the bottom.  The
    view spans ±``bound`` metres (default max(2.2, 1.1 length), gymnasium's 2.2 for lengths up to 2)."""
    thetas = np.asarray(thetas, float).reshape(-1)
    n = thetas.shape[0]
    bound = max(2.2, 1.1 * length) if bound is None else bound
    scale = SIZE / (2 * bound)
    c = SIZE / 2
    reach = length * scale
    img = fr.canvas(n, SIZE, SIZE)
    fr.segments(img, c, c, c, c - reach, 1, UPRIGHT)  # where the pendulum should be
    if torques is not None:
        u = np.clip(np.asarray(torques, float).reshape(n), -MAX_TORQUE, MAX_TORQUE)
        fr.segments(img, c, SIZE - 10, c + u / MAX_TORQUE * (SIZE / 2 - 12), SIZE - 10, 5, TORQUE)
    fr.segments(img, c, c, c - reach * np.sin(thetas), c - reach * np.cos(thetas), max(3.0, 0.2 * scale), ROD)
    fr.discs(img, c, c, max(2.0, 0.05 * scale), AXLE)
    return img


# -- the family ------------------------------------------------------------------------------------------
@FAMILIES.register
class PendulumPhysics(RLFamily):
    payload = Frames  # what render() gives the rollout view
    name = "pendulum"
    title = "Pendulum swing-up with randomised physics"
    Config = PendulumConfig
    obs_dim, act_dim = 3, 1
    task_param_names = PARAMS

    @property
    def action_scale(self) -> float:
        """Torques are clipped to ±2 (for squashed policies)."""
        return MAX_TORQUE

    def sample_task_params(self, n, generator):
        lo, hi = (torch.tensor(v) for v in self.cfg.bounds())
        return lo + (hi - lo) * torch.rand(n, len(PARAMS), generator=generator)

    def make_env(self, task_params, workers: int = 0):  # stepped as tensors: workers is ignored
        return PendulumBatch(task_params, self.cfg)

    def playground_params(self):
        return physics_params(self.cfg, PARAMS, LABELS)

    def render(self, task_params, episodes, steps, cancel=None) -> Frames:
        """Frames of one episode (task 0, trajectory 0) after each adaptation step."""
        task = {k: float(v) for k, v in zip(PARAMS, task_params[0].detach().cpu().tolist())}
        bound = max(2.2, 1.1 * self.cfg.length_high)  # the same scale for every task of the family

        def draw_episode(obs, act):
            return draw(np.arctan2(obs[:, 1], obs[:, 0]), task["length"], act.reshape(len(obs), -1)[:, 0], bound)

        frames, returns = fr.episode_frames(episodes, draw_episode)
        return Frames(family=self.name, frames=frames, returns=returns, steps=list(steps),
                      frame_steps=[steps[0], steps[-1]] if len(steps) > 1 else list(steps),
                      fps=30, task=task, title=describe(task))


def describe(task: dict) -> str:
    return f"Pendulum: mass {task['mass']:.2f} kg, length {task['length']:.2f} m, g {task['gravity']:.1f} m/s²"


class PendulumPhysicsEnv(PendulumEnv):
    """The gymnasium face of :class:`PendulumPhysics`: gymnasium's Pendulum with one task's physics, a time
    limit of ``horizon`` steps (truncation) and numpy-drawn ``rgb_array`` frames (200 x 200, no pygame).

    ``reset(options={"physics": {"mass": 1.3, ...}})`` changes the physics for the next episodes."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, mass: float = 1.0, length: float = 1.0, gravity: float = 10.0, horizon: int = 200,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode, g=gravity)
        self.horizon = horizon
        self.set_physics(mass=mass, length=length, gravity=gravity)
        self._t = 0

    @classmethod
    def from_task(cls, task_params, horizon: int = 200, render_mode: str | None = None) -> "PendulumPhysicsEnv":
        """The env of one row of :meth:`PendulumPhysics.sample_task_params`."""
        return cls(*(float(v) for v in task_params), horizon=horizon, render_mode=render_mode)

    def set_physics(self, **values) -> None:
        unknown = set(values) - set(PARAMS)
        if unknown:
            raise ValueError(f"unknown physics parameter(s) {sorted(unknown)}; known: {', '.join(PARAMS)}")
        for key, value in values.items():
            setattr(self, {"mass": "m", "length": "l", "gravity": "g"}[key], float(value))

    @property
    def physics(self) -> dict[str, float]:
        return {"mass": self.m, "length": self.l, "gravity": self.g}

    def reset(self, *, seed=None, options=None):
        if options and "physics" in options:
            self.set_physics(**options["physics"])
        self._t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, _, info = super().step(action)
        self._t += 1
        return obs, float(reward), terminated, self._t >= self.horizon, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        theta = 0.0 if getattr(self, "state", None) is None else float(self.state[0])
        u = getattr(self, "last_u", None)
        return draw(np.array([theta]), self.l, None if u is None else np.array([float(u)]))[0]

    def close(self):
        pass
