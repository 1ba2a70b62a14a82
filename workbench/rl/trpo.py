"""Trust-region policy optimisation step (Schulman et al. 2015, appendix C).

    g = ∇ L(θ);  solve F x = g by conjugate gradient, F v = ∇(∇KL · v) (Hessian-vector products)
    step = sqrt(2 δ / xᵀF x) · x;  backtracking line search (ratio^k) until L improves and KL <= δ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def conjugate_gradient(avp: Callable, b: torch.Tensor, iters: int = 10, tol: float = 1e-10) -> torch.Tensor:
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        ap = avp(p)
        alpha = rr / (p @ ap + 1e-12)
        x = x + alpha * p
        r = r - alpha * ap
        new_rr = r @ r
        if new_rr < tol:
            break
        p = r + (new_rr / rr) * p
        rr = new_rr
    return x


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(v: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """The inverse of :func:`flat`: views of ``v`` shaped like ``like``."""
    out, i = [], 0
    for t in like:
        out.append(v[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


@dataclass
class TRPOResult:
    accepted: bool
    kl: float
    improvement: float
    step_fraction: float


def trpo_step(params: list[torch.Tensor], surrogate: Callable, fisher_kl: Callable | None, evaluate: Callable,
              max_kl: float = 0.01, damping: float = 1e-5, cg_iters: int = 10, ls_steps: int = 15,
              ls_ratio: float = 0.8, fvp: Callable | None = None) -> TRPOResult:
    """One TRPO update of ``params`` (in place).

    ``surrogate()``: the differentiable surrogate loss at the current params; ``fisher_kl()``: a twice-
    differentiable mean KL from the sampling policy whose Hessian gives the Fisher-vector products (or
    ``fvp(v)``, a function computing those products directly, flat in and out);
    ``evaluate()``: the exact (loss, KL) as floats, used by the line search, so an accepted step always
    satisfies KL <= max_kl.  If no step of the line search improves the loss within the bound, the
    parameters are left as they were and ``accepted`` is False.
    """
    loss = surrogate()
    grads = flat(torch.autograd.grad(loss, params))
    old_loss = float(loss.detach())
    if fvp is None:
        flat_kl_grad = flat(torch.autograd.grad(fisher_kl(), params, create_graph=True))

        def hvp(v: torch.Tensor) -> torch.Tensor:
            return flat(torch.autograd.grad(flat_kl_grad @ v, params, retain_graph=True))
    else:
        hvp = fvp

    def damped(v: torch.Tensor) -> torch.Tensor:
        return hvp(v) + damping * v

    direction = conjugate_gradient(damped, grads, cg_iters)
    shs = 0.5 * (direction @ damped(direction))
    if not torch.isfinite(shs) or shs <= 0:
        return TRPOResult(False, 0.0, 0.0, 0.0)
    full_step = direction * torch.sqrt(max_kl / shs)  # = sqrt(2δ / xᵀFx) · x
    old = [p.detach().clone() for p in params]
    frac = 1.0
    with torch.no_grad():
        for _ in range(ls_steps):
            for p, o, d in zip(params, old, unflat(full_step, params)):
                p.copy_(o - frac * d)
            new_loss, new_kl = evaluate()
            if new_loss < old_loss and new_kl <= max_kl:
                return TRPOResult(True, new_kl, old_loss - new_loss, frac)
            frac *= ls_ratio
        for p, o in zip(params, old):
            p.copy_(o)
    return TRPOResult(False, 0.0, 0.0, 0.0)
