"""Functional MLP over explicit, optionally task-batched parameters.

Parameters are a list ``[W0, b0, W1, b1, ...]`` with ``W`` of shape ``(in, out)`` and ``b`` of shape
``(out,)`` (shared by all tasks) or ``(B, in, out)`` / ``(B, out)`` (one copy per task).  Inputs are
always task-batched: ``x`` has shape ``(B, N, in)``.  Tasks are a batch dimension, so adapting 25 tasks
is one set of batched matrix products, not a Python loop.

:func:`mse_grad` is the per-task gradient of the mean-squared error, written out as backpropagation
with plain differentiable tensor ops.  Because it is built from ordinary autograd ops, differentiating
through it gives the exact second-order MAML meta-gradient, at a fraction of the cost of
``torch.autograd.grad(create_graph=True)`` (a test checks both agree).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_threshold_backward = torch.ops.aten.threshold_backward
_tanh_backward = torch.ops.aten.tanh_backward


@dataclass(frozen=True)
class MLPSpec:
    in_dim: int
    out_dim: int
    hidden: tuple[int, ...]
    activation: str = "relu"

    @property
    def sizes(self) -> list[int]:
        return [self.in_dim, *self.hidden, self.out_dim]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    def param_names(self) -> list[str]:
        return [f"layers.{i}.{k}" for i in range(self.n_layers) for k in ("weight", "bias")]  # as modules.MLP

    def param_shapes(self) -> list[tuple[int, ...]]:
        s = self.sizes
        return [shape for i in range(self.n_layers) for shape in ((s[i], s[i + 1]), (s[i + 1],))]

    def to_dict(self) -> dict:
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "hidden": list(self.hidden),
                "activation": self.activation}

    @classmethod
    def from_dict(cls, d: dict) -> "MLPSpec":
        return cls(int(d["in_dim"]), int(d["out_dim"]), tuple(int(h) for h in d["hidden"]), str(d["activation"]))

    def init(self, generator: torch.Generator, device="cpu", dtype=torch.float32) -> list[torch.Tensor]:
        """PyTorch's default Linear init (uniform ±1/sqrt(fan_in)) for weights and biases."""
        params = []
        for shape in self.param_shapes():
            fan_in = self.sizes[len(params) // 2]
            bound = 1.0 / math.sqrt(fan_in)
            p = torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=generator)
            params.append(p.to(device))
        return params


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # 1-wide inputs or outputs (scalar regression) are cheaper as broadcast products than as tiny bmms
    if w.shape[-2] == 1:
        return torch.addcmul(b.unsqueeze(-2), h, w)
    if w.shape[-1] == 1:
        return (h * w.transpose(-1, -2)).sum(-1, keepdim=True) + b.unsqueeze(-2)
    if w.dim() == 3:
        return torch.baddbmm(b.unsqueeze(-2), h, w)
    return torch.addmm(b, h.reshape(-1, h.shape[-1]), w).view(*h.shape[:-1], w.shape[-1])


def _act(z: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(z)
    if activation == "tanh":
        # tanh(z) = 2 sigmoid(2z) - 1: this CPU build's tanh kernel is ~10x slower than its sigmoid, and
        # tanh layers dominate the cost of a MAML-TRPO step
        return torch.sigmoid(z * 2).mul(2).sub(1)
    raise ValueError(f"unknown activation {activation!r}")


def forward(params: list[torch.Tensor], x: torch.Tensor, activation: str = "relu",
            first_layer: int = 0) -> torch.Tensor:
    """Apply layers ``first_layer..`` of the MLP to ``x`` (B, N, in)."""
    n = len(params) // 2
    h = x
    for i in range(first_layer, n):
        h = _linear(h, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            h = _act(h, activation)
    return h


def features(params: list[torch.Tensor], x: torch.Tensor, activation: str, upto: int) -> torch.Tensor:
    """The hidden representation entering layer ``upto`` (for ANIL's frozen body)."""
    h = x
    for i in range(upto):
        h = _act(_linear(h, params[2 * i], params[2 * i + 1]), activation)
    return h


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean-squared error per task: (B,)."""
    return (pred - y).pow(2).flatten(1).mean(1)


def mse_grad(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, activation: str = "relu",
             first_layer: int = 0) -> list[torch.Tensor]:
    """Per-task gradient of :func:`mse` w.r.t. the parameters of layers ``first_layer..``.

    Returns task-batched gradients ``(B, ...)`` in the order of ``params[2 * first_layer:]``.  Layers
    before ``first_layer`` are treated as a fixed feature extractor (their gradient is not computed).
    """
    return backprop(params, x, lambda out: torch.sub(out, y).mul_(2.0 / (y.shape[1] * y.shape[2])), activation,
                    first_layer)[0]


def backprop(params: list[torch.Tensor], x: torch.Tensor, out_grad, activation: str = "relu",
             first_layer: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Backpropagation written as differentiable tensor ops: ``out_grad(output)`` gives dLoss/dOutput
    (B, N, out); returns the per-task parameter gradients of layers ``first_layer..`` and the output."""
    n = len(params) // 2
    h = features(params, x, activation, first_layer)
    inputs, pre = [], []
    for i in range(first_layer, n):
        inputs.append(h)
        z = _linear(h, params[2 * i], params[2 * i + 1])
        pre.append(z)
        h = _act(z, activation) if i < n - 1 else z
    output = h
    d = out_grad(output)
    grads: list[torch.Tensor] = []
    for j in range(n - 1 - first_layer, -1, -1):
        i = first_layer + j
        hin = inputs[j]
        grads.append(d.sum(1))  # bias
        w = params[2 * i]
        if w.shape[-2] == 1 or w.shape[-1] == 1:  # outer products as broadcasts (see _linear)
            grads.append((hin * d).sum(1, keepdim=True) if w.shape[-2] == 1
                         else (hin * d).sum(1).unsqueeze(-1))  # weight, (B, in, out)
        else:
            grads.append(hin.transpose(-1, -2) @ d)  # weight, (B, in, out)
        if j > 0:
            d = d * w.transpose(-1, -2) if w.shape[-1] == 1 else d @ w.transpose(-1, -2)
            if activation == "relu":
                d = _threshold_backward(d, pre[j - 1], 0)
            else:
                d = _tanh_backward(d, inputs[j])
    grads.reverse()
    return grads, output
