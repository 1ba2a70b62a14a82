"""Bernoulli multi-armed bandits (Duan et al. 2016, RL², sec. 4.1): k arms with means U[0, 1];
an episode is ``pulls`` pulls; the reward of a pull is Bernoulli(mean of the arm).

The observation is a constant (bandits have no state): a feed-forward policy adapts only through its
parameters (MAML), a recurrent one through its hidden state (RL²).  Thompson sampling (Beta(1, 1) prior)
and UCB1 are the references reported beside every evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from workbench.core import seeding
from workbench.core.config import param
from workbench.core.payloads import BanditArms
from workbench.core.registry import FAMILIES

from .rl_base import BatchedEnv, RLFamily


@dataclass
class BanditConfig:
    arms: int = param(5, "k: number of arms.", low=2, high=100)
    pulls: int = param(10, "n: pulls per episode.", low=1, high=10_000)
    reference_runs: int = param(200, "Simulated runs per task for the Thompson / UCB1 references.", low=1,
                                high=100_000)

    @property
    def horizon(self) -> int:
        return self.pulls


class BanditBatch(BatchedEnv):
    def __init__(self, means: torch.Tensor, pulls: int):
        self.means, self.n_tasks, self.horizon = means, means.shape[0], pulls

    def reset(self, n_traj, generator):
        self.generator, self.n_traj = generator, n_traj
        return torch.ones(self.n_tasks, n_traj, 1, device=self.means.device)

    def step(self, actions):
        p = self.means.gather(1, actions.long().reshape(self.n_tasks, -1)).view(self.n_tasks, self.n_traj)
        reward = (torch.rand(p.shape, generator=self.generator, device=p.device) < p).float()
        return (torch.ones(self.n_tasks, self.n_traj, 1, device=p.device), reward,
                torch.zeros_like(reward, dtype=torch.bool))


def thompson_and_ucb(means: np.ndarray, pulls: int, runs: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Mean total reward per task of Thompson sampling (Beta(1,1)) and UCB1 over ``pulls`` pulls."""
    t, k = means.shape
    out = {}
    # Thompson sampling
    a = np.ones((t, runs, k))
    b = np.ones((t, runs, k))
    total = np.zeros((t, runs))
    for _ in range(pulls):
        arm = rng.beta(a, b).argmax(-1)
        p = np.take_along_axis(means[:, None, :].repeat(runs, 1), arm[..., None], -1)[..., 0]
        r = (rng.random((t, runs)) < p).astype(float)
        np.put_along_axis(a, arm[..., None], np.take_along_axis(a, arm[..., None], -1) + r[..., None], -1)
        np.put_along_axis(b, arm[..., None], np.take_along_axis(b, arm[..., None], -1) + 1 - r[..., None], -1)
        total += r
    out["Thompson sampling"] = total.mean(1)
    # UCB1: pull each arm once, then the highest mean + sqrt(2 ln n / n_i)
    counts = np.zeros((t, runs, k))
    sums = np.zeros((t, runs, k))
    total = np.zeros((t, runs))
    for step in range(pulls):
        if step < k:
            arm = np.full((t, runs), step)
        else:
            ucb = sums / counts + np.sqrt(2 * math.log(step) / counts)
            arm = ucb.argmax(-1)
        p = np.take_along_axis(means[:, None, :].repeat(runs, 1), arm[..., None], -1)[..., 0]
        r = (rng.random((t, runs)) < p).astype(float)
        np.put_along_axis(counts, arm[..., None], np.take_along_axis(counts, arm[..., None], -1) + 1, -1)
        np.put_along_axis(sums, arm[..., None], np.take_along_axis(sums, arm[..., None], -1) + r[..., None], -1)
        total += r
    out["UCB1"] = total.mean(1)
    out["best arm"] = means.max(1) * pulls
    return out


@FAMILIES.register
class Bandits(RLFamily):
    payload = BanditArms  # what render() gives the rollout view
    name = "bandits"
    title = "Bernoulli multi-armed bandits"
    Config = BanditConfig
    discrete_actions = True
    obs_dim = 1

    @property
    def n_actions(self) -> int:
        return self.cfg.arms

    def sample_task_params(self, n, generator):
        return torch.rand(n, self.cfg.arms, generator=generator)

    def make_env(self, task_params):
        return BanditBatch(task_params, self.cfg.pulls)

    def references(self, task_params, seed, pulls=None):
        """Mean total reward per task over ``pulls`` (default: one episode) of Thompson sampling, UCB1 and
        always pulling the best arm."""
        rng = np.random.default_rng(seeding.stream_seed("bandit-references", seed))
        refs = thompson_and_ucb(task_params.detach().cpu().double().numpy(), pulls or self.cfg.pulls,
                                self.cfg.reference_runs, rng)
        return {k: torch.as_tensor(v) for k, v in refs.items()}

    def render(self, task_params, episodes, steps, cancel=None) -> BanditArms:
        k = self.cfg.arms
        hist = []
        for ep in episodes:
            onehot = torch.nn.functional.one_hot(ep.actions.long(), k).float() * ep.mask.unsqueeze(-1)
            counts = onehot.sum((1, 2))
            hist.append(counts / counts.sum(-1, keepdim=True).clamp(min=1))
        return BanditArms(family=self.name, means=task_params.detach().cpu().numpy().copy(),
                          pull_fraction=torch.stack(hist, 1).cpu().numpy().copy(),  # (T, S+1, k)
                          returns=torch.stack([ep.returns.mean(1) for ep in episodes], 1).cpu().numpy().copy(),
                          steps=list(steps))
