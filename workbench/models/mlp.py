"""Functional MLP over explicit, optionally task-batched parameters.

Parameters are a list ``[W0, b0, W1, b1, ...]`` with ``W`` of shape ``(in, out)`` and ``b`` of shape
``(out,)`` (shared by all tasks) or ``(B, in, out)`` / ``(B, out)`` (one copy per task).  Inputs are
always task-batched: ``x`` has shape ``(B, N, in)``.  Tasks are a batch dimension, so adapting 25 tasks
is one set of batched matrix products, not a Python loop.

:func:`backprop` gives the per-task gradient of a loss, written out as backpropagation
with plain differentiable tensor ops.  Because it is built from ordinary autograd ops, differentiating
through it gives the exact second-order MAML meta-gradient, at a fraction of the cost of
``torch.autograd.grad(create_graph=True)`` (a test checks both agree).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.core import losses

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

    def init(self, generator: torch.Generator, device="cpu", dtype=torch.float32,
             scheme: str = "torch") -> list[torch.Tensor]:
        """Weights and biases drawn from ``generator``.  ``scheme = "torch"``: PyTorch's default Linear init
        (uniform ±1/sqrt(fan_in) for weights and biases); ``"xavier"``: Glorot uniform weights
        (±sqrt(6 / (fan_in + fan_out))) and zero biases, the init of rllab's MLPs (the MAML paper's code)."""
        params = []
        for shape in self.param_shapes():
            i = len(params) // 2
            fan_in, fan_out = self.sizes[i], self.sizes[i + 1]
            if scheme == "xavier":
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                p = (torch.zeros(shape, dtype=dtype) if len(shape) == 1
                     else torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=generator))
            else:
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


def backprop(params: list[torch.Tensor], x: torch.Tensor, out_grad, activation: str = "relu",
             first_layer: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Backpropagation written as differentiable tensor ops: ``out_grad(output)`` gives dLoss/dOutput
    (B, N, out); returns the per-task parameter gradients of layers ``first_layer..`` and the output."""
    ps = _Pass(params, x, out_grad, activation, first_layer)
    return ps.grads[2 * first_layer:], ps.out


# -- the meta-gradient of MAML / Meta-SGD / ANIL without autograd -------------------------------------------
# The outer gradient through k inner SGD steps θ_{j+1} = θ_j − α∘g(θ_j) (g: the support-loss gradient of
# the adapted parameters A) is v_0 with v_k = ∇L_query(θ_k) and, going back, v_j = v_{j+1} − H(θ_j) u,
# u = α∘v_{j+1} on A and 0 elsewhere (H: the support-loss Hessian; J_jᵀ v = v − H u as H is symmetric).
# H u is Pearlmutter's R-operator applied to the forward pass and the backpropagation above; Meta-SGD's
# learning rates get −Σ_j g(θ_j)∘v_{j+1}.  All tasks at once, as batched tensor ops: no autograd graph, which
# on the sinusoid setup is ~30% of a meta-step (tests check it against autograd to float64 precision).

def _matmul(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h (B, N, i) @ w ((i, o) or (B, i, o)), with 1-wide layers as broadcasts (see _linear)."""
    if w.shape[-2] == 1:
        return h * w
    if w.shape[-1] == 1:
        return (h * w.transpose(-1, -2)).sum(-1, keepdim=True)
    if w.dim() == 3:
        return torch.bmm(h, w)
    return (h.reshape(-1, h.shape[-1]) @ w).view(*h.shape[:-1], w.shape[-1])


def _back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """d (B, N, o) @ wᵀ: the gradient with respect to a layer's input."""
    return d * w.transpose(-1, -2) if w.shape[-1] == 1 else d @ w.transpose(-1, -2)


def _outer(h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Σ_n h[:, n]ᵀ d[:, n]: a weight's gradient per task, (B, i, o)."""
    if h.shape[-1] == 1:
        return (h * d).sum(1, keepdim=True)
    if d.shape[-1] == 1:
        return (h * d).sum(1).unsqueeze(-1)
    return h.transpose(-1, -2) @ d


def _outer_sum(h: torch.Tensor, d: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_b Σ_n h[b, n]ᵀ d[b, n] (+ ``add``): a weight's gradient summed over the tasks, (i, o), as one mm."""
    h2, d2 = h.reshape(-1, h.shape[-1]).t(), d.reshape(-1, d.shape[-1])
    return torch.mm(h2, d2) if add is None else torch.addmm(add, h2, d2)


def _act_back(e: torch.Tensor, z: torch.Tensor, h: torch.Tensor, activation: str) -> torch.Tensor:
    return _threshold_backward(e, z, 0) if activation == "relu" else _tanh_backward(e, h)


class _Pass:
    """One forward and backward pass of every task: the per-task gradients of layers ``first_layer..``
    (``grads``, None below), the output, and what the R-operator needs (with ``first_layer`` 0).
    ``out_grad(output)`` gives dLoss/dOutput (B, N, out)."""

    def __init__(self, params, x, out_grad, activation, first_layer: int = 0):
        n = len(params) // 2
        self.params, self.activation = params, activation
        h = features(params, x, activation, first_layer)  # a fixed feature extractor below first_layer
        # hs[l]: the input of layer l; zs[l]: its pre-activation (None below first_layer)
        self.hs, self.zs = [None] * first_layer + [h], [None] * first_layer
        for i in range(first_layer, n):
            z = _linear(h, params[2 * i], params[2 * i + 1])
            self.zs.append(z)
            h = _act(z, activation) if i < n - 1 else z
            if i < n - 1:
                self.hs.append(h)
        self.out = h
        d = out_grad(h)
        self.deltas, self.es = [None] * n, [None] * n  # d loss / d z_l, and d loss / d h_l (before act')
        self.grads = [None] * (2 * n)
        for i in range(n - 1, first_layer - 1, -1):
            self.deltas[i] = d
            self.grads[2 * i] = _outer(self.hs[i], d)
            self.grads[2 * i + 1] = d.sum(1)
            if i > first_layer:
                e = _back(d, params[2 * i])
                self.es[i - 1] = e
                d = _act_back(e, self.zs[i - 1], self.hs[i], activation)

    def hessian_product(self, u: list, r_out_grad, summed: bool = False) -> list[torch.Tensor]:
        """H u per task (B, ...) for every parameter (a pass from layer 0); ``u`` holds a direction (B, ...)
        or None (zero) per parameter; ``r_out_grad(out, Rz)`` is the R-operator of the loss's output
        gradient.  With ``summed``, Σ_b H_b u_b instead (shaped like the parameters): the tasks' products
        are only ever summed after the last pass back, and one mm over every task's rows does it."""
        n, p, act = len(self.params) // 2, self.params, self.activation
        r_h, r_hs = None, [None] * n  # R{input of layer l}
        r_z = None
        for i in range(n):
            r_hs[i] = r_h
            parts = []
            if u[2 * i] is not None:
                parts.append(_linear(self.hs[i], u[2 * i], u[2 * i + 1]))
            if r_h is not None:
                parts.append(_matmul(r_h, p[2 * i]))
            r_z = parts[0] if len(parts) == 1 else parts[0] + parts[1] if parts else None
            if i < n - 1:
                r_h = None if r_z is None else _act_back(r_z, self.zs[i], self.hs[i + 1], act)
        r_d = r_out_grad(self.out, r_z)
        hu = [None] * (2 * n)
        for i in range(n - 1, -1, -1):
            d = self.deltas[i]
            if summed:
                hu[2 * i + 1] = r_d.sum((0, 1))
                hw = _outer_sum(self.hs[i], r_d)
                hu[2 * i] = hw if r_hs[i] is None else _outer_sum(r_hs[i], d, hw)
            else:
                hu[2 * i + 1] = r_d.sum(1)
                hw = _outer(self.hs[i], r_d)
                hu[2 * i] = hw if r_hs[i] is None else hw + _outer(r_hs[i], d)
            if i > 0:
                r_e = _back(r_d, p[2 * i])
                if u[2 * i] is not None:
                    r_e = r_e + _back(d, u[2 * i])
                r_d = _act_back(r_e, self.zs[i - 1], self.hs[i], act)
                if act == "tanh" and r_hs[i] is not None:  # act'' term: d(1 − h²) = −2 h R{h}
                    r_d = r_d - 2 * self.es[i - 1] * self.hs[i] * r_hs[i]
        return hu


def meta_gradient(params, lrs, first: int, steps: int, first_order: bool, xs, ys, xq, yq, loss: str,
                  activation: str):
    """The meta-loss (mean over tasks of the query loss after ``steps`` inner SGD steps of
    ``params[first:]`` with learning rates ``lrs`` — floats, or tensors shaped like their parameters) and
    its gradient with respect to ``params`` and to tensor ``lrs``: ``(loss, grads_params, grads_lrs)``;
    ``grads_lrs`` is None for float rates.  Second order unless ``first_order`` (then H is left out)."""
    b = xs.shape[0]
    n = len(params)
    scalar = all(isinstance(lr, float) for lr in lrs) and len(set(lrs)) <= 1  # one rate: foreach with a scalar
    passes, fast = [], list(params)
    for _ in range(steps):
        ps = _Pass(fast, xs, lambda out: losses.output_grad(loss, out, ys), activation)
        passes.append(ps)
        if scalar:
            fast = fast[:first] + list(torch._foreach_add(fast[first:], ps.grads[first:], alpha=-lrs[0]))
        else:
            fast = fast[:first] + [torch.add(p, g, alpha=-lr) if isinstance(lr, float) else torch.addcmul(p, lr, g, value=-1)
                                   for p, lr, g in zip(fast[first:], lrs, ps.grads[first:])]
    query = _Pass(fast, xq, lambda out: losses.output_grad(loss, out, yq, 1.0 / b), activation)
    value = (torch.nn.functional.mse_loss(query.out, yq) if loss == "mse" else
             torch.nn.functional.cross_entropy(query.out.reshape(-1, query.out.shape[-1]), yq.reshape(-1)))
    v = query.grads  # per task (B, ...) until the last pass back, which sums over the tasks
    per_param = not all(isinstance(lr, float) for lr in lrs)
    g_lrs = [torch.zeros_like(lr) for lr in lrs] if per_param else None
    r_out_grad = lambda out, r: losses.output_grad_jvp(loss, out, r)  # noqa: E731
    for j in range(len(passes) - 1, -1, -1):
        ps = passes[j]
        u = [None] * first + (list(torch._foreach_mul(v[first:], lrs[0])) if scalar else
                              [vk * lr for lr, vk in zip(lrs, v[first:])])
        if per_param:
            for k, (g, vk) in enumerate(zip(ps.grads[first:], v[first:])):
                g_lrs[k] = g_lrs[k] - (g * vk).sum(0)
        if first_order:
            continue
        if j > 0:
            v = list(torch._foreach_sub(v, ps.hessian_product(u, r_out_grad)))
        else:
            return value, list(torch._foreach_sub([vk.sum(0) for vk in v], ps.hessian_product(u, r_out_grad, summed=True))), g_lrs
    return value, [vk.sum(0) for vk in v], g_lrs
