"""MAML (Finn, Abbeel & Levine 2017, Algorithm 2) and first-order MAML.

    sample a batch of tasks T_i
    for all T_i:   θ'_i = θ − α ∇_θ L_{T_i}(f_θ)          (inner steps, on the support set)
    θ ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ'_i})                (outer step, on the query sets)

All tasks adapt at once: θ'_i is a task-batched parameter list.  L is the family's loss (MSE, cross-entropy)
on any network.  The inner gradient stays differentiable (``create_graph``), so the outer gradient is the
exact second-order meta-gradient; with ``first_order`` it is treated as a constant (FOMAML).  On the fused
MLP the whole meta-gradient is written out instead (``Network.meta_gradient``: the R-operator gives the
Hessian-vector products), which the tests check against autograd; on any other network, autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.core.adaptation import inner_step
from workbench.core.config import param
from workbench.core.optim import Adam
from workbench.core.registry import ALGORITHMS

from .base import MetaLearner


@dataclass
class MAMLConfig:
    inner_lr: float = param(0.01, "α: learning rate of the inner (adaptation) SGD steps.", low=0.0, high=10.0,
                            low_inclusive=False)
    inner_steps: int = param(1, "Inner gradient steps per task during meta-training.", low=1, high=100)
    first_order: bool = param(False, "Drop second-order terms of the meta-gradient (FOMAML).")
    meta_batch: int = param(25, "Tasks per meta-batch.", low=1, high=10_000)
    outer_lr: float = param(1e-3, "β: Adam learning rate of the outer update.", low=0.0, high=10.0,
                            low_inclusive=False)


@ALGORITHMS.register
class MAML(MetaLearner):
    name = "maml"
    title = "MAML"
    Config = MAMLConfig
    summary = "Model-agnostic meta-learning: learn an initialisation that adapts in a few SGD steps."

    def setup(self, generator):
        self.optimizer = Adam(self.meta_parameters(), self.cfg.outer_lr)

    def meta_step(self, batch, iteration):
        # the network's own meta-gradient where it has one (the fused MLP), else autograd through outer_loss
        manual = self.network.meta_gradient(self.params, self.adaptation_rule(), self.cfg.inner_steps,
                                            self.cfg.first_order, batch)
        if manual is None:
            return super().meta_step(batch, iteration)
        loss, grads, lr_grads = manual
        return {"loss": self.apply_gradient(loss, grads + (lr_grads or []), self.optimizer)}

    def outer_loss(self, params, batch):
        rule = self.adaptation_rule()
        fast = params
        for _ in range(self.cfg.inner_steps):
            fast = inner_step(self.network, fast, rule, batch.xs, batch.ys, create_graph=not self.cfg.first_order)
        return self.query_loss(fast, batch.xq, batch.yq)
