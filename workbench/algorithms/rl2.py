"""RL² (Duan et al. 2016): a recurrent policy whose hidden state is the learning algorithm.

    for each task (all at once): run a trial of E episodes; the GRU is fed (observation, previous action,
        previous reward, done) and its hidden state carries over between the episodes of the trial
    treat the trial as one long episode: advantages by GAE over the whole trial
    update the GRU and its policy / value heads with PPO (clipped ratio, value loss, entropy bonus)

An episode that ends early (CartPole's pole falls) leaves the rest of its slot in the trial dead: the
dead steps are masked out and transparent.  The GRU's hidden state and its (previous action, previous
reward) inputs are frozen over them, and PPO works on each trial's live steps packed together, so GAE
bootstraps from the last live step of episode k into the first step of episode k + 1 (one long episode)
but never through a step the critic was not trained on.  Advantages are normalised and losses averaged
over live steps only; ``reward_scale`` keeps the critic's targets O(1).

There is no gradient step at test time: the adaptation curve is the return of episode 1, 2, ..., E of a
trial on a new task.
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
from workbench.models.mlp import MLPSpec
from workbench.rl.learner import RL_FAMILIES, mlp_policy_spec, skip_unused_init
from workbench.rl.rollout import Episodes


@dataclass
class RL2Config:
    episodes: int = param(2, "E: episodes per trial; the hidden state carries over between them.", low=1, high=100)
    meta_batch: int = param(200, "Tasks per batch (one trial each).", low=1, high=100_000)
    eval_trials: int = param(10, "Trials per held-out task in evaluations.", low=1, high=1000)
    gamma: float = param(0.99, "Discount factor γ over the whole trial.", low=0.0, high=1.0)
    gae_lambda: float = param(0.3, "GAE λ (the RL² paper's bandit setting uses 0.3).", low=0.0, high=1.0)
    lr: float = param(3e-3, "Adam learning rate of the PPO update.", low=0.0, high=1.0, low_inclusive=False)
    epochs: int = param(4, "PPO epochs per batch of trials.", low=1, high=100)
    clip: float = param(0.2, "PPO ratio clip ε.", low=0.0, high=1.0, low_inclusive=False)
    value_coef: float = param(0.5, "Weight of the value loss.", low=0.0, high=100.0)
    entropy_coef: float = param(0.01, "Weight of the entropy bonus.", low=0.0, high=10.0)
    minibatches: int = param(1, "Minibatches of trials per PPO epoch (each a gradient step).", low=1, high=10_000)
    max_grad_norm: float = param(0.0, "Clip each PPO step's gradient to this global norm (0: no clipping).",
                                 low=0.0, high=1e6)
    reward_scale: float = param(1.0, "Rewards are multiplied by this in the PPO update (advantages and value "
                                "targets, not the reported returns), so the critic's targets are of order 1: "
                                "about 1 / (a typical discounted return).", low=0.0, high=1e6, low_inclusive=False)


class GRUPolicy:
    """A functional GRU with a categorical (or Gaussian) policy head and a value head.

    params: [W_x (in, 3h), W_h (h, 3h), b_x (3h), b_h (3h), W_pi (h, out), b_pi (out), W_v (h, 1), b_v (1)]
    (+ log_std (act_dim) for continuous actions).  Input: [obs, previous action, previous reward, done].
    """

    def __init__(self, family, hidden: int):
        self.discrete = family.discrete_actions
        self.obs_dim, self.hidden = family.obs_dim, hidden
        self.act_in = family.n_actions if self.discrete else family.act_dim
        self.out = self.act_in
        self.in_dim = self.obs_dim + self.act_in + 2

    def init(self, generator, device) -> list[torch.Tensor]:
        h, d = self.hidden, self.in_dim

        def u(shape, fan_in):
            b = 1 / math.sqrt(fan_in)
            return (torch.rand(shape, generator=generator) * 2 - 1) * b

        params = [u((d, 3 * h), h), u((h, 3 * h), h), u((3 * h,), h), u((3 * h,), h),
                  u((h, self.out), h) * 0.1, torch.zeros(self.out), u((h, 1), h), torch.zeros(1)]
        if not self.discrete:
            params.append(torch.zeros(self.act_in))
        return [p.to(device) for p in params]

    @staticmethod
    def input_gates(params, x):
        """The input's share of the gates, x W_x + b_x: for one step (M, in) or a whole sequence (M, T, in)."""
        if x.dim() == 2:
            return torch.addmm(params[2], x, params[0])
        return torch.matmul(x, params[0]) + params[2]

    def cell_from_gates(self, params, gx, h):
        """One GRU step from the input's gate share ``gx`` (M, 3h) and the hidden state h (M, h)."""
        gh = torch.addmm(params[3], h, params[1])
        n = self.hidden
        rz = torch.sigmoid(gx[:, :2 * n] + gh[:, :2 * n])
        r, z = rz[:, :n], rz[:, n:]
        c = torch.tanh(gx[:, 2 * n:] + r * gh[:, 2 * n:])
        return c + z * (h - c)  # (1 - z) c + z h

    def cell(self, params, x, h):
        return self.cell_from_gates(params, self.input_gates(params, x), h)

    def heads(self, params, h):
        return torch.addmm(params[5], h, params[4]), torch.addmm(params[7], h, params[6])[:, 0]

    def dist(self, params, out):
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, params[8].exp().expand_as(out))

    def encode_action(self, a):
        return torch.nn.functional.one_hot(a.long(), self.act_in).float() if self.discrete else a


@ALGORITHMS.register
class RL2(Learner):
    name = "rl2"
    title = "RL²"
    Config = RL2Config
    families = RL_FAMILIES
    summary = "A recurrent policy trained with PPO across trials: it adapts in its hidden state."
    train_metric = "return"
    eval_metric = "return"
    step_label = "episode within the trial"
    make_model = classmethod(mlp_policy_spec)  # the GRU's width is the first hidden width

    def __init__(self, cfg, spec: MLPSpec, device, generator, total_iterations, family=None):
        self.policy = GRUPolicy(family, spec.hidden[0])
        super().__init__(cfg, spec, device, generator, total_iterations, family=family)
        self.spec = spec
        skip_unused_init(spec, generator)
        self.params = [p.requires_grad_() for p in self.policy.init(generator, device)]
        self.sample_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        self.optimizer = Adam(self.params, cfg.lr)

    # -- trials ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def run_trials(self, task_params, trials: int, generator, cancel=None):
        """Trials of E episodes on each task: inputs, actions, rewards, log-probs, values, masks; (M, T, ...)
        with M = tasks x trials and T = E x horizon.  The steps after an episode ended are dead (mask 0,
        reward 0): the hidden state and the previous action / reward fed to the GRU stay as they were at the
        episode's last live step until the next episode starts.  ``cancel`` (a threading.Event) is checked
        before each episode (:class:`Cancelled`)."""
        env = self.family.make_env(task_params.repeat_interleave(trials, 0), workers=self.sampler_workers)
        e, hor = self.cfg.episodes, self.family.horizon
        m = task_params.shape[0] * trials
        pol = self.policy
        h = torch.zeros(m, pol.hidden, device=self.device)
        prev_a = torch.zeros(m, pol.act_in, device=self.device)
        prev_r = torch.zeros(m, 1, device=self.device)
        t_all = e * hor
        xs = torch.zeros(m, t_all, pol.in_dim, device=self.device)
        obs_all = torch.zeros(m, t_all, pol.obs_dim, device=self.device)
        acts, rewards = None, torch.zeros(m, t_all, device=self.device)
        logps, values = torch.zeros(m, t_all, device=self.device), torch.zeros(m, t_all, device=self.device)
        mask = torch.zeros(m, t_all, device=self.device)
        t = 0
        for ep in range(e):
            Cancelled.raise_if_set(cancel)
            obs = env.reset(1, generator)[:, 0]
            alive = torch.ones(m, device=self.device)
            live = torch.ones(m, 1, dtype=torch.bool, device=self.device)
            for step in range(hor):
                done_in = torch.full((m, 1), 1.0 if step == 0 and ep > 0 else 0.0, device=self.device)
                x = torch.cat([obs, prev_a, prev_r, done_in], -1)
                h = torch.where(live, pol.cell(self.params, x, h), h)
                out, v = pol.heads(self.params, h)
                if pol.discrete:
                    probs = torch.softmax(out, -1)
                    a = torch.multinomial(probs, 1, generator=generator)[:, 0]
                    logp = torch.log(probs.gather(1, a[:, None])[:, 0].clamp(min=1e-12))
                else:
                    std = self.params[8].exp()
                    a = out + std * torch.randn(out.shape, generator=generator, device=out.device)
                    logp = pol.dist(self.params, out).log_prob(a).sum(-1)
                nobs, r, done = env.step(a.view(-1, 1, *a.shape[1:]) if not pol.discrete else a.view(-1, 1))
                r, done = r[:, 0], done[:, 0]
                if acts is None:
                    acts = torch.zeros(m, t_all, *a.shape[1:], device=self.device, dtype=a.dtype)
                xs[:, t], obs_all[:, t], acts[:, t], rewards[:, t] = x, obs, a, r * alive
                logps[:, t], values[:, t], mask[:, t] = logp, v, alive
                prev_a = torch.where(live, pol.encode_action(a), prev_a)
                prev_r = torch.where(live, r[:, None].to(prev_r.dtype), prev_r)
                alive = alive * (1 - done.float())
                live = alive[:, None] > 0
                obs = nobs[:, 0]
                t += 1
        return xs, obs_all, acts, rewards, logps, values, mask

    def replay(self, xs):
        """Logits / means and values of every step of the (live) input sequences xs (M, T, in), recomputed
        with the current parameters."""
        pol, p = self.policy, self.params
        m, t_len = xs.shape[:2]
        if xs.device.type == "cpu":
            # ATen's GRU is this cell (gates r, z, n; biases b_x, b_h) stepped in C++: ~2x the Python loop
            # over 500 steps, forward and backward
            h0 = torch.zeros(1, m, pol.hidden, device=xs.device, dtype=xs.dtype)
            hs, _ = torch.gru(xs, h0, [p[0].t(), p[1].t(), p[2], p[3]], True, 1, 0.0, True, False, True)
        else:
            hs = self.replay_steps(xs)
        out, v = pol.heads(p, hs.reshape(m * t_len, pol.hidden))
        return out.reshape(m, t_len, -1), v.reshape(m, t_len)

    def replay_steps(self, xs):
        """The hidden states (M, T, h) of the GRU over xs (M, T, in), stepped in Python."""
        pol, p = self.policy, self.params
        gx = pol.input_gates(p, xs)  # for every step at once; only the recurrent part is stepped
        h = torch.zeros(xs.shape[0], pol.hidden, device=xs.device)
        hs = []
        # unbind, not gx[:, t]: the backward of T selects is T full-size zero tensors (quadratic in T: 15x
        # the forward at T = 100), that of one unbind a single stack
        for gx_t in gx.unbind(1):
            h = pol.cell_from_gates(p, gx_t, h)
            hs.append(h)
        return torch.stack(hs, 1)

    @staticmethod
    def pack_live(mask, *tensors):
        """Each trial's live steps moved to the front, in order, and the tensors cut to the longest trial."""
        order = torch.argsort(1 - mask, dim=1, stable=True)
        length = int(mask.sum(1).max())
        order = order[:, :length]

        def take(t):
            idx = order.view(*order.shape, *([1] * (t.dim() - 2))).expand(*order.shape, *t.shape[2:])
            return t.gather(1, idx)

        return [take(t) for t in (mask, *tensors)]

    def gae(self, rewards, values, mask):
        """GAE over packed trials (live steps first): a trial ends at its last live step (bootstrap 0); the
        episode boundaries inside it are not cut (the trial is one long episode)."""
        c = self.cfg
        adv = torch.zeros_like(rewards)
        last = torch.zeros_like(rewards[:, 0])
        next_v, next_m = torch.zeros_like(last), torch.zeros_like(last)
        for t in range(rewards.shape[1] - 1, -1, -1):
            delta = rewards[:, t] + c.gamma * next_v * next_m - values[:, t]
            last = (delta + c.gamma * c.gae_lambda * next_m * last) * mask[:, t]
            adv[:, t] = last
            next_v, next_m = values[:, t], mask[:, t]
        return adv

    # -- training ----------------------------------------------------------------------------------------
    def meta_step(self, batch, iteration):
        c = self.cfg
        xs, _, acts, rewards, old_logp, values, mask = self.run_trials(batch.params, 1, self.sample_gen)
        total = float(rewards.sum(1).mean())
        mask, xs, acts, rewards, old_logp, values = self.pack_live(mask, xs, acts, rewards, old_logp, values)
        with torch.no_grad():
            adv = self.gae(rewards * c.reward_scale, values, mask)
            returns = adv + values
            n_live = mask.sum()
            mean = (adv * mask).sum() / n_live
            std = (((adv - mean) * mask).pow(2).sum() / (n_live - 1).clamp(min=1)).sqrt()
            norm = (adv - mean) / (std + 1e-8) * mask
        m = xs.shape[0]
        k = min(c.minibatches, m)
        stats = []
        for _ in range(c.epochs):
            perm = torch.randperm(m, generator=self.sample_gen).to(self.device) if k > 1 else None
            for idx in (perm.tensor_split(k) if k > 1 else [slice(None)]):
                mb = mask[idx]
                live_len = int(mb.sum(1).max())
                mb = mb[:, :live_len]
                out, v = self.replay(xs[idx][:, :live_len])
                dist = self.policy.dist(self.params, out)
                logp = dist.log_prob(acts[idx][:, :live_len])
                ent = dist.entropy()
                if not self.policy.discrete:
                    logp, ent = logp.sum(-1), ent.sum(-1)
                a = norm[idx][:, :live_len]
                ratio = torch.exp((logp - old_logp[idx][:, :live_len]) * mb)
                surr = torch.min(ratio * a, ratio.clamp(1 - c.clip, 1 + c.clip) * a)
                denom = mb.sum()
                pg_loss = -(surr * mb).sum() / denom
                v_loss = ((v - returns[idx][:, :live_len]).pow(2) * mb).sum() / denom
                entropy = (ent * mb).sum() / denom
                loss = pg_loss + c.value_coef * v_loss - c.entropy_coef * entropy
                self.ppo_step(loss)
                stats.append(torch.stack([loss.detach(), v_loss.detach(), entropy.detach()]))
        loss, v_loss, entropy = torch.stack(stats).mean(0).tolist()
        with torch.no_grad():
            var = ((returns - (returns * mask).sum() / n_live).pow(2) * mask).sum()
            explained = 1 - float(((returns - values).pow(2) * mask).sum() / var.clamp(min=1e-12))
        # "return" per episode, like the adaptation curve; the whole trial's as "trial_return"
        return {"return": self.check_finite(torch.tensor(total / c.episodes)), "trial_return": total,
                "loss": loss, "value_loss": v_loss, "entropy": entropy, "explained_variance": explained}

    def ppo_step(self, loss):
        grads = list(torch.autograd.grad(loss, self.params))
        self.check_finite(loss, grads)
        if self.cfg.max_grad_norm > 0:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            torch._foreach_mul_(grads, (self.cfg.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        self.optimizer.step(grads)

    # -- evaluation --------------------------------------------------------------------------------------
    def episode_returns(self, task_params, trials, generator, cancel=None):
        xs, obs, acts, rewards, _, _, mask = self.run_trials(task_params, trials, generator, cancel)
        b, e, hor = task_params.shape[0], self.cfg.episodes, self.family.horizon
        per_episode = rewards.view(b, trials, e, hor).sum(-1).mean(1)  # (B, E)
        return per_episode, (obs, acts, rewards, mask)

    def evaluate(self, family, batch, steps, render_tasks, cancel=None):
        gen = seeding.generator("eval-rollouts", 0)
        trials = self.cfg.eval_trials
        per_episode, (obs, acts, rewards, mask) = self.episode_returns(batch.params, trials, gen, cancel)
        e, hor = self.cfg.episodes, family.horizon
        outcome = EvalOutcome("return", per_episode.double().cpu().numpy(), list(range(e)), e - 1,
                              step_label=self.step_label)
        r = min(render_tasks, len(batch))
        if r > 0:
            def episodes_of(k):
                sl = slice(k * hor, (k + 1) * hor)
                pick = lambda t: t.view(len(batch), trials, *t.shape[1:])[:r, :, sl]  # noqa: E731
                return Episodes(pick(obs), pick(acts), pick(rewards), pick(mask))

            Cancelled.raise_if_set(cancel)
            outcome.payload = family.render(batch.params[:r], [episodes_of(k) for k in range(e)], outcome.steps,
                                           cancel)
            outcome.payload.step_names = [f"episode {k + 1} of the trial" for k in range(e)]
        refs = family.references(batch.params, 0, pulls=getattr(family.cfg, "pulls", 1) * e)
        outcome.references = {k: float(v.mean()) / e for k, v in refs.items()}  # per episode, like the curve
        return outcome

    def state_tensors(self):
        out = super().state_tensors()
        out["sample_generator"] = self.sample_gen.get_state()
        return out

    def load_state_tensors(self, tensors):
        super().load_state_tensors(tensors)
        self.sample_gen.set_state(tensors["sample_generator"])

    def default_eval_steps(self):
        return list(range(self.cfg.episodes))

    def adaptation_rule(self):
        raise WorkbenchError("RL² adapts in its hidden state, not with gradient steps")
