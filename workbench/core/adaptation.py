"""Test-time adaptation shared by every supervised algorithm, the trainer's evaluation and the model bundle.

Every supervised algorithm here adapts by gradient steps on the support set's loss (the family's: MSE or
cross-entropy), differing only in *which* parameters adapt (all, or only the head for ANIL) and with
*which* learning rates (one scalar, or one learned rate per parameter entry for Meta-SGD).
:class:`AdaptationRule` captures exactly that, so an exported bundle adapts the way the trainer evaluated.
The network (:class:`workbench.models.network.Network`) computes the per-task gradients, on any module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core import losses
from workbench.core.errors import Cancelled


@dataclass
class AdaptationRule:
    lrs: list  # one entry per adapted parameter: a float, or a tensor shaped like that parameter
    first: int  # params[first:] adapt (0: every parameter; network.head_start: only the head)
    steps: int  # number of inner steps used in training (the default at test time)
    loss: str = "mse"  # the inner loss (workbench.core.losses)


def inner_step(network, params: list[torch.Tensor], rule: AdaptationRule, xs: torch.Tensor, ys: torch.Tensor,
               create_graph: bool = False) -> list[torch.Tensor]:
    """One SGD step of every task on its own support set (xs (B, K, *in), ys its targets); returns
    task-batched parameters ((B, ...) for the adapted ones).

    With ``create_graph`` the step stays differentiable w.r.t. ``params`` (second-order MAML);
    otherwise the inner gradient is treated as a constant (first-order MAML, Reptile, evaluation).
    """
    k = rule.first
    grads = network.loss_grads(params, xs, ys, rule.loss, k, create_graph)
    new = [torch.add(p, g, alpha=-lr) if isinstance(lr, float) else torch.addcmul(p, lr, g, value=-1)
           for p, lr, g in zip(params[k:], rule.lrs, grads)]
    return list(params[:k]) + new


@torch.no_grad()
def adaptation_curve(network, params: list[torch.Tensor], rule: AdaptationRule, xs, ys, xq, yq, steps: int,
                     grid: torch.Tensor | None = None, cancel=None, metric: str = "mse"):
    """Query ``metric`` of each task after 0..steps inner steps, and optionally predictions on ``grid``.

    Returns ``values`` (B, steps+1) and ``preds`` (B, steps+1, G, out) or None.  Tasks run in the network's
    chunks (see Network.chunks).  ``cancel`` (a threading.Event, or None) is checked before every step: a
    set event raises :class:`Cancelled`.
    """
    values, preds = [], []
    for sl in network.chunks(xs.shape[0]):
        fast = [p.detach() for p in params]
        v, pr = [], []
        for s in range(steps + 1):
            Cancelled.raise_if_set(cancel)
            if s > 0:
                fast = inner_step(network, fast, rule, xs[sl], ys[sl])
            v.append(losses.per_task(metric, network.forward(fast, xq[sl]), yq[sl]))
            if grid is not None:
                pr.append(network.forward(fast, grid[sl]))
        values.append(torch.stack(v, 1))
        if grid is not None:
            preds.append(torch.stack(pr, 1))
    return torch.cat(values), (torch.cat(preds) if grid is not None else None)
