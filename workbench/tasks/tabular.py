"""Random tabular MDPs (Duan et al. 2016, RL², sec. 4.2): S states, A actions, transitions
P(.|s, a) ~ Dirichlet(1), mean rewards R(s, a) ~ N(1, 1), rewards ~ N(R(s, a), 1); episodes of
``horizon`` steps from state 0; the observation is the one-hot state."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.config import param
from workbench.core.payloads import StateVisitation
from workbench.core.registry import FAMILIES

from .rl_base import BatchedEnv, RLFamily


@dataclass
class TabularConfig:
    states: int = param(10, "Number of states.", low=2, high=200)
    actions: int = param(5, "Number of actions.", low=2, high=50)
    horizon: int = param(10, "Steps per episode.", low=1, high=10_000)
    reward_mean: float = param(1.0, "Mean of the mean rewards R(s, a).", low=-100.0, high=100.0)
    reward_std: float = param(1.0, "Spread of the mean rewards and of the reward noise.", low=0.0, high=100.0)


class TabularBatch(BatchedEnv):
    def __init__(self, transitions: torch.Tensor, rewards: torch.Tensor, cfg: TabularConfig):
        self.P, self.R, self.cfg = transitions, rewards, cfg  # (B, S, A, S), (B, S, A)
        self.n_tasks, self.horizon = transitions.shape[0], cfg.horizon

    def reset(self, n_traj, generator):
        self.generator = generator
        self.state = torch.zeros(self.n_tasks, n_traj, dtype=torch.long, device=self.P.device)
        return self._obs()

    def _obs(self):
        return torch.nn.functional.one_hot(self.state, self.cfg.states).float()

    def step(self, actions):
        b, n = self.state.shape
        a = actions.long()
        idx_b = torch.arange(b, device=a.device).view(b, 1).expand(b, n)
        mean = self.R[idx_b, self.state, a]
        reward = mean + self.cfg.reward_std * torch.randn(mean.shape, generator=self.generator, device=a.device)
        probs = self.P[idx_b, self.state, a]  # (B, N, S)
        self.state = torch.multinomial(probs.reshape(b * n, -1), 1, generator=self.generator).view(b, n)
        return self._obs(), reward, torch.zeros_like(reward, dtype=torch.bool)


@FAMILIES.register
class TabularMDP(RLFamily):
    payload = StateVisitation  # what render() gives the rollout view
    name = "tabular"
    title = "Random tabular MDPs"
    Config = TabularConfig
    discrete_actions = True

    @property
    def obs_dim(self) -> int:
        return self.cfg.states

    @property
    def n_actions(self) -> int:
        return self.cfg.actions

    def sample_task_params(self, n, generator):
        s, a = self.cfg.states, self.cfg.actions
        expo = -torch.log(torch.rand(n, s, a, s, generator=generator).clamp(min=1e-12))  # Dirichlet(1)
        transitions = expo / expo.sum(-1, keepdim=True)
        rewards = self.cfg.reward_mean + self.cfg.reward_std * torch.randn(n, s, a, generator=generator)
        return torch.cat([transitions.reshape(n, -1), rewards.reshape(n, -1)], 1)

    def make_env(self, task_params, workers: int = 0):  # stepped as tensors: workers is ignored
        s, a = self.cfg.states, self.cfg.actions
        n = task_params.shape[0]
        return TabularBatch(task_params[:, : s * a * s].reshape(n, s, a, s), task_params[:, s * a * s:].reshape(n, s, a),
                            self.cfg)

    def render(self, task_params, episodes, steps, cancel=None) -> StateVisitation:
        visits = []
        for ep in episodes:
            v = ep.obs.sum((1, 2)) if ep.obs.shape[-1] == self.cfg.states else ep.obs[..., : self.cfg.states].sum((1, 2))
            visits.append(v / v.sum(-1, keepdim=True).clamp(min=1))
        return StateVisitation(family=self.name,
                               visits=torch.stack(visits, 1).cpu().numpy().copy(),  # (T, S+1, states)
                               returns=torch.stack([ep.returns.mean(1) for ep in episodes], 1).cpu().numpy().copy(),
                               steps=list(steps))
