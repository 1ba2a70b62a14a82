"""Discounted returns, a linear feature baseline fitted per task, and GAE — batched over tasks."""
from __future__ import annotations

import torch

from .rollout import Episodes


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = sum_k gamma^k r_{t+k} along the last axis (time)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] * mask[..., t] + gamma * running
        out[..., t] = running
    return out


def baseline_features(ep: Episodes) -> torch.Tensor:
    """pytorch-maml-rl's linear baseline features: [o, o^2, t, t^2, t^3, 1] with t = step / 100."""
    b, n, h = ep.rewards.shape
    obs = ep.obs.clamp(-10, 10)
    t = (torch.arange(h, device=obs.device, dtype=obs.dtype) / 100.0).view(1, 1, h, 1).expand(b, n, h, 1)
    return torch.cat([obs, obs * obs, t, t * t, t ** 3, torch.ones_like(t)], -1) * ep.mask.unsqueeze(-1)


def linear_baseline(ep: Episodes, returns: torch.Tensor, reg: float = 1e-5) -> torch.Tensor:
    """Fit V(s_t) = w_task . phi(s_t) by ridge regression, one w per task; returns V (B, N, H)."""
    b, n, h = ep.rewards.shape
    x = baseline_features(ep).reshape(b, n * h, -1)
    y = (returns * ep.mask).reshape(b, n * h, 1)
    # float64 normal equations: in float32 a 1e-5 ridge vanishes next to diagonal entries of ~600, and
    # identical feature columns (a constant observation) leave the system singular
    x64, y64 = x.double(), y.double()
    xtx, xty = x64.transpose(1, 2) @ x64, x64.transpose(1, 2) @ y64
    eye = torch.eye(x.shape[-1], device=x.device, dtype=torch.float64)
    w = torch.zeros_like(xty)
    for _ in range(10):  # as the reference implementation: raise the ridge until the solve succeeds
        w, info = torch.linalg.solve_ex(xtx + reg * eye, xty)
        if not bool(info.any()) and bool(torch.isfinite(w).all()):
            break
        reg *= 10
    else:  # still singular or non-finite (non-finite returns): no baseline for the tasks that failed
        bad = (info != 0) | ~torch.isfinite(w).all(-1).all(-1)
        w = torch.where(bad.view(-1, 1, 1), torch.zeros_like(w), w)
    return (x64 @ w).to(x.dtype).reshape(b, n, h) * ep.mask


def gae(ep: Episodes, gamma: float, lam: float, normalize: bool = True) -> torch.Tensor:
    """Generalised advantage estimates with the per-task linear baseline; normalised per task."""
    returns = discounted_returns(ep.rewards, ep.mask, gamma)
    values = linear_baseline(ep, returns)
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], -1)
    deltas = (ep.rewards + gamma * next_values - values) * ep.mask
    adv = discounted_returns(deltas, ep.mask, gamma * lam)
    if normalize:
        m = ep.mask
        count = m.sum((1, 2), keepdim=True).clamp(min=1)
        mean = (adv * m).sum((1, 2), keepdim=True) / count
        var = ((adv - mean).pow(2) * m).sum((1, 2), keepdim=True) / count
        adv = (adv - mean) / (var.sqrt() + 1e-8) * m
    return adv
