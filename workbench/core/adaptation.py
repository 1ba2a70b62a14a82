"""Test-time adaptation shared by every algorithm, the trainer's evaluation and the model bundle.

Every algorithm here adapts at test time by gradient steps on the support set's MSE, differing only in
*which* layers adapt (all, or only the head for ANIL) and with *which* learning rates (one scalar, or
one learned rate per parameter entry for Meta-SGD).  :class:`AdaptationRule` captures exactly that, so
an exported bundle adapts the same way the trainer evaluated it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.errors import Cancelled
from workbench.models import mlp


@dataclass
class AdaptationRule:
    lrs: list  # one entry per adapted parameter: a float, or a tensor shaped like that parameter
    first_layer: int  # layers first_layer.. adapt (0: every layer; n_layers-1: only the head)
    steps: int  # number of inner steps used in training (the default at test time)
    activation: str = "relu"


def inner_step(params: list[torch.Tensor], rule: AdaptationRule, xs: torch.Tensor, ys: torch.Tensor,
               create_graph: bool = False) -> list[torch.Tensor]:
    """One SGD step of every task on its own support set; returns task-batched parameters.

    With ``create_graph`` the step stays differentiable w.r.t. ``params`` (second-order MAML);
    otherwise the inner gradient is treated as a constant (first-order MAML, Reptile, evaluation).
    """
    k = 2 * rule.first_layer
    grads = mlp.mse_grad(params, xs, ys, rule.activation, rule.first_layer)
    if not create_graph:
        grads = [g.detach() for g in grads]
    adapted = params[k:]
    new = [torch.add(p, g, alpha=-lr) if isinstance(lr, float) else torch.addcmul(p, lr, g, value=-1)
           for p, lr, g in zip(adapted, rule.lrs, grads)]
    return list(params[:k]) + new


@torch.no_grad()
def adaptation_curve(params: list[torch.Tensor], rule: AdaptationRule, xs, ys, xq, yq, steps: int,
                     grid: torch.Tensor | None = None, cancel=None):
    """Query MSE of each task after 0..steps inner steps, and optionally predictions on ``grid``.

    Returns ``losses`` (B, steps+1) and ``preds`` (B, steps+1, G, out) or None.  ``cancel`` (a
    threading.Event, or None) is checked before every step: a set event raises :class:`Cancelled`.
    """
    fast = [p.detach() for p in params]
    losses, preds = [], []
    for s in range(steps + 1):
        Cancelled.raise_if_set(cancel)
        if s > 0:
            fast = inner_step(fast, rule, xs, ys)
        losses.append(mlp.mse(mlp.forward(fast, xq, rule.activation), yq))
        if grid is not None:
            preds.append(mlp.forward(fast, grid, rule.activation))
    loss = torch.stack(losses, 1)
    return loss, (torch.stack(preds, 1) if grid is not None else None)
