"""2D navigation (Finn et al. 2017 sec. 5.3; pytorch-maml-rl's Navigation2DEnv).

A point starts at the origin and must reach a goal drawn from U[-0.5, 0.5]^2; actions (dx, dy) are
clipped to ±0.1; the reward is minus the distance to the goal after the move; an episode ends after
``horizon`` steps or when the point is within 0.01 of the goal on both axes (the step that gets there
still counts).

With ``normalized_actions`` the policy acts in [-1, 1]: the move is clip(a, -1, 1) · max_action, as rllab's
``normalize`` wrapper did in the MAML paper's own code (cbfinn/maml_rl ``maml_examples/maml_trpo_point.py``);
a Gaussian policy's σ then lives in units of the clip instead of being several times it.

Two faces with identical dynamics: :class:`NavigationBatch` (tensors over tasks x trajectories, for
training) and :class:`Navigation2DEnv` (a gymnasium ``Env``, for the API, rendering and the playground).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.payloads import Trajectories2D
from workbench.core.registry import FAMILIES

from .rl_base import BatchedEnv, RLFamily, TaskParam


@dataclass
class NavigationConfig:
    goal_low: float = param(-0.5, "Lower end of each goal coordinate.", low=-10.0, high=10.0)
    goal_high: float = param(0.5, "Upper end of each goal coordinate.", low=-10.0, high=10.0)
    max_action: float = param(0.1, "Actions are clipped to ±max_action per axis.", low=0.0, high=10.0,
                              low_inclusive=False)
    horizon: int = param(100, "Steps per episode.", low=1, high=10_000)
    normalized_actions: bool = param(False, "The policy acts in [-1, 1]; the move is clip(a, -1, 1) · max_action "
                                     "(rllab's normalize, as in the MAML paper's code). Off: actions are moves, "
                                     "clipped to ±max_action (pytorch-maml-rl).")

    def validate(self, where):
        if self.goal_low > self.goal_high:
            raise ConfigError(f"{where}: goal_low = {self.goal_low!r} is above goal_high = {self.goal_high!r}")


def moves(actions: torch.Tensor, cfg: NavigationConfig) -> torch.Tensor:
    """The displacement an action makes, same shape as ``actions`` (..., 2): clip(a, ±max_action), or with
    ``cfg.normalized_actions`` clip(a, -1, 1) · max_action."""
    if cfg.normalized_actions:
        return actions.clamp(-1.0, 1.0) * cfg.max_action
    return actions.clamp(-cfg.max_action, cfg.max_action)


class NavigationBatch(BatchedEnv):
    def __init__(self, goals: torch.Tensor, cfg: NavigationConfig):
        self.goals, self.cfg = goals, cfg
        self.n_tasks, self.horizon = goals.shape[0], cfg.horizon

    def reset(self, n_traj, generator):
        self.pos = torch.zeros(self.n_tasks, n_traj, 2, device=self.goals.device)
        return self.pos.clone()

    def step(self, actions):
        """``actions`` (B, N, 2) → (observations (B, N, 2), rewards (B, N), done (B, N) bool)."""
        a = moves(actions, self.cfg)
        self.pos = self.pos + a
        delta = self.pos - self.goals.unsqueeze(1)
        reward = -delta.norm(dim=-1)
        done = (delta.abs() < 0.01).all(-1)
        return self.pos.clone(), reward, done


@FAMILIES.register
class Navigation(RLFamily):
    payload = Trajectories2D  # what render() gives the rollout view
    name = "navigation"
    title = "2D navigation (point robot, goal reaching)"
    Config = NavigationConfig
    obs_dim, act_dim = 2, 2
    task_param_names = ("goal_x", "goal_y")

    @property
    def action_scale(self) -> float:
        """Bound of the policy's actions: 1 with ``normalized_actions``, else max_action."""
        return 1.0 if self.cfg.normalized_actions else float(self.cfg.max_action)

    def sample_task_params(self, n, generator):
        c = self.cfg
        return c.goal_low + (c.goal_high - c.goal_low) * torch.rand(n, 2, generator=generator)

    def make_env(self, task_params, workers: int = 0):  # stepped as tensors: workers is ignored
        return NavigationBatch(task_params, self.cfg)

    def playground_params(self):
        lo, hi = self.cfg.goal_low, self.cfg.goal_high
        return [TaskParam("goal_x", "goal x", lo, hi, lo + 0.8 * (hi - lo)),
                TaskParam("goal_y", "goal y", lo, hi, lo + 0.3 * (hi - lo))]

    def render(self, task_params, episodes, steps, cancel=None) -> Trajectories2D:
        """Trajectories (from the origin) of a few episodes after each adaptation step, with the goal."""
        n_show = min(4, episodes[0].obs.shape[1])
        paths = []
        for ep in episodes:
            obs = ep.obs[:, :n_show]  # (T, n, H, 2): position before each step
            act = moves(ep.actions[:, :n_show], self.cfg)
            last = obs[:, :, -1:] + act[:, :, -1:]
            pts = torch.cat([obs, last], 2)
            alive = torch.cat([ep.mask[:, :n_show], ep.mask[:, :n_show, -1:]], 2).unsqueeze(-1)
            pts = torch.where(alive > 0, pts, torch.full_like(pts, float("nan")))
            paths.append(pts)
        return Trajectories2D(
            family=self.name,
            goals=task_params.detach().cpu().numpy().copy(),
            paths=torch.stack(paths, 1).detach().cpu().numpy().copy(),  # (T, S+1, n, H+1, 2)
            returns=torch.stack([ep.returns.mean(1) for ep in episodes], 1).cpu().numpy().copy(),
            steps=list(steps),
            bounds=[min(self.cfg.goal_low, -0.1) - 0.1, max(self.cfg.goal_high, 0.1) + 0.1],
        )


class Navigation2DEnv(gym.Env):
    """The gymnasium face of :class:`Navigation`: same dynamics, one task, one trajectory."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, goal=(0.25, 0.25), horizon: int = 100, max_action: float = 0.1, render_mode=None,
                 size: int = 240, normalized_actions: bool = False):
        self.goal = np.asarray(goal, dtype=np.float32)
        self.horizon, self.max_action, self.render_mode, self.size = horizon, max_action, render_mode, size
        self.normalized_actions = normalized_actions
        bound = 1.0 if normalized_actions else max_action
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-bound, bound, (2,), np.float32)
        self._pos = np.zeros(2, np.float32)
        self._t = 0
        self._trail: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.goal = np.asarray(options["goal"], dtype=np.float32)
        self._pos = np.zeros(2, np.float32)
        self._t = 0
        self._trail = [self._pos.copy()]
        return self._pos.copy(), {"goal": self.goal.copy()}

    def step(self, action):
        a = np.asarray(action, dtype=np.float32)
        a = (np.clip(a, -1.0, 1.0) * self.max_action if self.normalized_actions
             else np.clip(a, -self.max_action, self.max_action)).astype(np.float32)
        self._pos = (self._pos + a).astype(np.float32)
        self._t += 1
        self._trail.append(self._pos.copy())
        delta = self._pos - self.goal
        reward = -float(np.linalg.norm(delta))
        terminated = bool((np.abs(delta) < 0.01).all())
        truncated = self._t >= self.horizon
        return self._pos.copy(), reward, terminated, truncated, {"goal": self.goal.copy()}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        s = self.size
        img = np.full((s, s, 3), 30, np.uint8)
        scale = s / 1.4  # the view spans [-0.7, 0.7]

        def px(p):
            return int(np.clip((p[0] + 0.7) * scale, 0, s - 1)), int(np.clip((0.7 - p[1]) * scale, 0, s - 1))

        img[s // 2, :] = img[:, s // 2] = 60
        for p in self._trail:
            x, y = px(p)
            img[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = (80, 160, 240)
        gx, gy = px(self.goal)
        img[max(0, gy - 4):gy + 5, max(0, gx - 4):gx + 5] = (240, 200, 60)
        return img
