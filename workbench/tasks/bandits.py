"""Bernoulli multi-armed bandits (Duan et al. 2016, RL², sec. 4.1): k arms with means U[0, 1];
an episode is ``pulls`` pulls; the reward of a pull is Bernoulli(mean of the arm).

The observation is a constant (bandits have no state): a feed-forward policy adapts only through its
parameters (MAML), a recurrent one through its hidden state (RL²).  Thompson sampling (Beta(1, 1) prior),
UCB1, always the best arm, greedy on the posterior mean and the Bayes-optimal policy (exact dynamic
programme, where tractable: k = 5, n = 10) or else the Gittins-index policy are the references reported
beside every evaluation (:mod:`workbench.tasks.bandit_references`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench.core import seeding
from workbench.core.config import param
from workbench.core.payloads import BanditArms
from workbench.core.registry import FAMILIES

from .bandit_references import (BAYES, BEST_ARM, GITTINS, GREEDY, THOMPSON, UCB1, bayes_optimal_tractable,
                                reference_returns)
from .rl_base import BatchedEnv, RLFamily

GITTINS_MAX_PULLS = 1000  # the Gittins table's lattice grows as (5 n)^2: beyond this, no Gittins reference


@dataclass
class BanditConfig:
    arms: int = param(5, "k: number of arms.", low=2, high=100)
    pulls: int = param(10, "n: pulls per episode.", low=1, high=10_000)
    reference_runs: int = param(200, "Simulated runs per task for the simulated references (Thompson, UCB1, "
                                "greedy, Gittins / Bayes-optimal); their cost grows as tasks x runs x arms x pulls.",
                                low=1, high=100_000)

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
    """Mean total reward per task (T,) of Thompson sampling (Beta(1,1)) and UCB1 over ``pulls`` pulls, and of
    always pulling the best arm; ``means`` (T, k)."""
    return reference_returns(means, pulls, runs, rng, which=(THOMPSON, UCB1, BEST_ARM))


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

    def make_env(self, task_params, workers: int = 0):  # stepped as tensors: workers is ignored
        return BanditBatch(task_params, self.cfg.pulls)

    def references(self, task_params, seed, pulls=None):
        """Mean total reward per task (T,) over ``pulls`` (default: one episode) of Thompson sampling, UCB1,
        always the best arm, greedy on the posterior mean, and the Bayes-optimal policy where its exact
        programme is tractable, else the Gittins-index policy (γ = 1 − 1/n; up to 1000 pulls)."""
        n = pulls or self.cfg.pulls
        which = (THOMPSON, UCB1, BEST_ARM, GREEDY)
        if bayes_optimal_tractable(self.cfg.arms, n):
            which += (BAYES,)
        elif n <= GITTINS_MAX_PULLS:
            which += (GITTINS,)
        rng = np.random.default_rng(seeding.stream_seed("bandit-references", seed))
        refs = reference_returns(task_params.detach().cpu().double().numpy(), n, self.cfg.reference_runs, rng,
                                 which=which)
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
