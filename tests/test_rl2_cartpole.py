"""RL² on CartPole with randomised physics: dead steps after a fallen pole are transparent to the update
(hidden state frozen, GAE over the live steps only), and a short run improves the held-out return."""
import numpy as np
import torch

from conftest import PRESETS
from workbench.core import events as ev
from workbench.core.config import ExperimentConfig
from workbench.services.trainer import Trainer


def cartpole_rl2(*overrides):
    cfg = ExperimentConfig.load(PRESETS / "rl2-cartpole.toml", ["run.threads=1", "run.render_tasks=0", *overrides])
    return cfg, Trainer(cfg)


def test_replaying_the_live_steps_reproduces_the_rollout():
    _, trainer = cartpole_rl2("algorithm.meta_batch=16")
    learner = trainer.learner
    batch = trainer.family.sample_batch(16, torch.Generator().manual_seed(0))
    xs, _, acts, rewards, logps, values, mask = learner.run_trials(batch.params, 1, torch.Generator().manual_seed(1))
    assert 0 < mask.mean() < 0.5  # the untrained policy drops the pole early: most of each trial is dead
    assert (rewards * (1 - mask)).abs().sum() == 0
    # every episode of the trial starts alive, and once dead stays dead until the next episode
    hor = trainer.family.horizon
    per_ep = mask.view(16, 2, hor)
    assert (per_ep[:, :, 0] == 1).all() and (per_ep[:, :, 1:] <= per_ep[:, :, :-1]).all()
    live, xs_l, acts_l, logps_l, values_l = learner.pack_live(mask, xs, acts, logps, values)
    assert torch.equal(live.sum(1), mask.sum(1)) and live.shape[1] == int(mask.sum(1).max())
    with torch.no_grad():
        out, v = learner.replay(xs_l)
    logp = torch.distributions.Categorical(logits=out).log_prob(acts_l)
    # the hidden state is frozen over dead steps, so the packed live steps give the same policy and values
    torch.testing.assert_close(logp * live, logps_l * live, atol=1e-5, rtol=0)
    torch.testing.assert_close(v * live, values_l * live, atol=1e-5, rtol=0)


def test_gae_does_not_bootstrap_through_dead_steps():
    _, trainer = cartpole_rl2()
    learner = trainer.learner
    g, lam = learner.cfg.gamma, learner.cfg.gae_lambda
    # one trial: episode 1 lives 2 steps of a 4-step slot, episode 2 lives 3 steps; packed: 5 live steps
    rewards = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 9.0, 9.0, 0.3, 0.2, 0.1, 9.0]])  # 9: untrained values on dead steps
    live, r, v = learner.pack_live(mask, rewards, values)
    adv = learner.gae(r, v, live)
    ref, last = [], 0.0
    vals = [0.5, 0.4, 0.3, 0.2, 0.1]
    for t in reversed(range(5)):  # the trial as one episode of its live steps, ending after the last
        nv = vals[t + 1] if t + 1 < 5 else 0.0
        last = 1.0 + g * nv - vals[t] + g * lam * last
        ref.insert(0, last)
    torch.testing.assert_close(adv[0], torch.tensor(ref))


def test_rl2_improves_held_out_cartpole_return_after_a_short_run():
    cfg, trainer = cartpole_rl2("run.iterations=10", "run.eval_interval=10", "run.eval_tasks=20",
                                "algorithm.eval_trials=2", "run.checkpoint_interval=100")
    seen = []
    trainer.subscribe(seen.append)
    assert trainer.run().status == "finished"
    first, last = [e for e in seen if isinstance(e, ev.Evaluation)][0], trainer.last_eval
    assert first.iteration == 0 and last.iteration == 10 and last.steps == [0, 1]
    before, after = first.per_task.mean(1), last.per_task.mean(1)  # mean episode return per held-out task
    assert before.mean() < 40  # untrained, the pole falls within a few dozen steps
    # paired over the same 20 held-out tasks: a large, consistent improvement
    diff = after - before
    assert diff.mean() - 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) > 40, (before.mean(), after.mean())
