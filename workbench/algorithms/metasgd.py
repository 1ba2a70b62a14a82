"""Meta-SGD (Li, Zhou, Chen & Li 2017, Algorithm 1): MAML that also learns the inner learning rates.

    θ'_i = θ − α ∘ ∇_θ L_{T_i}(f_θ)                     (α has one entry per parameter entry)
    (θ, α) ← (θ, α) − β ∇_{(θ, α)} Σ_i L_{T_i}(f_{θ'_i})

α is initialised uniformly in [lr_init_min, lr_init_max] (the paper: [0.005, 0.1]); it has the shape of
every parameter of the network, whatever the network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.adaptation import AdaptationRule
from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.registry import ALGORITHMS

from .maml import MAML


@dataclass
class MetaSGDConfig:
    lr_init_min: float = param(0.005, "Lower end of the initial per-parameter inner learning rates.",
                               low=0.0, high=10.0)
    lr_init_max: float = param(0.1, "Upper end of the initial per-parameter inner learning rates.",
                               low=0.0, high=10.0)
    inner_steps: int = param(1, "Inner gradient steps per task during meta-training.", low=1, high=100)
    first_order: bool = param(False, "Drop second-order terms of the meta-gradient w.r.t. θ.")
    meta_batch: int = param(25, "Tasks per meta-batch.", low=1, high=10_000)
    outer_lr: float = param(1e-3, "β: Adam learning rate of the outer update.", low=0.0, high=10.0,
                            low_inclusive=False)

    def validate(self, where):
        if self.lr_init_min > self.lr_init_max:
            raise ConfigError(f"{where}: lr_init_min = {self.lr_init_min!r} is above lr_init_max = "
                              f"{self.lr_init_max!r}")


@ALGORITHMS.register
class MetaSGD(MAML):
    name = "metasgd"
    title = "Meta-SGD"
    Config = MetaSGDConfig
    summary = "MAML with learned per-parameter inner learning rates."

    def setup(self, generator):
        lo, hi = self.cfg.lr_init_min, self.cfg.lr_init_max
        self.extras["lrs"] = [
            (lo + (hi - lo) * torch.rand(p.shape, generator=generator)).to(self.device).requires_grad_()
            for p in self.params]
        super().setup(generator)

    def adaptation_rule(self):
        return AdaptationRule(list(self.extras["lrs"]), 0, self.cfg.inner_steps, self.loss)
