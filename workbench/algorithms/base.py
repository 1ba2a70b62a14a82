"""The base of the supervised, gradient-based meta-learners (MAML, Meta-SGD, ANIL, Reptile, baselines).

A learner of this kind meta-learns a network's initial parameters (and, for some, extras such as
Meta-SGD's learning rates); at test time it adapts by SGD on the family's loss over the support set, the
shared :mod:`workbench.core.adaptation` step, described by :meth:`MetaLearner.adaptation_rule`.  It runs on
any network (:mod:`workbench.models.network`): the built-in MLP on its fused kernel, anything else through
``torch.func``.  Tasks are a batch dimension: a meta-step over 25 tasks is one pass of batched ops (in
chunks of tasks where the network says chunks run faster, as for convolutions on a CPU).
"""
from __future__ import annotations

import torch

from workbench.core import losses
from workbench.core.adaptation import AdaptationRule, inner_step
from workbench.core.family import SUPERVISED
from workbench.core.learner import Learner
from workbench.core.registry import FamiliesOfKind
from workbench.models.network import Network


class MetaLearner(Learner):
    families = FamiliesOfKind(*SUPERVISED)  # every supervised family, the registered ones included

    def __init__(self, cfg, model: Network, device: torch.device, generator: torch.Generator,
                 total_iterations: int, family=None):
        super().__init__(cfg, model, device, generator, total_iterations, family=family)
        self.network = model
        self.loss = family.loss if family is not None else "mse"
        self.eval_metric = family.metric if family is not None else "mse"
        self.params = [p.requires_grad_() for p in model.init(generator, device)]
        self.setup(generator)

    @classmethod
    def make_model(cls, model_config, family, where="[model]") -> Network:
        from workbench.core.errors import ConfigError
        from workbench.models.zoo import build_network

        if family.kind not in SUPERVISED:
            raise ConfigError(f"{where}: {cls.name} needs a supervised family, {family.name!r} is {family.kind}")
        return build_network(model_config, family.in_shape, family.out_dim, family.loss, where)

    # -- for subclasses ------------------------------------------------------------------------------
    def setup(self, generator: torch.Generator) -> None:
        """Create the outer optimiser (and any extra meta-parameters)."""

    def outer_loss(self, params, batch) -> torch.Tensor:
        """The meta-objective of ``batch`` (a TaskBatch, or a chunk of one): the mean over its tasks."""
        raise NotImplementedError

    def meta_step(self, batch, iteration: int) -> dict[str, float]:
        """Default: one outer gradient step on :meth:`outer_loss`, accumulated over the network's task
        chunks (one chunk: the whole meta-batch at once)."""
        chunks = self.network.chunks(len(batch))
        if len(chunks) == 1:
            return {"loss": self.gradient_step(self.outer_loss(self.params, batch), self.optimizer)}
        total, grads = self.chunked_gradient(batch, chunks, lambda part: self.outer_loss(self.params, part))
        return {"loss": self.apply_gradient(total, grads, self.optimizer)}

    def evaluate(self, family, batch, steps: int, render_tasks: int, cancel=None):
        from workbench.core.evaluation import supervised_outcome

        return supervised_outcome(self.network, self.params, self.adaptation_rule(), family, batch, steps,
                                  render_tasks, cancel)

    def adapt(self, xs: torch.Tensor, ys: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """The parameters adapted to each task's support set: ``xs`` (B, K, *in_shape), ``ys`` its targets
        ((B, K, out), or (B, K) class indices); ``steps`` inner steps (default: the trained number).
        Returns task-batched parameters (B, ...) for the adapted ones, without a graph to the meta-parameters."""
        rule = self.adaptation_rule()
        fast = [p.detach() for p in self.params]
        for _ in range(rule.steps if steps is None else steps):
            fast = inner_step(self.network, fast, rule, xs, ys)
        return fast

    def adaptation_rule(self) -> AdaptationRule:
        """How this learner adapts at test time (and in its inner loop): SGD on ``params[first:]``."""
        return AdaptationRule([float(self.cfg.inner_lr)] * len(self.params), 0, self.cfg.inner_steps, self.loss)

    # -- shared --------------------------------------------------------------------------------------
    def query_loss(self, fast, xq, yq) -> torch.Tensor:
        """Mean over tasks of each task's query loss (the family's loss; every task has as many points)."""
        return losses.mean_loss(self.loss, self.network.forward(fast, xq), yq)
