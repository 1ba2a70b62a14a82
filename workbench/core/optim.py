"""Outer-loop optimisers over a list of tensors, with their state as plain tensors (for checkpoints).

``torch.optim.Adam`` costs ~0.2 ms of Python per step, a fifth of a whole batched MAML iteration on
the sinusoid; this one is six fused ``_foreach`` calls and its state is a dict of tensors.
"""
from __future__ import annotations

import torch


class Adam:
    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: float | None = None) -> None:
        b1, b2 = self.betas
        self.t += 1
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        denom = torch._foreach_div(self.v, 1 - b2 ** self.t)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, self.eps)
        step = (self.lr if lr is None else lr) / (1 - b1 ** self.t)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-step)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}.t": torch.tensor(self.t, dtype=torch.int64)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            out[f"{prefix}.m.{i}"] = m
            out[f"{prefix}.v.{i}"] = v
        return out

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        self.t = int(tensors[f"{prefix}.t"])
        for i in range(len(self.params)):
            self.m[i].copy_(tensors[f"{prefix}.m.{i}"])
            self.v[i].copy_(tensors[f"{prefix}.v.{i}"])


class SGD:
    """Plain gradient step; used for Reptile's outer update θ ← θ + ε (φ̄ − θ)."""

    def __init__(self, params: list[torch.Tensor], lr: float):
        self.params, self.lr = params, lr

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: float | None = None) -> None:
        torch._foreach_add_(self.params, grads, alpha=-(self.lr if lr is None else lr))

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        pass
