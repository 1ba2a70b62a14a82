"""CartPole with randomised physics: each task draws the pole's (half-)length, the pole's mass, the cart's
mass, gravity and the push force from configurable ranges; the dynamics are gymnasium's CartPole-v1
(gymnasium/envs/classic_control/cartpole.py: Euler integration with tau = 0.02 s, the episode terminates
when |x| > 2.4 or |theta| > 12 degrees, reward 1 per step including the terminating one, actions 0 / 1 push
left / right with the force, the start state is U(-0.05, 0.05)^4).

Two faces with identical dynamics: :class:`CartPoleBatch` (tensors over tasks x trajectories, for
training) and :class:`CartPolePhysicsEnv` (gymnasium's ``CartPoleEnv`` with the task's physics, for the
API, rendering and the playground).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.payloads import Frames
from workbench.core.registry import FAMILIES

from . import frames as fr
from .rl_base import BatchedEnv, RLFamily, TaskParam

PARAMS = ("pole_length", "pole_mass", "cart_mass", "gravity", "force")
TAU = 0.02
# the playground's labels, and gymnasium's CartPole-v1 values as its defaults (clipped to the ranges)
LABELS = {"pole_length": ("pole length (half), m", 0.5), "pole_mass": ("pole mass, kg", 0.1),
          "cart_mass": ("cart mass, kg", 1.0), "gravity": ("gravity, m/s²", 9.8), "force": ("push force, N", 10.0)}
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


@dataclass
class CartPoleConfig:
    pole_length_low: float = param(0.25, "Lower end of the pole length, in m: half the pole, pivot to centre of "
                                   "mass (gymnasium's `length`, 0.5 there).", low=0.0, high=10.0, low_inclusive=False)
    pole_length_high: float = param(1.0, "Upper end of the pole length (half the pole), in m.", low=0.0, high=10.0,
                                    low_inclusive=False)
    pole_mass_low: float = param(0.05, "Lower end of the pole's mass, in kg (gymnasium: 0.1).", low=0.0, high=100.0,
                                 low_inclusive=False)
    pole_mass_high: float = param(0.5, "Upper end of the pole's mass, in kg.", low=0.0, high=100.0,
                                  low_inclusive=False)
    cart_mass_low: float = param(0.5, "Lower end of the cart's mass, in kg (gymnasium: 1.0).", low=0.0, high=100.0,
                                 low_inclusive=False)
    cart_mass_high: float = param(2.0, "Upper end of the cart's mass, in kg.", low=0.0, high=100.0,
                                  low_inclusive=False)
    gravity_low: float = param(4.9, "Lower end of gravity, in m/s² (gymnasium: 9.8).", low=0.0, high=100.0)
    gravity_high: float = param(14.7, "Upper end of gravity, in m/s².", low=0.0, high=100.0)
    force_low: float = param(5.0, "Lower end of the push force, in N (gymnasium's `force_mag`, 10).", low=0.0,
                             high=1000.0)
    force_high: float = param(15.0, "Upper end of the push force, in N.", low=0.0, high=1000.0)
    horizon: int = param(200, "Steps per episode (CartPole-v0's time limit; an episode also ends when the "
                         "pole falls past 12° or the cart leaves ±2.4 m).", low=1, high=10_000)

    def validate(self, where):
        check_ranges(self, PARAMS, where)

    def bounds(self) -> tuple[list[float], list[float]]:
        return [getattr(self, f"{p}_low") for p in PARAMS], [getattr(self, f"{p}_high") for p in PARAMS]


def check_ranges(cfg, names, where) -> None:
    for p in names:
        lo, hi = getattr(cfg, f"{p}_low"), getattr(cfg, f"{p}_high")
        if lo > hi:
            raise ConfigError(f"{where}: {p}_low = {lo!r} is above {p}_high = {hi!r}")


def physics_params(cfg, names, labels) -> list[TaskParam]:
    """The playground's sliders of a physics family: each parameter over its configured range."""
    out = []
    for p in names:
        lo, hi = getattr(cfg, f"{p}_low"), getattr(cfg, f"{p}_high")
        label, default = labels[p]
        out.append(TaskParam(p, label, lo, hi, min(max(default, lo), hi)))
    return out


def physics_dtype(device: torch.device) -> torch.dtype:
    """The state is integrated in float64 (as gymnasium does) wherever the device supports it."""
    return torch.float32 if device.type == "mps" else torch.float64


class CartPoleBatch(BatchedEnv):
    """B tasks x N trajectories of CartPole; a trajectory that terminated stays frozen (finite observations,
    reward 0, done) until the next reset."""

    def __init__(self, task_params: torch.Tensor, cfg: CartPoleConfig):
        self.cfg, self.out_dtype, self.device = cfg, task_params.dtype, task_params.device
        self.n_tasks, self.horizon = task_params.shape[0], cfg.horizon
        self.dtype = physics_dtype(self.device)
        p = task_params.to(self.dtype)
        self.length, self.masspole, self.masscart, self.gravity, self.force_mag = (p[:, i:i + 1] for i in range(5))
        # derived quantities, recomputed from the task's masses and length (as in CartPoleEnv.__init__)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    def reset(self, n_traj, generator):
        u = torch.rand(self.n_tasks, n_traj, 4, generator=generator, device=generator.device, dtype=torch.float64)
        self.state = (-0.05 + 0.1 * u).to(self.device, self.dtype)  # (B, N, [x, x_dot, theta, theta_dot])
        self.done = torch.zeros(self.n_tasks, n_traj, dtype=torch.bool, device=self.device)
        return self._obs()

    def _obs(self):
        return self.state.to(self.out_dtype, copy=True)

    def step(self, actions):
        b, n = self.done.shape
        a = actions.reshape(b, n)
        force = torch.where(a == 1, self.force_mag, -self.force_mag)
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        new = torch.stack([x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc],
                          -1)
        was_done = self.done
        self.state = torch.where(was_done.unsqueeze(-1), self.state, new)
        x, theta = self.state[..., 0], self.state[..., 2]
        terminated = (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)
        self.done = was_done | terminated
        reward = (~was_done).to(self.out_dtype)
        return self._obs(), reward, self.done.clone()


# -- drawing ---------------------------------------------------------------------------------------------
WIDTH, HEIGHT = 240, 160
VIEW_HALF_WIDTH = 2.6  # metres either side of the centre; the ±2.4 m thresholds are marked
SCALE = WIDTH / (2 * VIEW_HALF_WIDTH)  # pixels per metre
TRACK_Y, CART_W, CART_H = 136, 28, 14
AXLE_Y = TRACK_Y - CART_H + 3
POLE, CART, AXLE, TRACK, LIMIT, PUSH = (202, 152, 101), (200, 200, 210), (129, 132, 203), (90, 90, 90), \
    (150, 60, 60), (240, 200, 60)


def draw(states: np.ndarray, pole_length: float, actions: np.ndarray | None = None) -> np.ndarray:
    """Frames (F, 160, 240, 3) of the states (F, 4) [x, x_dot, theta, theta_dot] of a cart with a pole of
    half-length ``pole_length``; ``actions`` (F,) draw the push (0: left, 1: right) beside the cart."""
    states = np.asarray(states, float).reshape(-1, 4)
    n = states.shape[0]
    img = fr.canvas(n, HEIGHT, WIDTH)
    img[:, TRACK_Y, :] = TRACK
    for side in (-1, 1):
        col = int(round(WIDTH / 2 + side * X_THRESHOLD * SCALE))
        img[:, TRACK_Y - 6:TRACK_Y + 5, col] = LIMIT
    cx = WIDTH / 2 + states[:, 0] * SCALE
    fr.rects(img, cx - CART_W / 2, TRACK_Y - CART_H, cx + CART_W / 2, TRACK_Y, CART)
    if actions is not None:
        d = np.where(np.asarray(actions).reshape(n) == 1, 1.0, -1.0)
        y = TRACK_Y - CART_H / 2
        fr.segments(img, cx + d * (CART_W / 2 + 2), y, cx + d * (CART_W / 2 + 9), y, 3, PUSH)
    reach = 2 * pole_length * SCALE
    theta = states[:, 2]
    fr.segments(img, cx, AXLE_Y, cx + reach * np.sin(theta), AXLE_Y - reach * np.cos(theta), 5, POLE)
    fr.discs(img, cx, AXLE_Y, 2.5, AXLE)
    return img


# -- the family ------------------------------------------------------------------------------------------
@FAMILIES.register
class CartPolePhysics(RLFamily):
    payload = Frames  # what render() gives the rollout view
    name = "cartpole"
    title = "CartPole with randomised physics"
    Config = CartPoleConfig
    discrete_actions = True
    obs_dim, n_actions = 4, 2
    task_param_names = PARAMS

    def sample_task_params(self, n, generator):
        lo, hi = (torch.tensor(v) for v in self.cfg.bounds())
        return lo + (hi - lo) * torch.rand(n, len(PARAMS), generator=generator)

    def make_env(self, task_params, workers: int = 0):  # stepped as tensors: workers is ignored
        return CartPoleBatch(task_params, self.cfg)

    def playground_params(self):
        return physics_params(self.cfg, PARAMS, LABELS)

    def render(self, task_params, episodes, steps, cancel=None) -> Frames:
        """Frames of one episode (task 0, trajectory 0) after each adaptation step."""
        task = {k: float(v) for k, v in zip(PARAMS, task_params[0].detach().cpu().tolist())}
        frames, returns = fr.episode_frames(episodes, lambda obs, act: draw(obs, task["pole_length"], act))
        return Frames(family=self.name, frames=frames, returns=returns, steps=list(steps),
                      frame_steps=[steps[0], steps[-1]] if len(steps) > 1 else list(steps),
                      fps=30, task=task, title=describe(task))


def describe(task: dict) -> str:
    return (f"CartPole: pole {2 * task['pole_length']:.2f} m, {task['pole_mass']:.2f} kg; "
            f"cart {task['cart_mass']:.2f} kg; "
            f"g {task['gravity']:.1f} m/s²; push {task['force']:.1f} N")


class CartPolePhysicsEnv(CartPoleEnv):
    """The gymnasium face of :class:`CartPolePhysics`: gymnasium's CartPole with one task's physics, a time
    limit of ``horizon`` steps (truncation) and numpy-drawn ``rgb_array`` frames (160 x 240, no pygame).

    ``reset(options={"physics": {"pole_mass": 0.3, ...}})`` changes the physics for the next episodes."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, pole_length: float = 0.5, pole_mass: float = 0.1, cart_mass: float = 1.0,
                 gravity: float = 9.8, force: float = 10.0, horizon: int = 200, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.horizon = horizon
        self.set_physics(pole_length=pole_length, pole_mass=pole_mass, cart_mass=cart_mass, gravity=gravity,
                         force=force)
        self._t, self._last_action = 0, None

    @classmethod
    def from_task(cls, task_params, horizon: int = 200, render_mode: str | None = None) -> "CartPolePhysicsEnv":
        """The env of one row of :meth:`CartPolePhysics.sample_task_params`."""
        return cls(*(float(v) for v in task_params), horizon=horizon, render_mode=render_mode)

    def set_physics(self, **values) -> None:
        unknown = set(values) - set(PARAMS)
        if unknown:
            raise ValueError(f"unknown physics parameter(s) {sorted(unknown)}; known: {', '.join(PARAMS)}")
        for key, value in values.items():
            setattr(self, {"pole_length": "length", "pole_mass": "masspole", "cart_mass": "masscart",
                           "gravity": "gravity", "force": "force_mag"}[key], float(value))
        # CartPoleEnv computes these once in __init__: recompute them from the new masses and length
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    @property
    def physics(self) -> dict[str, float]:
        return {"pole_length": self.length, "pole_mass": self.masspole, "cart_mass": self.masscart,
                "gravity": self.gravity, "force": self.force_mag}

    def reset(self, *, seed=None, options=None):
        if options and "physics" in options:
            self.set_physics(**options["physics"])
        self._t, self._last_action = 0, None
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, _, info = super().step(action)
        self._t += 1
        self._last_action = int(action)
        return obs, float(reward), terminated, self._t >= self.horizon, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        state = np.zeros(4) if self.state is None else np.asarray(self.state, float)
        actions = None if self._last_action is None else np.array([self._last_action])
        return draw(state[None], self.length, actions)[0]

    def close(self):
        pass
