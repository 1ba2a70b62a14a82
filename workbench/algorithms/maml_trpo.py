"""MAML for reinforcement learning with a TRPO outer update (Finn et al. 2017 sec. 5.3, Algorithm 3;
the estimator of pytorch-maml-rl).

    for each task T_i of the meta-batch (all at once, tasks are a batch dimension):
        sample N trajectories D_i with f_θ;  advantages from a linear baseline fitted per task
        θ'_i = θ − α ∇_θ L_i(θ, D_i),  L_i = −mean(log π_θ(a|s) · A)        (REINFORCE, any number of steps)
        sample N trajectories D'_i with f_θ'_i
    θ ← TRPO step on Σ_i −mean(π_θ'_i(a|s) / π_old(a|s) · A') with mean KL(π_old || π_θ'_i) <= δ,
        differentiating through θ'_i(θ) (second order; with ``first_order`` the inner gradient is a constant)

The surrogate is a deterministic function of θ given the sampled trajectories, so its gradient can be
checked against finite differences (tests/test_rl.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.config import LRSchedule, param
from workbench.core.optim import Adam
from workbench.core.registry import ALGORITHMS
from workbench.rl.learner import RLMetaLearner
from workbench.rl.rollout import collect


@dataclass
class MAMLTRPOConfig:
    inner_lr: LRSchedule = param(0.1, "α: learning rate of the inner policy-gradient steps: one number, or a "
                                 "schedule [α_0, α_1, ...] (step k uses entry min(k, len − 1); the MAML paper "
                                 "tested navigation with [0.5, 0.25]).", low=0.0, high=100.0, low_inclusive=False)
    inner_steps: int = param(1, "Inner policy-gradient steps (each on fresh trajectories).", low=0, high=10)
    first_order: bool = param(False, "Treat the inner gradient as a constant (first-order MAML).")
    meta_batch: int = param(20, "Tasks per meta-batch.", low=1, high=1000)
    trajectories: int = param(20, "Trajectories per task for each inner step and for the outer update.", low=1,
                              high=10_000)
    eval_trajectories: int = param(0, "Trajectories per task at each step of the held-out evaluation (0: as "
                                   "'trajectories'; the MAML paper tested with ~40 on navigation, ~20 on "
                                   "HalfCheetah).", low=0, high=10_000)
    gamma: float = param(0.99, "Discount factor γ.", low=0.0, high=1.0)
    gae_lambda: float = param(1.0, "GAE λ.", low=0.0, high=1.0)
    max_kl: float = param(0.01, "δ: TRPO's bound on the mean KL divergence of a step.", low=0.0, high=10.0,
                          low_inclusive=False)
    cg_iters: int = param(10, "Conjugate-gradient iterations.", low=1, high=200)
    cg_damping: float = param(1e-5, "Damping added to the Fisher-vector products.", low=0.0, high=10.0)
    ls_max_steps: int = param(15, "Backtracking line-search steps.", low=1, high=100)
    ls_backtrack_ratio: float = param(0.8, "Line-search shrink factor.", low=0.0, high=1.0, low_inclusive=False)
    fisher_subsample: int = param(5, "Fisher-vector products use every k-th observation.", low=1, high=100)
    policy_init: str = param("torch", "Initialisation of the policy's MLP: 'torch' (PyTorch's Linear default, "
                             "uniform ±1/sqrt(fan_in) weights and biases) or 'xavier' (Glorot uniform weights, zero "
                             "biases: rllab's, the MAML paper's code).", choices=("torch", "xavier"))
    exact_fisher: bool = param(True, "Fisher-vector products through the second-order inner update (as "
                               "pytorch-maml-rl; learns much faster per iteration). Off: the inner step is held "
                               "fixed for the curvature (cheaper). The line search always checks the exact KL.")


@ALGORITHMS.register
class MAMLTRPO(RLMetaLearner):
    name = "maml-trpo"
    title = "MAML-TRPO"
    Config = MAMLTRPOConfig
    summary = "MAML for RL: policy-gradient inner steps, TRPO meta-update through them."

    def meta_step(self, batch, iteration):
        c = self.cfg
        env = self.family.make_env(batch.params, workers=self.sampler_workers)
        b = len(batch)
        second_order = not c.first_order
        # θ'(θ) is built once, as the trajectories come in: its values are the sampling policies, its graph
        # gives the meta-gradient (no second pass over the training trajectories)
        adapted = self.expand(self.params, b)
        train = []
        for k in range(c.inner_steps):
            episodes = collect(env, self.policy, [t.detach() for t in adapted], c.trajectories, self.sample_gen)
            adv = self.advantages(episodes)
            train.append((episodes, adv))
            adapted = self.inner_update(adapted, episodes, adv, create_graph=second_order, step=k)
        sampling = [t.detach() for t in adapted]
        valid = collect(env, self.policy, sampling, c.trajectories, self.sample_gen)
        adv_v = self.advantages(valid).reshape(b, -1)
        obs_v, act_v, mask = valid.flat_obs(), valid.flat_actions(), valid.mask.reshape(b, -1)
        denom = mask.sum().clamp(min=1)
        before = float(train[0][0].returns.mean()) if train else float(valid.returns.mean())
        after = self.check_finite(valid.returns.mean())

        # the surrogate at θ: one forward pass whose values are also π_old (the ratio is 1, its gradient is
        # ∇ log π_θ'(θ)), so the old log-probabilities and distributions cost nothing extra
        stats = self.policy.stats(adapted, obs_v)
        old_stats = _detached(stats)
        logp = self.policy.log_prob_from(stats, act_v)
        loss = -(torch.exp(logp - logp.detach()) * adv_v * mask).sum() / denom
        old_logp = logp.detach()

        # Fisher-vector products on every k-th valid observation (the curvature, not the step, is estimated
        # from a subsample, as in OpenAI's TRPO); the gradient and the line search use all of them.
        sub = slice(None, None, c.fisher_subsample)
        offset = [s - p.detach() for s, p in zip(sampling, self.expand(self.params, b))]

        def fisher_kl():
            """The KL whose Hessian at θ is the Fisher: through the second-order inner update when
            ``exact_fisher`` (as pytorch-maml-rl), else with the adaptation step held fixed."""
            if c.exact_fisher:
                f = self.expand(self.params, b)
                for k, (episodes, adv) in enumerate(train):
                    f = self.inner_update(f, episodes, adv, create_graph=second_order, step=k)
            else:  # θ' = θ + (the adaptation step taken at θ0, as a constant)
                f = [p + o for p, o in zip(self.expand(self.params, b), offset)]
            m = mask[:, sub]
            return (self.policy.kl(sampling, f, obs_v[:, sub]) * m).sum() / m.sum().clamp(min=1)

        def evaluate():
            """The exact surrogate and KL at the current θ, without graphs (the line search)."""
            f = self.expand(self.params, b)
            for k, (episodes, adv) in enumerate(train):  # θ'(θ) on the stored trajectories
                f = self.inner_update(f, episodes, adv, False, values_only=True, step=k)
            new = self.policy.stats(f, obs_v)
            ratio = torch.exp(self.policy.log_prob_from(new, act_v) - old_logp)
            kl = (self.policy.kl_from(old_stats, new) * mask).sum() / denom
            return float(-(ratio * adv_v * mask).sum() / denom), float(kl)

        fvp = None
        if c.exact_fisher and second_order and c.inner_steps == 1:
            fvp = self.adapted_fisher_product(train[0], sampling, obs_v[:, sub], mask[:, sub])
        info = self.trpo(lambda: loss, fisher_kl, evaluate, fvp=fvp)
        return {"return": after, "return_before": before, **info}


def _detached(stats):
    return tuple(t.detach() for t in stats) if isinstance(stats, tuple) else stats.detach()


@dataclass
class PretrainedRLConfig(MAMLTRPOConfig):
    optimizer: str = param("trpo", "How the multi-task policy is trained: 'trpo' (TRPO steps within max_kl) or "
                           "'adam' (one Adam step of rate 'lr' on the policy-gradient loss per batch: the MAML "
                           "paper's navigation baseline, maml_rl's MAML-TRPO with use_maml = False).",
                           choices=("trpo", "adam"))
    lr: float = param(1e-3, "Adam's learning rate when optimizer = 'adam' (maml_rl's default: 1e-3).", low=0.0,
                      high=1.0, low_inclusive=False)


@ALGORITHMS.register
class PretrainedRL(RLMetaLearner):
    """Baseline: one policy trained on all training tasks jointly (no inner loop), with TRPO or with Adam on
    the policy-gradient loss, then the same policy-gradient fine-tuning steps as MAML at test time."""

    name = "pretrained-rl"
    title = "Pretrained policy (multi-task training + fine-tuning)"
    Config = PretrainedRLConfig
    summary = "Baseline: a multi-task policy, fine-tuned at test time with MAML's inner steps."

    def __init__(self, cfg, model, device, generator, total_iterations, family=None):
        super().__init__(cfg, model, device, generator, total_iterations, family=family)
        if cfg.optimizer == "adam":
            self.optimizer = Adam(self.params, cfg.lr)

    def meta_step(self, batch, iteration):
        c = self.cfg
        b = len(batch)
        env = self.family.make_env(batch.params, workers=self.sampler_workers)
        sampling = self.expand([p.detach() for p in self.params], b)
        episodes = collect(env, self.policy, sampling, c.trajectories, self.sample_gen)
        adv = self.advantages(episodes).reshape(b, -1)
        obs, act, mask = episodes.flat_obs(), episodes.flat_actions(), episodes.mask.reshape(b, -1)
        denom = mask.sum().clamp(min=1)
        if c.optimizer == "adam":  # −mean(log π(a|s) · A) over every task's steps
            logp = self.policy.log_prob(self.expand(self.params, b), obs, act)
            self.gradient_step(-(logp * adv * mask).sum() / denom, self.optimizer)
            return {"return": self.check_finite(episodes.returns.mean())}
        old_stats = self.policy.stats(sampling, obs)
        old_logp = self.policy.log_prob_from(old_stats, act)

        def objective():
            new = self.policy.stats(self.expand(self.params, b), obs)
            loss = -(torch.exp(self.policy.log_prob_from(new, act) - old_logp) * adv * mask).sum() / denom
            return loss, (self.policy.kl_from(old_stats, new) * mask).sum() / denom

        value = self.check_finite(episodes.returns.mean())
        info = self.trpo(lambda: objective()[0], lambda: objective()[1],
                         lambda: tuple(float(t) for t in objective()))
        return {"return": value, **info}


@dataclass
class ScratchRLConfig:
    inner_lr: LRSchedule = param(0.1, "Learning rate of the test-time policy-gradient steps: one number, or a "
                                 "schedule [α_0, α_1, ...] (step k uses entry min(k, len − 1)).", low=0.0,
                                 high=100.0, low_inclusive=False)
    inner_steps: int = param(1, "Default number of test-time policy-gradient steps.", low=0, high=10)
    meta_batch: int = param(20, "Tasks per batch on which the (untrained) return is reported.", low=1, high=1000)
    trajectories: int = param(20, "Trajectories per task and step.", low=1, high=10_000)
    eval_trajectories: int = param(0, "Trajectories per task at each step of the held-out evaluation (0: as "
                                   "'trajectories').", low=0, high=10_000)
    gamma: float = param(0.99, "Discount factor γ.", low=0.0, high=1.0)
    gae_lambda: float = param(1.0, "GAE λ.", low=0.0, high=1.0)
    policy_init: str = param("torch", "Initialisation of the policy's MLP: 'torch' or 'xavier' (Glorot uniform "
                             "weights, zero biases: rllab's).", choices=("torch", "xavier"))


@ALGORITHMS.register
class ScratchRL(RLMetaLearner):
    """Baseline: a randomly initialised policy, fine-tuned with the same policy-gradient steps."""

    name = "scratch-rl"
    title = "From scratch (random policy + fine-tuning)"
    Config = ScratchRLConfig
    summary = "Baseline: no meta-training; policy-gradient fine-tuning of a random policy."

    def meta_step(self, batch, iteration):
        env = self.family.make_env(batch.params, workers=self.sampler_workers)
        with torch.no_grad():
            episodes = collect(env, self.policy, self.expand(self.params, len(batch)), self.cfg.trajectories,
                               self.sample_gen)
        return {"return": self.check_finite(episodes.returns.mean())}
