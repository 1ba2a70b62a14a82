"""Losses and metrics of supervised task families, per task: what a family declares and the engine follows.

Every function takes task-batched predictions ``out`` of shape (B, N, C) (B tasks, N points, C outputs)
and targets ``y``: (B, N, C) floats for a regression loss, (B, N) class indices (int64) for a
classification loss; it returns one value per task, shape (B,), the mean over the task's N points.

* ``"mse"``: mean over points and outputs of the squared error.
* ``"cross_entropy"``: mean over points of −log softmax(out)[y] (natural log, nats).

Metrics (what the held-out evaluation reports and the views plot) add ``"accuracy"`` (fraction of points
whose arg-max output is the label, in [0, 1]) and ``"return"`` (meta-RL, computed by the rollouts).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: name -> True when a larger value is better (the plots' and the sweeps' direction)
HIGHER_IS_BETTER = {"mse": False, "loss": False, "cross_entropy": False, "accuracy": True, "return": True}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (``"return"``, ``"accuracy"``); unknown names: False."""
    return HIGHER_IS_BETTER.get(metric, False)


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N, C), (B, N, C) -> (B,) mean squared error of each task."""
    return (out - y).pow(2).flatten(1).mean(1)


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N, C) logits, (B, N) int64 labels -> (B,) mean cross-entropy of each task (nats)."""
    b, n = y.shape
    return F.cross_entropy(out.reshape(b * n, -1), y.reshape(b * n), reduction="none").view(b, n).mean(1)


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N, C) logits, (B, N) labels -> (B,) fraction of each task's points classified correctly; NaN for a
    task whose logits are not all finite (its adaptation diverged: never reported as an accuracy)."""
    acc = (out.argmax(-1) == y).to(out.dtype).mean(1)
    return torch.where(torch.isfinite(out).flatten(1).all(1), acc, torch.full_like(acc, float("nan")))


_FUNCTIONS = {"mse": mse, "cross_entropy": cross_entropy, "accuracy": accuracy}


def per_task(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-task loss or metric ``name`` of a supervised family (mse, cross_entropy or accuracy): (B,).
    Raises KeyError for an unknown name."""
    return _FUNCTIONS[name](out, y)


def mean_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean over tasks of :func:`per_task` (a scalar), as one fused op: every task of a batch has
    the same number of points, so the mean of the per-task means is the mean over all points."""
    if name == "mse":
        return F.mse_loss(out, y)
    if name == "cross_entropy":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    raise KeyError(name)


def output_grad(name: str, out: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale`` × d(per-task loss)/d(out) for each task, (B, N, C), written with differentiable ops (the
    fused MLP kernel's backward starts from it; differentiating through it gives the exact second-order
    terms)."""
    n = out.shape[1]
    if name == "mse":
        return torch.sub(out, y).mul_(2.0 * scale / (n * out.shape[2]))
    if name == "cross_entropy":
        return (torch.softmax(out, -1) - F.one_hot(y, out.shape[-1]).to(out.dtype)).mul_(scale / n)
    raise KeyError(name)


def output_grad_jvp(name: str, out: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The derivative of :func:`output_grad` (scale 1) at ``out`` in the direction ``r`` (B, N, C): the
    R-operator the fused MLP's Hessian-vector products start from."""
    n = out.shape[1]
    if name == "mse":
        return r * (2.0 / (n * out.shape[2]))
    if name == "cross_entropy":
        probs = torch.softmax(out, -1)
        return probs * (r - (probs * r).sum(-1, keepdim=True)) / n
    raise KeyError(name)
