"""Test-time adaptation shared by every supervised algorithm, the trainer's evaluation and the model bundle.

Every gradient-based supervised algorithm here adapts by gradient steps on the support set's loss (the
family's: MSE or cross-entropy), differing only in *which* parameters adapt (all, or only the head for
ANIL) and with *which* learning rates (one scalar, or one learned rate per parameter entry for Meta-SGD).
Metric-based classifiers (Prototypical Networks) adapt without steps: the network is an embedding and a
task's classifier is the distance to each class's mean support embedding (``kind = "prototypes"``).
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
    kind: str = "sgd"  # "sgd": inner gradient steps; "prototypes": a classifier of class-mean embeddings, 0 steps

    @property
    def step_label(self) -> str:
        """What the adaptation curve's steps count."""
        return "prototypes, no inner steps" if self.kind == "prototypes" else "inner step"


def prototypes(z_support: torch.Tensor, y_support: torch.Tensor, ways: int) -> torch.Tensor:
    """The mean embedding of each class (Snell et al. 2017, eq. 1): ``z_support`` (B, M, D), ``y_support``
    (B, M) labels in [0, ways) -> (B, ways, D).  A class with no support point gets a zero prototype."""
    onehot = torch.nn.functional.one_hot(y_support, ways).to(z_support.dtype)  # (B, M, N)
    counts = onehot.sum(1).clamp_min(1.0).unsqueeze(-1)  # (B, N, 1)
    return onehot.transpose(1, 2) @ z_support / counts


def distance_logits(z_query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """−‖z − c_k‖² for every query (B, Q, D) and prototype (B, N, D): (B, Q, N) (Snell et al. 2017, eq. 2).
    Expanded as ‖z‖² − 2 z·c + ‖c‖² about the prototypes' mean (distances do not change with the origin):
    about the raw origin, embeddings far from it lose the distance to float32 cancellation."""
    center = protos.mean(1, keepdim=True)
    z, c = z_query - center, protos - center
    return -(z.pow(2).sum(-1, keepdim=True) - 2 * z @ c.transpose(1, 2) + c.pow(2).sum(-1).unsqueeze(1))


def predict(network, params: list[torch.Tensor], rule: AdaptationRule, xs, ys, x: torch.Tensor) -> torch.Tensor:
    """The outputs (B, G, out) of each task's model on ``x`` (B, G, *in): the network's own, or with
    ``kind = "prototypes"`` the distance logits to the prototypes of the support set (xs, ys), one per label
    0..N-1 (N: 1 + the largest support label)."""
    if rule.kind != "prototypes":
        return network.forward(params, x)
    ways = int(ys.max()) + 1
    return distance_logits(network.forward(params, x), prototypes(network.forward(params, xs), ys, ways))


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
    if rule.kind == "prototypes" and steps:
        raise ValueError(f"{steps} inner steps: a prototype classifier has none (its adaptation curve is step 0)")
    split = (network.split_head() if rule.kind == "sgd" and 0 < network.head_start == rule.first else None)
    if split is not None and steps:  # only the head adapts: the body's features once, then the head's curve
        features, head = split
        k, values, preds = rule.first, [], []
        for sl in network.chunks(xs.shape[0]):
            Cancelled.raise_if_set(cancel)
            body = [p.detach() for p in params[:k]]
            f = [features(body, t[sl]) for t in ((xs, xq) if grid is None else (xs, xq, grid))]
            v, pr = adaptation_curve(head, params[k:], AdaptationRule(rule.lrs, 0, rule.steps, rule.loss), f[0],
                                     ys[sl], f[1], yq[sl], steps, f[2] if grid is not None else None, cancel, metric)
            values.append(v)
            preds.append(pr)
        return torch.cat(values), (torch.cat(preds) if grid is not None else None)
    values, preds = [], []
    for sl in network.chunks(xs.shape[0]):
        fast = [p.detach() for p in params]
        v, pr = [], []
        for s in range(steps + 1):
            Cancelled.raise_if_set(cancel)
            if s > 0:
                fast = inner_step(network, fast, rule, xs[sl], ys[sl])
            v.append(losses.per_task(metric, predict(network, fast, rule, xs[sl], ys[sl], xq[sl]), yq[sl]))
            if grid is not None:
                pr.append(predict(network, fast, rule, xs[sl], ys[sl], grid[sl]))
        values.append(torch.stack(v, 1))
        if grid is not None:
            preds.append(torch.stack(pr, 1))
    return torch.cat(values), (torch.cat(preds) if grid is not None else None)
