"""The base of the gradient-based meta-RL learners (MAML-TRPO and its baselines), and what every RL learner
shares.

:class:`RLMetaLearner` meta-learns the initial parameters of a functional policy
(:mod:`workbench.rl.policies`: a Gaussian or categorical head on an MLP) and shares, for its subclasses,
the batched rollouts (:mod:`workbench.rl.rollout`), the advantages (:mod:`workbench.rl.returns`), the
adaptation (policy-gradient inner steps, differentiable for the meta-gradient), TRPO's outer step
(:mod:`workbench.rl.trpo`) and the evaluation (return after 0..S inner steps on fresh trajectories).

Every RL learner, these and the ones that adapt otherwise (PEARL, RL²), runs MLP policies built from the
preset's ``[model]`` table: :func:`mlp_policy_spec` is their ``make_model``, and the ``model`` their
constructor receives is that :class:`~workbench.models.mlp.MLPSpec` (kept as ``learner.spec``: the bundle
writes it).
"""
from __future__ import annotations

import torch

from workbench.core import seeding
from workbench.core.config import lr_at
from workbench.core.errors import Cancelled, ConfigError, TrainingDiverged
from workbench.core.evaluation import EvalOutcome
from workbench.core.learner import Learner
from workbench.core.registry import FamiliesOfKind
from workbench.models.mlp import MLPSpec
from workbench.rl.policies import make_policy
from workbench.rl.returns import gae
from workbench.rl.rollout import collect
from workbench.rl.trpo import flat, trpo_step, unflat

RL_FAMILIES = FamiliesOfKind("rl")  # every reinforcement-learning family, the registered ones included
MAX_REJECTED = 10  # consecutive line-search failures before the run stops


def mlp_policy_spec(cls, model_config, family, where: str = "[model]") -> MLPSpec:
    """``make_model`` of every RL learner: the MLP of ``model_config`` (hidden widths, activation) from the
    family's observations to its action outputs.  Raises ConfigError (one line) for any other network."""
    if model_config.module:
        raise ConfigError(f"{where} module = {model_config.module!r}: {cls.name} runs MLP policies; leave module "
                          f"empty and set name = \"mlp\"")
    if model_config.name != "mlp":
        raise ConfigError(f"{where} name = {model_config.name!r}: {cls.name} runs MLP policies; set name = \"mlp\"")
    if family.kind != "rl":
        raise ConfigError(f"{where}: {cls.name} needs a reinforcement-learning family, {family.name!r} is "
                          f"{family.kind}")
    return MLPSpec(family.in_dim, family.out_dim, tuple(model_config.hidden), model_config.activation)


def skip_unused_init(spec: MLPSpec, generator: torch.Generator) -> None:
    """Draw, and discard, an MLP of ``spec``'s shape from ``generator``: what the RL learners' former base
    drew before their own networks, kept so that seeded runs reproduce the numbers they always had."""
    spec.init(generator)


class RLMetaLearner(Learner):
    """Shared by the gradient-based RL learners: a functional policy, rollouts, adaptation, evaluation."""

    families = RL_FAMILIES
    train_metric = "return"
    eval_metric = "return"
    adapt_in_training = True
    make_model = classmethod(mlp_policy_spec)

    def __init__(self, cfg, model: MLPSpec, device, generator, total_iterations, family=None):
        super().__init__(cfg, model, device, generator, total_iterations, family=family)
        self.spec = model
        self.policy = make_policy(family, model.hidden, model.activation)
        skip_unused_init(model, generator)
        scheme = getattr(cfg, "policy_init", "torch")  # the paper presets: rllab's (Glorot weights, zero biases)
        self.params = [p.requires_grad_() for p in self.policy.init(generator, device, scheme=scheme)]
        self.sample_gen = torch.Generator(device="cpu").manual_seed(
            int(torch.randint(2**62, (1,), generator=generator)))
        self.rejected = 0
        self.optimizer = _NoOptimizer()  # TRPO updates the parameters itself

    # -- adaptation ----------------------------------------------------------------------------------
    def expand(self, params, n_tasks: int) -> list[torch.Tensor]:
        return [p.unsqueeze(0).expand(n_tasks, *p.shape) for p in params]

    def inner_update(self, fast, episodes, adv, create_graph: bool, values_only: bool = False,
                     step: int = 0) -> list[torch.Tensor]:
        """θ' = θ − α_k ∇L_inner(θ) per task, α_k = the rate of inner step ``step`` (0-based) under the
        ``inner_lr`` schedule (:func:`~workbench.core.config.lr_at`).  ``values_only``: no graph back to θ
        (evaluation, line search).

        The gradient of each task's REINFORCE loss −mean(log π(a|s) · A) is written out (policy.loss_grad)
        with differentiable ops, so
        differentiating through it gives the second-order term without autograd.grad(create_graph=True);
        tests check it against autograd and the whole meta-gradient against finite differences."""
        if values_only:
            fast = [f.detach() for f in fast]
        b = episodes.rewards.shape[0]
        count = episodes.mask.reshape(b, -1).sum(1).clamp(min=1)
        weights = (adv * episodes.mask).reshape(b, -1) / count.unsqueeze(1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and create_graph and not values_only):
            grads = self.policy.loss_grad(fast, episodes.flat_obs(), episodes.flat_actions(), weights)
        if not create_graph:
            grads = [g.detach() for g in grads]
        alpha = lr_at(self.cfg.inner_lr, step)
        new = [p - alpha * g for p, g in zip(fast, grads)]
        return [t.detach() for t in new] if values_only else new

    def advantages(self, episodes):
        return gae(episodes, self.cfg.gamma, self.cfg.gae_lambda)

    def adapted_fisher_product(self, train, sampling, obs, mask):
        """Fisher-vector products of the KL of the adapted policy w.r.t. θ, for one inner step:
        at θ0 the KL's gradient vanishes, so its Hessian is Σ_i J_iᵀ F'_i J_i with J_i = I − α H_i (H_i the
        Hessian of task i's inner loss) and F'_i the Fisher at the adapted parameters.  Two Hessian-vector
        products of the inner loss and one of the KL per product — no third-order graph.  Both curvatures
        are estimated on every k-th step (``fisher_subsample``); with k = 1 the product is exact (a test
        compares it with differentiating the KL three times)."""
        episodes, adv = train
        b = episodes.rewards.shape[0]
        alpha, k = lr_at(self.cfg.inner_lr, 0), self.cfg.fisher_subsample
        fast = [p.detach().unsqueeze(0).expand(b, *p.shape).clone().requires_grad_() for p in self.params]
        count = episodes.mask.reshape(b, -1).sum(1).clamp(min=1)
        weights = (adv * episodes.mask).reshape(b, -1) / count.unsqueeze(1)
        sub = slice(None, None, k)  # the inner-loss curvature, like the KL's, from every k-th step (k = 1: exact)
        with torch.enable_grad():
            grads = self.policy.loss_grad(fast, episodes.flat_obs()[:, sub], episodes.flat_actions()[:, sub],
                                          weights[:, sub] * k)
            phi = [s.detach().clone().requires_grad_() for s in sampling]
            denom = mask.sum().clamp(min=1)
            kl = (self.policy.kl(sampling, phi, obs) * mask).sum() / denom
            kl_grad = torch.autograd.grad(kl, phi, create_graph=True)

        def hess_inner(vs):  # per task: H_i v_i
            return torch.autograd.grad(grads, fast, grad_outputs=vs, retain_graph=True)

        def product(v: torch.Tensor) -> torch.Tensor:
            vs = [t.unsqueeze(0).expand(b, *t.shape) for t in unflat(v, self.params)]
            u = [vi - alpha * hv for vi, hv in zip(vs, hess_inner(vs))]  # J v, per task
            w = torch.autograd.grad(kl_grad, phi, grad_outputs=u, retain_graph=True)  # F' J v
            jt_w = [wi - alpha * hw for wi, hw in zip(w, hess_inner(w))]  # Jᵀ F' J v, per task
            return flat([t.sum(0) for t in jt_w])

        return product

    # -- evaluation ----------------------------------------------------------------------------------
    @property
    def eval_trajectories(self) -> int:
        """Trajectories per task at each step of the held-out evaluation: ``eval_trajectories``, or (0, or a
        config without the key) the training's ``trajectories``."""
        return int(getattr(self.cfg, "eval_trajectories", 0) or self.cfg.trajectories)

    def evaluate(self, family, batch, steps, render_tasks, cancel=None):
        """Return of the held-out tasks after 0..steps inner steps (fresh trajectories at each step):
        per_task (tasks, steps + 1), the undiscounted return of an episode averaged over
        :attr:`eval_trajectories` trajectories; inner step k uses the ``inner_lr`` schedule's rate α_k.
        ``cancel`` (a threading.Event) is checked before each step's trajectories and before the render:
        :class:`Cancelled` is raised once it is set."""
        gen = seeding.generator("eval-rollouts", 0)
        env = family.make_env(batch.params, workers=self.sampler_workers)
        fast = self.expand([p.detach() for p in self.params], len(batch))
        returns, shown = [], []
        r = min(render_tasks, len(batch))
        n_traj = self.eval_trajectories
        for s in range(steps + 1):
            Cancelled.raise_if_set(cancel)
            episodes = collect(env, self.policy, fast, n_traj, gen, cancel=cancel)
            returns.append(episodes.returns.mean(1))
            shown.append(episodes[:r])
            if s < steps:
                fast = self.inner_update(fast, episodes, self.advantages(episodes), False, values_only=True,
                                         step=s)
        outcome = EvalOutcome("return", torch.stack(returns, 1).double().cpu().numpy(), list(range(steps + 1)),
                              self.cfg.inner_steps)
        if r > 0:
            Cancelled.raise_if_set(cancel)
            outcome.payload = family.render(batch.params[:r], shown, outcome.steps, cancel)
        outcome.references = {k: float(v.mean()) for k, v in family.references(batch.params, 0).items()}
        return outcome

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_tensors(self):
        out = super().state_tensors()
        out["sample_generator"] = self.sample_gen.get_state()
        out["rejected"] = torch.tensor(self.rejected)
        return out

    def load_state_tensors(self, tensors):
        super().load_state_tensors(tensors)
        self.sample_gen.set_state(tensors["sample_generator"])
        self.rejected = int(tensors["rejected"])

    def trpo(self, surrogate, fisher_kl, evaluate, fvp=None) -> dict:
        c = self.cfg
        result = trpo_step(self.params, surrogate, fisher_kl, evaluate, c.max_kl, c.cg_damping, c.cg_iters,
                           c.ls_max_steps, c.ls_backtrack_ratio, fvp=fvp)
        self.rejected = 0 if result.accepted else self.rejected + 1
        if self.rejected >= MAX_REJECTED:
            raise TrainingDiverged(f"TRPO's line search found no step that improves the surrogate within "
                                   f"max_kl = {c.max_kl} for {MAX_REJECTED} iterations in a row (the parameters "
                                   f"were kept; try a larger max_kl or more trajectories)")
        return {"kl": result.kl, "accepted": float(result.accepted)}


class _NoOptimizer:
    def state_tensors(self, prefix):
        return {}

    def load_state_tensors(self, prefix, tensors):
        pass
