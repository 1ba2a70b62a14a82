"""The learner contract: what the trainer, the bundle and the app need of a meta-learning algorithm.

A learner owns its meta-parameters (a network's initial weights, plus learned extras such as Meta-SGD's
learning rates) and its outer optimiser.  Two bases implement it:

* :class:`workbench.algorithms.base.MetaLearner` — supervised, gradient-based: the adaptation is SGD on the
  family's loss over the support set (:mod:`workbench.core.adaptation`), on any network;
* :class:`workbench.rl.learner.RLMetaLearner` — meta-RL: functional policies, rollouts, returns.

Adaptation at test time is :meth:`Learner.adapt` (for the gradient-based supervised learners one shared
piece, :func:`workbench.core.adaptation.inner_step`, driven by the learner's ``adaptation_rule()``).
The trainer builds one as ``cls(cfg, model, device, generator, total_iterations, family=family)`` where
``model = cls.make_model(model_config, family, where)``, sets :attr:`Learner.sampler_workers` from the run
config (the RL learners pass it to ``family.make_env``), then calls :meth:`meta_step` once per
meta-iteration and :meth:`evaluate` on the held-out tasks; checkpoints hold :meth:`state_tensors`.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch

from . import optim
from .errors import TrainingDiverged


class Learner:
    """Base of every algorithm (see the module docstring). Class attributes are its registry entry."""

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]  # the dataclass of its [algorithm] keys
    families: ClassVar = ()  # names of the families it supports (a tuple, or a FamiliesOfKind)
    summary: ClassVar[str] = ""
    train_metric: ClassVar[str] = "loss"  # the column of metrics.csv the meta-loss view plots
    eval_metric: ClassVar[str] = "mse"  # what evaluate() reports (the family's metric for supervised ones)
    step_label: ClassVar[str] = "inner step"  # what the adaptation curve's steps count (the views' x axis)
    # run.sampler_workers: the CPU threads an RL learner's environments step their simulations on, passed to
    # family.make_env (0: automatic); the trainer sets it from the run config, results never depend on it
    sampler_workers: int = 0

    def __init__(self, cfg, model, device: torch.device, generator: torch.Generator, total_iterations: int,
                 family=None):
        self.cfg, self.model, self.device, self.family = cfg, model, device, family
        self.total_iterations = max(1, total_iterations)
        self.params: list[torch.Tensor] = []
        self.extras: dict[str, list[torch.Tensor]] = {}

    @classmethod
    def make_model(cls, model_config, family, where: str = "[model]"):
        """What the constructor's ``model`` is, built from the preset's ``[model]`` table (a ``ModelConfig``)
        for ``family``: raises ConfigError (one line) when they do not fit together."""
        raise NotImplementedError

    # -- the contract ----------------------------------------------------------------------------------
    def training_batch(self, family, n: int, generator: torch.Generator):
        """The meta-batch of ``n`` training tasks the trainer hands to :meth:`meta_step`: by default the
        family's own (``family.sample_batch``); a learner that trains on other tasks than it is tested on
        (Prototypical Networks: more ways) draws them here, from the same generator."""
        return family.sample_batch(n, generator)

    def meta_step(self, batch, iteration: int) -> dict[str, float]:
        """One outer update on a meta-batch of training tasks; returns the metrics logged for it (floats).
        Raises TrainingDiverged when the loss or the update is not finite."""
        raise NotImplementedError

    def evaluate(self, family, batch, steps: int, render_tasks: int, cancel=None):
        """The adaptation curve of each held-out task of ``batch`` over 0..``steps`` (an
        :class:`~workbench.core.evaluation.EvalOutcome`), with a render of the first ``render_tasks``.
        ``cancel`` (a threading.Event, or None) is checked between steps: a set event raises Cancelled."""
        raise NotImplementedError

    def adapt(self, *task_data, steps: int | None = None):
        """Adapt to new tasks: the supervised learners from support sets (``adapt(xs, ys, steps)`` gives the
        task-batched adapted parameters); the RL learners adapt from the trajectories they collect, inside
        :meth:`evaluate`."""
        raise NotImplementedError(f"{type(self).__name__} adapts inside evaluate()")

    def default_eval_steps(self) -> list[int]:
        """The points of the adaptation curve ``workbench eval`` reports when not told: before adaptation and
        after the trained number of steps."""
        return [0, max(1, int(getattr(self.cfg, "inner_steps", 1)))]

    # -- shared ----------------------------------------------------------------------------------------
    def meta_parameters(self) -> list[torch.Tensor]:
        return self.params + [t for ts in self.extras.values() for t in ts]

    def check_finite(self, loss: torch.Tensor, update: list[torch.Tensor] = ()) -> float:
        """The loss as a float, if it and the outer update are finite; else stop with TrainingDiverged.

        One host sync: the update enters the check as 0 * its squared norm, which is NaN when an entry is
        not finite or when its square overflows (what Adam's second moment would hold, freezing it).
        """
        loss = loss.detach()
        if len(update):
            flat = optim.flatten(list(update))
            check = loss + 0.0 * torch.dot(flat, flat)
        else:
            check = loss
        if math.isfinite(float(check)):
            return float(loss)
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(f"the meta-loss became {value} (try a smaller learning rate)")
        raise TrainingDiverged(f"the meta-gradient overflowed (the loss was {value:.3g}; try a smaller learning rate)")

    def gradient_step(self, loss: torch.Tensor, optimizer, lr: float | None = None) -> float:
        """Differentiate the loss w.r.t. every meta-parameter, check both, and take an outer step."""
        grads = list(torch.autograd.grad(loss, self.meta_parameters(), materialize_grads=True))  # unused: 0
        return self.apply_gradient(loss, grads, optimizer, lr)

    def chunked_gradient(self, batch, task_chunks: list[slice], loss_of) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The mean loss of ``batch`` over its tasks and its gradient w.r.t. every meta-parameter, summed over
        ``task_chunks`` (slices of the task dimension) so that one chunk's graph is alive at a time;
        ``loss_of(part)`` is the mean loss of the tasks of ``part``."""
        n, total, grads = len(batch), 0.0, None
        meta = self.meta_parameters()
        for sl in task_chunks:
            part = batch[sl]
            loss = loss_of(part) * (len(part) / n)
            g = torch.autograd.grad(loss, meta, materialize_grads=True)
            grads = list(g) if grads is None else [a + b for a, b in zip(grads, g)]
            total = total + loss.detach()
        return total, grads

    def apply_gradient(self, loss: torch.Tensor, grads: list[torch.Tensor], optimizer, lr: float | None = None) -> float:
        """The loss as a float once it and ``grads`` (one per meta-parameter) are checked finite
        (:meth:`check_finite`), after an outer step of ``optimizer`` along ``grads``."""
        flat = optim.flatten(list(grads))  # one vector: one norm to check and one optimiser step
        value = self.check_finite(loss, [flat])
        optimizer.step(flat, lr)
        return value

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint must hold to resume exactly: parameters, extras, optimiser state."""
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
