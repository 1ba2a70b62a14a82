"""PEARL (Rakelly et al. 2019, "Efficient off-policy meta-RL via probabilistic context variables"),
Algorithms 1 and 2.

    a fixed pool of training tasks, each with a replay buffer B_i and a context buffer C_i
    every iteration:
        for a few tasks i of the pool:  C_i ← episodes with z ~ prior;  B_i += those and episodes with
                                          z ~ q(z | C_i)  (posterior sampling)
        repeat grad_steps times, for a meta-batch of tasks (all at once, tasks are a batch dimension):
            c ~ C_i;  q(z|c) = Π_n N(μ_n, σ_n²) (product of Gaussian factors, one per transition);  z ~ q
            critic:  Q(s, a, z) → r + γ (min Q_targ(s', a', z) − α log π(a'|s', z)),  plus β KL(q(z|c) || N(0, I))
                     (the critic's gradient trains the encoder; the actor sees z as a constant)
            actor:   soft actor-critic on π(a | s, z);  temperature α tuned to a target entropy
            targets: Polyak averaging
    on a new task (the adaptation curve): episode 0 with z ~ prior, then after every episode
        z ~ q(z | everything seen so far on this task): return vs episodes of context.

Continuous actions use a tanh-squashed Gaussian scaled to the family's action bound; discrete actions a
categorical policy with per-action Q-values (the discrete form of SAC).  Networks are shared by all tasks;
the tasks of a meta-batch are a batch dimension of every forward pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.core import seeding
from workbench.core.config import param
from workbench.core.errors import Cancelled, WorkbenchError
from workbench.core.evaluation import EvalOutcome
from workbench.core.learner import Learner
from workbench.core.optim import Adam
from workbench.core.registry import ALGORITHMS
from workbench.models import mlp
from workbench.models.mlp import MLPSpec
from workbench.rl.learner import RL_FAMILIES, mlp_policy_spec, skip_unused_init
from workbench.rl.rollout import Episodes

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass
class PEARLConfig:
    latent_dim: int = param(5, "Size of the task variable z.", low=1, high=256)
    train_tasks: int = param(50, "Fixed pool of training tasks, each with its own replay buffer.", low=1,
                             high=10_000)
    meta_batch: int = param(10, "Tasks per gradient step.", low=1, high=10_000)
    collect_tasks: int = param(5, "Tasks of the pool that collect new data each iteration.", low=1, high=10_000)
    initial_episodes: int = param(2, "Episodes per training task, with z from the prior, before training.",
                                  low=1, high=1000)
    prior_episodes: int = param(1, "Episodes per collecting task with z from the prior (its new context).",
                                low=1, high=1000)
    posterior_episodes: int = param(1, "Episodes per collecting task with z from the posterior of that context.",
                                    low=0, high=1000)
    grad_steps: int = param(20, "Gradient steps per iteration.", low=1, high=10_000)
    batch_size: int = param(128, "Transitions per task in each critic / actor batch.", low=1, high=100_000)
    context_size: int = param(64, "Context transitions per task for the encoder.", low=1, high=100_000)
    buffer_size: int = param(5000, "Transitions kept per task (oldest replaced first).", low=1, high=1_000_000)
    lr: float = param(3e-4, "Adam learning rate (actor, critics, encoder, temperature).", low=0.0, high=1.0,
                      low_inclusive=False)
    gamma: float = param(0.99, "Discount factor γ.", low=0.0, high=1.0)
    tau: float = param(0.005, "Polyak factor of the target critics.", low=0.0, high=1.0)
    kl_weight: float = param(0.1, "β: weight of KL(q(z|c) || prior) in the encoder's loss.", low=0.0, high=100.0)
    reward_scale: float = param(5.0, "Rewards are multiplied by this in the critic's target.", low=0.0, high=1e4,
                                low_inclusive=False)
    target_entropy: float = param(-1.0, "Target policy entropy per action dimension (continuous); for discrete "
                                  "actions, its absolute value times log(actions).", low=-100.0, high=100.0)
    eval_trials: int = param(4, "Independent trials (each with its own context) per held-out task.", low=1,
                             high=1000)


class _Nets:
    """Shapes of PEARL's networks over one hidden-layer spec: encoder, two critics, actor."""

    def __init__(self, family, hidden: tuple[int, ...], activation: str, latent: int):
        self.discrete = family.discrete_actions
        self.obs_dim = family.obs_dim
        self.act_dim = family.n_actions if self.discrete else family.act_dim
        self.latent = latent
        ctx = self.obs_dim + self.act_dim + 1  # (s, a, r), actions one-hot when discrete
        q_in = self.obs_dim + latent + (0 if self.discrete else self.act_dim)
        q_out = self.act_dim if self.discrete else 1
        pi_out = self.act_dim if self.discrete else 2 * self.act_dim
        self.specs = {"encoder": MLPSpec(ctx, 2 * latent, hidden, activation),
                      "q1": MLPSpec(q_in, q_out, hidden, activation),
                      "q2": MLPSpec(q_in, q_out, hidden, activation),
                      "actor": MLPSpec(self.obs_dim + latent, pi_out, hidden, activation)}


@ALGORITHMS.register
class PEARL(Learner):
    name = "pearl"
    title = "PEARL"
    Config = PEARLConfig
    families = RL_FAMILIES
    summary = "Off-policy meta-RL: soft actor-critic conditioned on a task variable inferred from context."
    train_metric = "return"
    eval_metric = "return"
    step_label = "episodes of context"
    make_model = classmethod(mlp_policy_spec)  # every network's hidden layers and activation

    def __init__(self, cfg, spec: MLPSpec, device, generator, total_iterations, family=None):
        super().__init__(cfg, spec, device, generator, total_iterations, family=family)
        self.spec = spec
        skip_unused_init(spec, generator)
        self.nets = _Nets(family, spec.hidden, spec.activation, cfg.latent_dim)
        self.activation = spec.activation
        self.parts: dict[str, list[torch.Tensor]] = {}
        for key, s in self.nets.specs.items():
            self.parts[key] = [p.requires_grad_() for p in s.init(generator, device)]
        self.log_alpha = torch.zeros(1, device=device, requires_grad=True)
        self.params = [p for key in ("encoder", "q1", "q2", "actor") for p in self.parts[key]] + [self.log_alpha]
        self.extras = {"target_q1": [p.detach().clone() for p in self.parts["q1"]],
                       "target_q2": [p.detach().clone() for p in self.parts["q2"]]}
        self.optimizer = Adam(self.params, cfg.lr)
        self.sample_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        self.pool = family.sample_task_params(cfg.train_tasks, generator).to(device)
        self.action_scale = float(getattr(family, "action_scale", 1.0))
        d = self.nets
        if d.discrete:
            self.target_entropy = abs(cfg.target_entropy) * math.log(d.act_dim)
        else:
            self.target_entropy = cfg.target_entropy * d.act_dim
        self._buffers_ready = False
        self._make_buffers()

    # -- replay buffers: tensors over (task, slot) --------------------------------------------------------
    def _make_buffers(self):
        n, cap, d, dev = self.cfg.train_tasks, self.cfg.buffer_size, self.nets, self.device
        act_shape = () if d.discrete else (d.act_dim,)
        self.buf = {"obs": torch.zeros(n, cap, d.obs_dim, device=dev),
                    "act": torch.zeros(n, cap, *act_shape, device=dev),
                    "rew": torch.zeros(n, cap, device=dev),
                    "next_obs": torch.zeros(n, cap, d.obs_dim, device=dev),
                    "done": torch.zeros(n, cap, device=dev)}
        self.size = torch.zeros(n, dtype=torch.long, device=dev)
        self.ptr = torch.zeros(n, dtype=torch.long, device=dev)
        ctx_cap = self.family.horizon * max(self.cfg.prior_episodes, self.cfg.initial_episodes)
        self.ctx = torch.zeros(n, ctx_cap, d.obs_dim + d.act_dim + 1, device=dev)
        self.ctx_size = torch.zeros(n, dtype=torch.long, device=dev)

    def _add(self, tasks: torch.Tensor, tr: dict):
        """Append transitions tr[key]: (K, M, ...) with validity tr["valid"] (K, M) for pool tasks ``tasks``."""
        valid = tr["valid"] > 0
        k_idx, m_idx = valid.nonzero(as_tuple=True)
        if k_idx.numel() == 0:
            return
        order = valid.long().cumsum(1) - 1  # rank of each valid transition within its task
        rank = order[k_idx, m_idx]
        task = tasks[k_idx]
        slot = (self.ptr[task] + rank) % self.cfg.buffer_size
        for key in ("obs", "act", "rew", "next_obs", "done"):
            self.buf[key][task, slot] = tr[key][k_idx, m_idx].to(self.buf[key].dtype)
        counts = valid.sum(1)
        self.ptr[tasks] = (self.ptr[tasks] + counts) % self.cfg.buffer_size
        self.size[tasks] = (self.size[tasks] + counts).clamp(max=self.cfg.buffer_size)

    def _context_rows(self, tr, k_idx, m_idx):
        return torch.cat([tr["obs"][k_idx, m_idx], self._encode_action(tr["act"][k_idx, m_idx]),
                          tr["rew"][k_idx, m_idx].unsqueeze(-1)], -1)

    def _encode_action(self, a):
        return torch.nn.functional.one_hot(a.long(), self.nets.act_dim).float() if self.nets.discrete else a

    # -- the networks --------------------------------------------------------------------------------------
    def posterior(self, context: torch.Tensor, mask: torch.Tensor | None = None):
        """q(z | c) as a product of one Gaussian factor per transition: context (T, M, ctx) -> mean, var (T, L).
        ``mask`` (T, M) leaves out padding; a task with no context gets the prior N(0, I)."""
        out = mlp.forward(self.parts["encoder"], context, self.activation)
        mu, var = out[..., : self.nets.latent], torch.nn.functional.softplus(out[..., self.nets.latent:]).clamp(min=1e-7)
        prec = 1.0 / var
        if mask is not None:
            prec = prec * mask.unsqueeze(-1)
        total = prec.sum(1)
        if mask is not None:  # the prior's factor stands in where there is no context at all
            total = total + (mask.sum(1, keepdim=True) == 0).float()
        var_z = 1.0 / total
        mean_z = var_z * (mu * prec).sum(1)
        return mean_z, var_z

    def _actor(self, obs, z, generator=None, deterministic=False):
        """Action, its log-probability (continuous) or (probs, log-probs) (discrete), at obs (..., obs_dim)."""
        out = mlp.forward(self.parts["actor"], torch.cat([obs, z], -1), self.activation)
        if self.nets.discrete:
            logp = torch.log_softmax(out, -1)
            if deterministic:
                return logp.argmax(-1), logp
            flat = logp.exp().reshape(-1, logp.shape[-1])
            a = torch.multinomial(flat, 1, generator=generator).view(logp.shape[:-1])
            return a, logp
        mean, log_std = out.chunk(2, -1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        if deterministic:
            return torch.tanh(mean) * self.action_scale, None
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + log_std.exp() * noise
        a = torch.tanh(u)
        logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))).sum(-1)  # log |d tanh(u)/du|
        return a * self.action_scale, logp

    def _q(self, params, obs, act, z):
        if self.nets.discrete:
            return mlp.forward(params, torch.cat([obs, z], -1), self.activation)  # (..., A)
        return mlp.forward(params, torch.cat([obs, act / self.action_scale, z], -1), self.activation)[..., 0]

    # -- data collection -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _episodes(self, task_params, z, generator, deterministic=False):
        """One episode per row of task_params with task variables z (K, L): a dict of (K, H, ...) tensors."""
        env = self.family.make_env(task_params, workers=self.sampler_workers)
        k, h = task_params.shape[0], self.family.horizon
        obs = env.reset(1, generator)[:, 0]
        alive = torch.ones(k, device=self.device)
        rec = {key: [] for key in ("obs", "act", "rew", "next_obs", "done", "valid")}
        for _ in range(h):
            a, _ = self._actor(obs, z, generator, deterministic)
            if not self.nets.discrete and not torch.isfinite(a).all():
                from workbench.core.errors import TrainingDiverged
                raise TrainingDiverged("the policy produced NaN or infinite actions")
            nobs, r, done = env.step(a.unsqueeze(1))
            nobs, r, done = nobs[:, 0], r[:, 0], done[:, 0].float()
            for key, v in (("obs", obs), ("act", a), ("rew", r), ("next_obs", nobs), ("done", done), ("valid", alive)):
                rec[key].append(v)
            alive = alive * (1 - done)
            obs = nobs
        return {key: torch.stack(v, 1) for key, v in rec.items()}

    def _sample_posterior(self, tasks, generator):
        n = self.ctx.shape[1]
        mask = (torch.arange(n, device=self.device).unsqueeze(0) < self.ctx_size[tasks].unsqueeze(1)).float()
        mean, var = self.posterior(self.ctx[tasks], mask)
        return mean + var.sqrt() * torch.randn(mean.shape, generator=generator, device=self.device)

    def _prior_z(self, k, generator):
        return torch.randn(k, self.nets.latent, generator=generator, device=self.device)

    def _collect(self, tasks, generator):
        """PEARL's data collection for pool tasks ``tasks``: new context with z ~ prior, then posterior episodes."""
        c = self.cfg
        params = self.pool[tasks]
        returns_prior, returns_post = [], []
        fresh = True
        for _ in range(c.prior_episodes):
            tr = self._episodes(params, self._prior_z(len(tasks), generator), generator)
            self._add_context_appending(tasks, tr, fresh)
            fresh = False
            returns_prior.append((tr["rew"] * tr["valid"]).sum(1))
        for _ in range(c.posterior_episodes):
            tr = self._episodes(params, self._sample_posterior(tasks, generator), generator)
            self._add(tasks, tr)
            returns_post.append((tr["rew"] * tr["valid"]).sum(1))
        mean = lambda rs: float(torch.stack(rs).mean()) if rs else float("nan")  # noqa: E731
        return mean(returns_prior), mean(returns_post)

    def _add_context_appending(self, tasks, tr, fresh):
        """Add to the replay buffer and append to the context buffer (restarted when ``fresh``)."""
        start = torch.zeros_like(self.ctx_size[tasks]) if fresh else self.ctx_size[tasks].clone()
        self._add(tasks, tr)
        valid = tr["valid"] > 0
        k_idx, m_idx = valid.nonzero(as_tuple=True)
        rank = (valid.long().cumsum(1) - 1)[k_idx, m_idx] + start[k_idx]
        keep = rank < self.ctx.shape[1]
        self.ctx[tasks[k_idx[keep]], rank[keep]] = self._context_rows(tr, k_idx[keep], m_idx[keep])
        self.ctx_size[tasks] = (start + valid.sum(1)).clamp(max=self.ctx.shape[1])

    # -- training --------------------------------------------------------------------------------------------
    def _initial_data(self):
        all_tasks = torch.arange(self.cfg.train_tasks, device=self.device)
        for e in range(self.cfg.initial_episodes):
            tr = self._episodes(self.pool, self._prior_z(len(all_tasks), self.sample_gen), self.sample_gen)
            self._add_context_appending(all_tasks, tr, fresh=e == 0)
        self._buffers_ready = True

    def _sample(self, tasks, n, generator):
        """n transitions per task, uniformly from each task's replay buffer: dict of (T, n, ...)."""
        size = self.size[tasks].clamp(min=1).unsqueeze(1)
        idx = (torch.rand(len(tasks), n, generator=generator, device=self.device) * size).long()
        t = tasks.unsqueeze(1).expand_as(idx)
        return {key: v[t, idx] for key, v in self.buf.items()}

    def _sample_context(self, tasks, n, generator):
        size = self.ctx_size[tasks].clamp(min=1).unsqueeze(1)
        idx = (torch.rand(len(tasks), n, generator=generator, device=self.device) * size).long()
        return self.ctx[tasks.unsqueeze(1).expand_as(idx), idx]

    def meta_step(self, batch, iteration):
        c = self.cfg
        if not self._buffers_ready:
            self._initial_data()
        collect = torch.randperm(c.train_tasks, generator=self.sample_gen)[: c.collect_tasks].to(self.device)
        before, after = self._collect(collect, self.sample_gen)
        stats = {"critic": 0.0, "actor": 0.0, "kl": 0.0}
        for _ in range(c.grad_steps):
            tasks = torch.randint(c.train_tasks, (min(c.meta_batch, c.train_tasks),), generator=self.sample_gen)
            tasks = tasks.to(self.device)
            out = self._gradient_step(tasks)
            for k in stats:
                stats[k] += out[k] / c.grad_steps
        return {"return": after if c.posterior_episodes else before, "return_before": before,
                "alpha": float(self.log_alpha.detach().exp()), **stats}

    def _gradient_step(self, tasks):
        c, d = self.cfg, self.nets
        gen = self.sample_gen
        context = self._sample_context(tasks, c.context_size, gen)
        tr = self._sample(tasks, c.batch_size, gen)
        mean, var = self.posterior(context)
        z_task = mean + var.sqrt() * torch.randn(mean.shape, generator=gen, device=self.device)
        z = z_task.unsqueeze(1).expand(-1, c.batch_size, -1)
        zc = z.detach()
        alpha = self.log_alpha.exp().detach()
        obs, act, rew, nobs, done = tr["obs"], tr["act"], tr["rew"], tr["next_obs"], tr["done"]
        q1p, q2p = self.extras["target_q1"], self.extras["target_q2"]
        with torch.no_grad():
            if d.discrete:
                _, nlogp = self._actor(nobs, zc, gen)
                np_ = nlogp.exp()
                qn = torch.min(self._q(q1p, nobs, None, zc), self._q(q2p, nobs, None, zc))
                v_next = (np_ * (qn - alpha * nlogp)).sum(-1)
            else:
                na, nlogp = self._actor(nobs, zc, gen)
                v_next = torch.min(self._q(q1p, nobs, na, zc), self._q(q2p, nobs, na, zc)) - alpha * nlogp
            target = c.reward_scale * rew + c.gamma * (1 - done) * v_next
        if d.discrete:
            a_idx = act.long().unsqueeze(-1)
            q1 = self._q(self.parts["q1"], obs, None, z).gather(-1, a_idx)[..., 0]
            q2 = self._q(self.parts["q2"], obs, None, z).gather(-1, a_idx)[..., 0]
        else:
            q1, q2 = self._q(self.parts["q1"], obs, act, z), self._q(self.parts["q2"], obs, act, z)
        critic = (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()
        kl = 0.5 * (var + mean.pow(2) - 1 - var.log()).sum(-1).mean()
        enc_q = self.parts["encoder"] + self.parts["q1"] + self.parts["q2"]
        g_enc_q = torch.autograd.grad(critic + c.kl_weight * kl, enc_q)

        # actor and temperature: z is a constant, the critics are not trained by this loss
        if d.discrete:
            _, logp = self._actor(obs, zc, gen)
            p = logp.exp()
            qmin = torch.min(self._q(self.parts["q1"], obs, None, zc), self._q(self.parts["q2"], obs, None, zc))
            actor = (p * (alpha * logp - qmin.detach())).sum(-1).mean()
            entropy = -(p * logp).sum(-1).mean().detach()
        else:
            a, logp = self._actor(obs, zc, gen)
            qmin = torch.min(self._q(self.parts["q1"], obs, a, zc), self._q(self.parts["q2"], obs, a, zc))
            actor = (alpha * logp - qmin).mean()
            entropy = -logp.mean().detach()
        g_actor = torch.autograd.grad(actor, self.parts["actor"])
        alpha_loss = self.log_alpha * (entropy - self.target_entropy)
        g_alpha = torch.autograd.grad(alpha_loss.sum(), [self.log_alpha])
        grads = list(g_enc_q) + list(g_actor) + list(g_alpha)
        self.apply_gradient(critic + actor, grads, self.optimizer)
        with torch.no_grad():
            for tgt, src in (("target_q1", "q1"), ("target_q2", "q2")):
                torch._foreach_lerp_(self.extras[tgt], [p.detach() for p in self.parts[src]], c.tau)
        return {"critic": float(critic.detach()), "actor": float(actor.detach()), "kl": float(kl.detach())}

    # -- adaptation on new tasks -----------------------------------------------------------------------------
    @torch.no_grad()
    def adaptation_curve(self, task_params, episodes: int, trials: int, generator, cancel=None):
        """Returns (B, episodes) and the per-episode records: episode 0 with z ~ prior, episode e with
        z ~ q(z | the transitions of episodes 0..e-1 of the same trial).  ``cancel`` (a threading.Event) is
        checked before each episode (:class:`Cancelled`)."""
        b = task_params.shape[0]
        params = task_params.repeat_interleave(trials, 0)
        k = params.shape[0]
        ctx_rows = torch.zeros(k, 0, self.ctx.shape[-1], device=self.device)
        ctx_mask = torch.zeros(k, 0, device=self.device)
        returns, records = [], []
        for e in range(episodes):
            Cancelled.raise_if_set(cancel)
            if e == 0:
                z = self._prior_z(k, generator)
            else:
                mean, var = self.posterior(ctx_rows, ctx_mask)
                z = mean + var.sqrt() * torch.randn(mean.shape, generator=generator, device=self.device)
            tr = self._episodes(params, z, generator, deterministic=True)
            returns.append((tr["rew"] * tr["valid"]).sum(1).view(b, trials).mean(1))
            records.append(tr)
            rows = torch.cat([tr["obs"], self._encode_action(tr["act"]), tr["rew"].unsqueeze(-1)], -1)
            ctx_rows, ctx_mask = torch.cat([ctx_rows, rows], 1), torch.cat([ctx_mask, tr["valid"]], 1)
        return torch.stack(returns, 1), records

    def evaluate(self, family, batch, steps, render_tasks, cancel=None):
        gen = seeding.generator("eval-rollouts", 0)
        trials = self.cfg.eval_trials
        curve, records = self.adaptation_curve(batch.params, steps + 1, trials, gen, cancel)
        outcome = EvalOutcome("return", curve.double().cpu().numpy(), list(range(steps + 1)), steps,
                              step_label=self.step_label)
        r = min(render_tasks, len(batch))
        if r > 0:
            def episodes_of(tr):
                pick = lambda t: t.view(len(batch), trials, *t.shape[1:])[:r]  # noqa: E731
                return Episodes(pick(tr["obs"]), pick(tr["act"]), pick(tr["rew"]), pick(tr["valid"]))

            Cancelled.raise_if_set(cancel)
            outcome.payload = family.render(batch.params[:r], [episodes_of(tr) for tr in records], outcome.steps,
                                           cancel)
            outcome.payload.step_names = ["no context (prior)"] + [
                f"after {e} episode{'s' if e > 1 else ''} of context" for e in outcome.steps[1:]]
        outcome.references = {k: float(v.mean()) for k, v in family.references(batch.params, 0).items()}
        return outcome

    # -- checkpoints: networks, targets, optimiser, and the replay data (for an exact resume) ---------------
    def state_tensors(self):
        out = super().state_tensors()
        out["sample_generator"] = self.sample_gen.get_state()
        out["pool"] = self.pool
        out.update({f"buffer.{k}": v for k, v in self.buf.items()})
        out.update({"buffer.size": self.size, "buffer.ptr": self.ptr, "context": self.ctx,
                    "context.size": self.ctx_size, "buffers_ready": torch.tensor(int(self._buffers_ready))})
        return out

    def load_state_tensors(self, tensors):
        super().load_state_tensors(tensors)
        self.sample_gen.set_state(tensors["sample_generator"])
        self.pool.copy_(tensors["pool"])
        for k in self.buf:
            self.buf[k].copy_(tensors[f"buffer.{k}"])
        self.size.copy_(tensors["buffer.size"])
        self.ptr.copy_(tensors["buffer.ptr"])
        self.ctx.copy_(tensors["context"])
        self.ctx_size.copy_(tensors["context.size"])
        self._buffers_ready = bool(int(tensors["buffers_ready"]))

    def default_eval_steps(self):
        return [0, 1, 2]

    def adaptation_rule(self):
        raise WorkbenchError("PEARL adapts by inferring its task variable from context, not with gradient steps")
