"""Reptile (Nichol, Achiam & Schulman 2018, Algorithm 2, batched version).

    sample tasks τ_1..τ_n
    for each τ_i:  W_i = U^k_{τ_i}(θ)                 (k SGD steps on the task, from θ)
    θ ← θ + ε (1/n) Σ_i (W_i − θ)                      (ε annealed linearly to 0)

No gradient flows through the inner loop; all tasks run their k steps together.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.adaptation import inner_step
from workbench.core.config import param
from workbench.core.optim import SGD
from workbench.core.registry import ALGORITHMS

from .base import MetaLearner


@dataclass
class ReptileConfig:
    inner_lr: float = param(0.02, "Learning rate of the inner SGD steps.", low=0.0, high=10.0, low_inclusive=False)
    inner_steps: int = param(5, "k: inner SGD steps per task.", low=1, high=1000)
    meta_batch: int = param(25, "Tasks per meta-batch.", low=1, high=10_000)
    outer_step: float = param(1.0, "ε: outer step size (fraction of the way towards the adapted weights).",
                              low=0.0, high=1.0, low_inclusive=False)
    anneal: bool = param(True, "Anneal ε linearly to zero over the run.")


@ALGORITHMS.register
class Reptile(MetaLearner):
    name = "reptile"
    title = "Reptile"
    Config = ReptileConfig
    summary = "First-order meta-learning: move the initialisation towards task-adapted weights."

    def setup(self, generator):
        self.optimizer = SGD(self.params, self.cfg.outer_step)

    def meta_step(self, batch, iteration):
        rule = self.adaptation_rule()
        fast = [p.detach() for p in self.params]
        with torch.no_grad():
            for _ in range(self.cfg.inner_steps):
                fast = inner_step(self.network, fast, rule, batch.xs, batch.ys)
            loss = self.query_loss(fast, batch.xq, batch.yq)
            # θ − mean_i W_i is the direction an SGD step of size ε follows.
            direction = [p - w.mean(0) for p, w in zip(self.params, fast)]
        frac = 1.0 - iteration / self.total_iterations if self.cfg.anneal else 1.0
        eps = self.cfg.outer_step * frac
        return {"loss": self.apply_gradient(loss, direction, self.optimizer, eps), "outer_step": eps}
