"""Policies with explicit parameters, over task-batched parameter lists (see models/mlp.py).

* :class:`GaussianPolicy`: an MLP gives the mean of a diagonal Gaussian; a learned log-std vector.
* :class:`CategoricalPolicy`: an MLP gives the logits of a categorical distribution.

Parameters are ``mlp params + [log_std]`` (Gaussian) or ``mlp params`` (categorical), shared ``(...)`` or
task-batched ``(B, ...)``; observations are ``(B, M, obs_dim)``.  The inner MAML step adapts all of them.
"""
from __future__ import annotations

import math

import torch

from workbench.models import mlp
from workbench.models.mlp import MLPSpec


class GaussianPolicy:
    discrete = False

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "tanh",
                 init_std: float = 1.0, min_std: float = 1e-6):
        self.spec = MLPSpec(obs_dim, act_dim, tuple(hidden), activation)
        self.act_dim, self.init_std, self.min_log_std = act_dim, init_std, math.log(min_std)

    def init(self, generator, device="cpu", scheme: str = "torch") -> list[torch.Tensor]:
        """The MLP's parameters (``scheme``: see :meth:`MLPSpec.init`) and log σ = log init_std."""
        return self.spec.init(generator, device, scheme=scheme) + [
            torch.full((self.act_dim,), math.log(self.init_std), device=device)]

    def _mean_logstd(self, params, obs):
        mean = mlp.forward(params[:-1], obs, self.spec.activation)
        log_std = params[-1].clamp(min=self.min_log_std)
        return mean, (log_std.unsqueeze(-2) if log_std.dim() == 2 else log_std).expand_as(mean)

    def loss_grad(self, params, obs, actions, weights) -> list[torch.Tensor]:
        """Per-task gradient of L = −Σ_t w_t log π(a_t|s_t), written out (differentiable, no autograd.grad):
        dL/dμ = −w (a − μ)/σ², dL/dlog σ = −Σ_t w_t ((a − μ)²/σ² − 1)."""
        log_std = params[-1].clamp(min=self.min_log_std)
        inv_var = torch.exp(-2 * log_std)
        inv_var = inv_var.unsqueeze(-2) if inv_var.dim() == 2 else inv_var
        w = weights.unsqueeze(-1)
        saved = {}

        def out_grad(mean):
            diff = actions - mean
            saved["diff"] = diff
            return -w * diff * inv_var

        grads, _ = mlp.backprop(params[:-1], obs, out_grad, self.spec.activation)
        g_log_std = -(w * (saved["diff"].pow(2) * inv_var - 1)).sum(1)
        return grads + [g_log_std]

    def sample(self, params, obs, generator) -> torch.Tensor:
        mean, log_std = self._mean_logstd(params, obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return mean + log_std.exp() * noise

    def stats(self, params, obs):
        """The distribution at each observation, (mean, log σ): one forward pass, reusable by
        :meth:`log_prob_from` and :meth:`kl_from`."""
        return self._mean_logstd(params, obs)

    @staticmethod
    def log_prob_from(stats, actions) -> torch.Tensor:
        mean, log_std = stats
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    @staticmethod
    def kl_from(old, new) -> torch.Tensor:
        """KL(π_old || π_new) per observation."""
        (m0, s0), (m1, s1) = old, new
        var0, var1 = torch.exp(2 * s0), torch.exp(2 * s1)
        return (s1 - s0 + (var0 + (m0 - m1).pow(2)) / (2 * var1) - 0.5).sum(-1)

    def log_prob(self, params, obs, actions) -> torch.Tensor:
        return self.log_prob_from(self.stats(params, obs), actions)

    def kl(self, old_params, new_params, obs) -> torch.Tensor:
        """KL(π_old || π_new) per observation."""
        return self.kl_from(self.stats(old_params, obs), self.stats(new_params, obs))

    def mode(self, params, obs) -> torch.Tensor:
        return self._mean_logstd(params, obs)[0]


class CategoricalPolicy:
    discrete = True

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], activation: str = "tanh"):
        self.spec = MLPSpec(obs_dim, n_actions, tuple(hidden), activation)
        self.n_actions = n_actions

    def init(self, generator, device="cpu", scheme: str = "torch") -> list[torch.Tensor]:
        return self.spec.init(generator, device, scheme=scheme)

    def _logp(self, params, obs):
        return torch.log_softmax(mlp.forward(params, obs, self.spec.activation), -1)

    def loss_grad(self, params, obs, actions, weights) -> list[torch.Tensor]:
        """Per-task gradient of L = −Σ_t w_t log π(a_t|s_t): dL/dlogits = −w (onehot(a) − softmax)."""
        onehot = torch.nn.functional.one_hot(actions.long(), self.n_actions).to(obs.dtype)
        w = weights.unsqueeze(-1)
        grads, _ = mlp.backprop(params, obs, lambda logits: -w * (onehot - torch.softmax(logits, -1)),
                                self.spec.activation)
        return grads

    def sample(self, params, obs, generator) -> torch.Tensor:
        probs = self._logp(params, obs).exp()
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])

    def stats(self, params, obs):
        """Log-probabilities of every action at each observation (see GaussianPolicy.stats)."""
        return self._logp(params, obs)

    @staticmethod
    def log_prob_from(stats, actions) -> torch.Tensor:
        return stats.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def kl_from(old, new) -> torch.Tensor:
        return (old.exp() * (old - new)).sum(-1)

    def log_prob(self, params, obs, actions) -> torch.Tensor:
        return self.log_prob_from(self.stats(params, obs), actions)

    def kl(self, old_params, new_params, obs) -> torch.Tensor:
        return self.kl_from(self.stats(old_params, obs), self.stats(new_params, obs))

    def mode(self, params, obs) -> torch.Tensor:
        return self._logp(params, obs).argmax(-1)


def make_policy(family, hidden, activation):
    if family.discrete_actions:
        return CategoricalPolicy(family.obs_dim, family.n_actions, hidden, activation)
    return GaussianPolicy(family.obs_dim, family.act_dim, hidden, activation)
