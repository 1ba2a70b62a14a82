"""Batched rollouts: every task and every trajectory steps together, one time step at a time.

Storage is preallocated with explicit shapes: (B tasks, N trajectories, H steps, ...).  The only Python
loop is over time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.errors import Cancelled, TrainingDiverged


@dataclass
class Episodes:
    obs: torch.Tensor  # (B, N, H, obs_dim)
    actions: torch.Tensor  # (B, N, H, act_dim) float, or (B, N, H) long
    rewards: torch.Tensor  # (B, N, H)
    mask: torch.Tensor  # (B, N, H): 1 while the episode is running

    @property
    def returns(self) -> torch.Tensor:
        """Undiscounted return of each trajectory: (B, N)."""
        return (self.rewards * self.mask).sum(-1)

    def __getitem__(self, item) -> "Episodes":
        """The episodes of a subset of tasks."""
        return Episodes(self.obs[item], self.actions[item], self.rewards[item], self.mask[item])

    def flat_obs(self) -> torch.Tensor:
        b, n, h = self.rewards.shape
        return self.obs.reshape(b, n * h, -1)

    def flat_actions(self) -> torch.Tensor:
        b, n, h = self.rewards.shape
        return self.actions.reshape(b, n * h, *self.actions.shape[3:])


@torch.no_grad()
def collect(env, policy, params, n_traj: int, generator: torch.Generator, deterministic: bool = False,
            cancel=None) -> Episodes:
    """Run ``policy`` with (task-batched or shared) ``params`` in the batched ``env`` for one episode each.
    ``cancel`` (an object with ``is_set()``, or None) is looked at every ten env steps: :class:`Cancelled`
    is raised once it is set."""
    b, h = env.n_tasks, env.horizon
    obs = env.reset(n_traj, generator)  # (B, N, obs_dim)
    dev = obs.device
    all_obs = torch.empty(b, n_traj, h, obs.shape[-1], device=dev)
    rewards = torch.zeros(b, n_traj, h, device=dev)
    mask = torch.zeros(b, n_traj, h, device=dev)
    actions = None
    alive = torch.ones(b, n_traj, device=dev)
    for t in range(h):
        if cancel is not None and t % 10 == 0:  # a long evaluation stops within ten env steps of a cancel
            Cancelled.raise_if_set(cancel)
        all_obs[:, :, t] = obs
        act = policy.mode(params, obs) if deterministic else policy.sample(params, obs, generator)
        if not policy.discrete and not torch.isfinite(act).all():
            raise TrainingDiverged("the policy produced NaN or infinite actions")
        if actions is None:
            actions = torch.zeros(b, n_traj, h, *act.shape[2:], device=dev, dtype=act.dtype)
        actions[:, :, t] = act
        obs, reward, done = env.step(act)
        rewards[:, :, t] = reward
        mask[:, :, t] = alive
        alive = alive * (1 - done.float())
    return Episodes(all_obs, actions, rewards, mask)
