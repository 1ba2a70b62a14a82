"""The interface of a reinforcement-learning task family: tasks are parameter rows, environments are
batched tensors over (task, trajectory), stepped together."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench.core import seeding


@dataclass
class RLTaskBatch:
    params: torch.Tensor  # (B, P): what defines each task (a goal, arm means, an MDP)

    def to(self, device) -> "RLTaskBatch":
        return RLTaskBatch(self.params.to(device))

    def __len__(self) -> int:
        return self.params.shape[0]

    def __getitem__(self, item) -> "RLTaskBatch":
        return RLTaskBatch(self.params[item])


class BatchedEnv:
    """Environments of B tasks x N trajectories as tensors: reset(N, gen) -> obs (B, N, obs_dim);
    step(actions) -> obs, reward (B, N), done (B, N)."""

    horizon: int
    n_tasks: int

    def reset(self, n_traj: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def step(self, actions: torch.Tensor):
        raise NotImplementedError


class RLFamily:
    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    kind: ClassVar[str] = "rl"
    discrete_actions: ClassVar[bool] = False
    obs_dim: ClassVar[int] = 1
    act_dim: ClassVar[int] = 1
    n_actions: ClassVar[int] = 0
    task_param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def in_dim(self) -> int:
        return self.obs_dim

    @property
    def out_dim(self) -> int:
        return self.n_actions if self.discrete_actions else self.act_dim

    @property
    def action_scale(self) -> float:
        """Bound of continuous actions (|a| <= action_scale per dimension) for squashed policies."""
        return float(getattr(self.cfg, "max_action", 1.0))

    @property
    def horizon(self) -> int:
        return self.cfg.horizon

    # -- to implement --------------------------------------------------------------------------
    def sample_task_params(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def make_env(self, task_params: torch.Tensor) -> BatchedEnv:
        raise NotImplementedError

    def render(self, task_params: torch.Tensor, episodes: list, steps: list[int]) -> dict:
        """Payload for the rollout view from the episodes collected after 0..S adaptation steps."""
        raise NotImplementedError

    def references(self, task_params: torch.Tensor, seed: int, pulls: int | None = None) -> dict[str, torch.Tensor]:
        """Per-task mean episode returns of non-learning reference methods (none by default)."""
        return {}

    # -- shared ------------------------------------------------------------------------------------
    def sample_batch(self, n: int, generator: torch.Generator) -> RLTaskBatch:
        return RLTaskBatch(self.sample_task_params(n, generator))

    def evaluation_batch(self, n: int, seed: int, shots=None, query=None, stream: str = seeding.HELD_OUT):
        return RLTaskBatch(self.sample_task_params(n, seeding.generator(stream, seed)))
