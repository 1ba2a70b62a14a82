"""The interface of a meta-learner: ``meta_step(batch) -> metrics`` and ``adaptation_rule()``.

A learner owns its meta-parameters (the network's initial weights, plus any learned extras such as
Meta-SGD's learning rates) and its outer optimiser.  Tasks are a batch dimension everywhere: a meta-step
over 25 tasks is one pass of batched tensor ops.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch

from workbench.core.adaptation import AdaptationRule
from workbench.core.errors import TrainingDiverged
from workbench.models import mlp
from workbench.models.mlp import MLPSpec


class MetaLearner:
    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    families: ClassVar[tuple[str, ...]] = ("sinusoid",)
    summary: ClassVar[str] = ""

    train_metric: ClassVar[str] = "loss"
    eval_metric: ClassVar[str] = "mse"

    def __init__(self, cfg, spec: MLPSpec, device: torch.device, generator: torch.Generator,
                 total_iterations: int, family=None):
        self.cfg, self.spec, self.device, self.family = cfg, spec, device, family
        self.total_iterations = max(1, total_iterations)
        self.params = [p.requires_grad_() for p in spec.init(generator, device)]
        self.extras: dict[str, list[torch.Tensor]] = {}
        self.setup(generator)

    # -- for subclasses ------------------------------------------------------------------------------
    def setup(self, generator: torch.Generator) -> None:
        """Create the outer optimiser (and any extra meta-parameters)."""

    def outer_loss(self, params, xs, ys, xq, yq) -> torch.Tensor:
        raise NotImplementedError

    def meta_step(self, batch, iteration: int) -> dict[str, float]:
        """Default: one outer gradient step on :meth:`outer_loss` of the batch."""
        loss = self.outer_loss(self.params, batch.xs, batch.ys, batch.xq, batch.yq)
        return {"loss": self.gradient_step(loss, self.optimizer)}

    def evaluate(self, family, batch, steps: int, render_tasks: int, cancel=None):
        """Adaptation curves of the held-out tasks (and a render of the first few): an EvalOutcome.
        ``cancel`` (a threading.Event, or None) is checked between inner steps (raises Cancelled)."""
        from workbench.core.evaluation import supervised_outcome

        return supervised_outcome(self.params, self.adaptation_rule(), family, batch, steps, render_tasks, cancel)

    def default_eval_steps(self) -> list[int]:
        """The points of the adaptation curve ``workbench eval`` reports when not told: before adaptation and
        after the trained number of steps."""
        return [0, max(1, int(getattr(self.cfg, "inner_steps", 1)))]

    def adaptation_rule(self) -> AdaptationRule:
        return AdaptationRule([float(self.cfg.inner_lr)] * len(self.params), 0, self.cfg.inner_steps,
                              self.spec.activation)

    # -- shared --------------------------------------------------------------------------------------
    def meta_parameters(self) -> list[torch.Tensor]:
        return self.params + [t for ts in self.extras.values() for t in ts]

    def check_finite(self, loss: torch.Tensor, update: list[torch.Tensor] = ()) -> float:
        """The loss as a float, if it and the outer update are finite; else stop with TrainingDiverged.

        One host sync: the update's norms enter the check as 0 * norm, which is NaN for an infinite norm.
        """
        loss = loss.detach()
        check = loss + 0.0 * torch.stack(torch._foreach_norm(list(update))).sum() if update else loss
        if math.isfinite(float(check)):
            return float(loss)
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(f"the meta-loss became {value} (try a smaller learning rate)")
        raise TrainingDiverged(f"the meta-gradient overflowed (the loss was {value:.3g}; try a smaller learning rate)")

    def gradient_step(self, loss: torch.Tensor, optimizer, lr: float | None = None) -> float:
        """Differentiate the loss w.r.t. every meta-parameter, check both, and take an outer step."""
        grads = list(torch.autograd.grad(loss, self.meta_parameters()))
        value = self.check_finite(loss, grads)
        optimizer.step(grads, lr)
        return value

    def query_mse(self, fast, xq, yq) -> torch.Tensor:
        """Mean over tasks of each task's query MSE (every task has the same number of query points)."""
        return torch.nn.functional.mse_loss(mlp.forward(fast, xq, self.spec.activation), yq)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"param.{i}": p.detach() for i, p in enumerate(self.params)}
        for key, ts in self.extras.items():
            out.update({f"{key}.{i}": t.detach() for i, t in enumerate(ts)})
        out.update(self.optimizer.state_tensors("optim"))
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.copy_(tensors[f"param.{i}"])
            for key, ts in self.extras.items():
                for i, t in enumerate(ts):
                    t.copy_(tensors[f"{key}.{i}"])
        self.optimizer.load_state_tensors("optim", tensors)
