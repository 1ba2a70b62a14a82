"""Meta-RL core: the two faces of navigation agree, the meta-gradient is the gradient of the surrogate,
TRPO respects its KL bound, and a short MAML-TRPO run learns to adapt."""
import numpy as np
import pytest
import torch

import workbench
from conftest import PRESETS
from workbench.core import events as ev
from workbench.core.config import ExperimentConfig
from workbench.core.errors import TrainingDiverged
from workbench.core.registry import ALGORITHMS, FAMILIES
from workbench.services.trainer import Trainer
from workbench.models.mlp import MLPSpec
from workbench.rl.rollout import collect
from workbench.tasks.navigation import Navigation2DEnv, NavigationBatch, NavigationConfig


def test_navigation_env_passes_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = Navigation2DEnv(goal=(0.3, -0.2), render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 240, 3) and frame.dtype == np.uint8


def test_batched_and_gymnasium_navigation_agree_step_for_step():
    rng = np.random.default_rng(0)
    goals = rng.uniform(-0.5, 0.5, (3, 2)).astype(np.float32)
    actions = rng.normal(0, 0.15, (100, 3, 2)).astype(np.float32)  # many beyond the ±0.1 clip
    actions[60:, 0] = 0.0
    batched = NavigationBatch(torch.from_numpy(goals), NavigationConfig())
    obs_b = batched.reset(1, torch.Generator())
    for task in range(3):
        env = Navigation2DEnv(goal=goals[task])
        obs, _ = env.reset(seed=1)
        np.testing.assert_array_equal(obs, obs_b[task, 0].numpy())
    envs = [Navigation2DEnv(goal=g) for g in goals]
    for env in envs:
        env.reset(seed=1)
    for t in range(100):
        obs_b, rew_b, done_b = batched.step(torch.from_numpy(actions[t]).unsqueeze(1))
        for task, env in enumerate(envs):
            obs, rew, terminated, truncated, _ = env.step(actions[t, task])
            np.testing.assert_allclose(obs, obs_b[task, 0].numpy(), atol=1e-6)
            assert rew == pytest.approx(float(rew_b[task, 0]), abs=1e-5)
            assert terminated == bool(done_b[task, 0])
            assert truncated == (t == 99)


def tiny_learner(first_order=False, **cfg):
    fam_cls = FAMILIES.get("navigation")
    fam = fam_cls(NavigationConfig(horizon=6))
    algo = ALGORITHMS.get("maml-trpo")
    config = algo.Config(first_order=first_order, meta_batch=2, trajectories=3, inner_lr=0.3, **cfg)
    learner = algo(config, MLPSpec(2, 2, (5,), "tanh"), torch.device("cpu"), torch.Generator().manual_seed(0), 10,
                   family=fam)
    with torch.no_grad():
        for i, p in enumerate(learner.params):
            learner.params[i] = p.to(torch.get_default_dtype()).requires_grad_()
    return learner, fam


def surrogate(learner, fam, first_order):
    """J(θ): the outer surrogate at θ'(θ), on fixed sampled trajectories (a deterministic function of θ)."""
    g = torch.Generator().manual_seed(3)
    tasks = fam.sample_batch(2, g).params
    env = fam.make_env(tasks)
    with torch.no_grad():
        shared = [p.detach() for p in learner.params]
    train = collect(env, learner.policy, learner.expand(shared, 2), 3, g)
    adv = learner.advantages(train)
    sampling = learner.inner_update(learner.expand(shared, 2), train, adv, False, values_only=True)
    valid = collect(env, learner.policy, sampling, 3, g)
    obs, act = valid.flat_obs(), valid.flat_actions()
    adv_v = learner.advantages(valid).reshape(2, -1)
    old = learner.policy.log_prob(sampling, obs, act).detach()

    def J(params):
        fast = learner.inner_update(learner.expand(params, 2), train, adv, create_graph=not first_order)
        return -(torch.exp(learner.policy.log_prob(fast, obs, act) - old) * adv_v).mean()

    return J


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_finite_differences(first_order, float64):
    learner, fam = tiny_learner(first_order)
    J = surrogate(learner, fam, first_order=False)
    params = learner.params
    grads = torch.autograd.grad(surrogate(learner, fam, first_order)(params), params)
    rng = np.random.default_rng(0)
    eps = 1e-6
    max_err, max_fd = 0.0, 0.0
    for i, p in enumerate(params):
        for _ in range(3):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            plus = [q.detach().clone() for q in params]
            minus = [q.detach().clone() for q in params]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            plus = [q.requires_grad_() for q in plus]
            minus = [q.requires_grad_() for q in minus]
            fd = (float(J(plus)) - float(J(minus))) / (2 * eps)
            max_err = max(max_err, abs(fd - float(grads[i][idx])))
            max_fd = max(max_fd, abs(fd))
    if first_order:
        assert max_err > 1e-6  # the first-order estimator drops the second-order term
    else:
        assert max_err < 1e-6 * max(1.0, max_fd), max_err


def test_trpo_step_stays_within_the_kl_bound():
    learner, fam = tiny_learner(max_kl=0.005)
    g = torch.Generator().manual_seed(5)
    accepted = 0
    for it in range(5):
        m = learner.meta_step(fam.sample_batch(2, g), it)
        assert m["kl"] <= 0.005 + 1e-9
        accepted += m["accepted"]
    assert accepted >= 3


def test_line_search_failures_stop_the_run_with_a_clear_message(monkeypatch):
    import workbench.rl.learner as rl_learner
    from workbench.rl.trpo import TRPOResult

    learner, fam = tiny_learner()
    monkeypatch.setattr(rl_learner, "trpo_step", lambda *a, **k: TRPOResult(False, 0.0, 0.0, 0.0))
    before = [p.detach().clone() for p in learner.params]
    g = torch.Generator().manual_seed(1)
    with pytest.raises(TrainingDiverged, match="line search found no step .* 10 iterations in a row"):
        for it in range(20):
            learner.meta_step(fam.sample_batch(2, g), it)
    assert all(torch.equal(a, b) for a, b in zip(before, learner.params))


def test_nan_actions_are_reported():
    learner, fam = tiny_learner()
    with torch.no_grad():
        learner.params[0].fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="NaN or infinite actions"):
        learner.meta_step(fam.sample_batch(2, torch.Generator().manual_seed(0)), 0)


def nav_config(iterations, **run):
    overrides = [f"run.iterations={iterations}", "run.eval_tasks=20", "run.eval_steps=1", "run.threads=1",
                 f"run.eval_interval={iterations}", "algorithm.meta_batch=10", "algorithm.trajectories=20",
                 "run.render_tasks=2"]
    overrides += [f"run.{k}={v}" for k, v in run.items()]
    return ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml", overrides)


def test_short_maml_trpo_run_improves_post_adaptation_return(tmp_path):
    seen = []
    trainer = Trainer(nav_config(20), tmp_path / "run", [seen.append])
    assert trainer.run().status == "finished"
    evals = [e for e in seen if isinstance(e, ev.Evaluation)]
    first, last = evals[0], evals[-1]
    assert first.metric == "return" and first.iteration == 0 and last.iteration == 20
    assert last.after > first.after + 5, (first.after, last.after)  # learning to adapt
    assert last.after > last.before  # adapting helps on held-out goals
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    assert render.view == "trajectories-2d" and render.paths.shape[:3] == (2, 2, 4)
    assert render.paths.shape[3] == 101
    # the bundle reloads and evaluates with the same estimator, metric "return"
    model = workbench.load_model(tmp_path / "run")
    res = model.evaluate(tasks=10, seed=1, steps=[0, 1])
    assert res["metric"] == "return" and res["mean"][1] > res["mean"][0]


def test_bandit_evaluation_reports_thompson_and_ucb_references():
    cfg = ExperimentConfig.load(PRESETS / "maml-trpo-bandits.toml", ["run.iterations=0", "run.eval_tasks=200",
                                                                     "run.threads=1"])
    trainer = Trainer(cfg)
    trainer.run()
    refs = trainer.last_eval.references
    # the known figures for k = 5, n = 10 (mean total reward): Thompson ≈ 5.84, UCB1 ≈ 5.68, best arm ≈ 8.32
    assert 5.3 < refs["Thompson sampling"] < 6.4 and 5.1 < refs["UCB1"] < 6.3 and 7.8 < refs["best arm"] < 8.8
    assert refs["Thompson sampling"] > 5.0  # better than pulling at random (5.0)


def test_rl2_beats_a_random_policy_on_bandits_after_a_short_run(tmp_path):
    cfg = ExperimentConfig.load(PRESETS / "rl2-bandits.toml", [
        "run.iterations=100", "run.eval_interval=100", "run.eval_tasks=200", "run.threads=1", "run.render_tasks=2"])
    seen = []
    trainer = Trainer(cfg, tmp_path / "rl2", [seen.append])
    assert trainer.run().status == "finished"
    first, last = [e for e in seen if isinstance(e, ev.Evaluation)][0], trainer.last_eval
    totals = last.per_task.sum(1)  # 10 one-pull episodes per trial
    assert abs(first.per_task.sum(1).mean() - 5.0) < 0.4  # untrained, the GRU pulls (nearly) at random
    assert totals.mean() - 1.96 * totals.std(ddof=1) / np.sqrt(len(totals)) > 5.2, totals.mean()
    assert last.steps == list(range(10)) and last.mean[-1] > last.mean[0]  # it adapts within the trial
    assert "Thompson sampling" in last.references
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    assert render.view == "bandit-arms" and render.pull_fraction.shape == (2, 10, 5)
    res = workbench.load_model(tmp_path / "rl2").evaluate(tasks=20, seed=0, steps=range(10))
    assert res["metric"] == "return" and len(res["mean"]) == 10


@pytest.mark.parametrize("preset", ["pretrained-navigation", "rl2-tabular", "fomaml-trpo-navigation"])
def test_other_rl_presets_train_and_export(preset, tmp_path):
    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml", [
        "run.iterations=2", "run.eval_interval=2", "run.eval_tasks=4", "run.eval_steps=1", "run.threads=1",
        "algorithm.meta_batch=4"] + (["algorithm.trajectories=4"] if "navigation" in preset else []))
    result = Trainer(cfg, tmp_path / "r").run()
    assert result.status == "finished"
    model = workbench.load_model(result.bundle_path)
    assert np.isfinite(model.evaluate(tasks=3, seed=0, steps=[0, 1])["mean"]).all()


@pytest.mark.parametrize("family", ["navigation", "bandits"])
def test_written_out_policy_gradient_equals_autograd(family, float64):
    from workbench.rl.policies import make_policy

    fam_cls = FAMILIES.get(family)
    fam = fam_cls(fam_cls.Config())
    policy = make_policy(fam, (6, 5), "tanh")
    g = torch.Generator().manual_seed(0)
    params = [p.double() for p in policy.init(g)]
    fast = [p.unsqueeze(0).expand(3, *p.shape).clone().requires_grad_() for p in params]
    obs = torch.randn(3, 8, fam.obs_dim, generator=g)
    actions = policy.sample(fast, obs, g).detach()
    w = torch.randn(3, 8, generator=g)
    ours = policy.loss_grad(fast, obs, actions, w)
    ref = torch.autograd.grad(-(policy.log_prob(fast, obs, actions) * w).sum(), fast)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_fisher_vector_product_of_the_adapted_policy_is_exact(float64):
    """Jᵀ F' J (two inner-loss Hessian products) equals differentiating the KL through the second-order
    inner step three times, at θ0, with every step used (fisher_subsample = 1)."""
    from workbench.rl.trpo import flat

    learner, fam = tiny_learner(fisher_subsample=1)
    g = torch.Generator().manual_seed(3)
    env = fam.make_env(fam.sample_batch(2, g).params)
    shared = [p.detach() for p in learner.params]
    train = collect(env, learner.policy, learner.expand(shared, 2), 3, g)
    adv = learner.advantages(train)
    sampling = learner.inner_update(learner.expand(shared, 2), train, adv, False, values_only=True)
    valid = collect(env, learner.policy, sampling, 3, g)
    obs, mask = valid.flat_obs(), valid.mask.reshape(2, -1)
    product = learner.adapted_fisher_product((train, adv), sampling, obs, mask)
    fast = learner.inner_update(learner.expand(learner.params, 2), train, adv, create_graph=True)
    kl = (learner.policy.kl(sampling, fast, obs) * mask).sum() / mask.sum()
    kl_grad = flat(torch.autograd.grad(kl, learner.params, create_graph=True))
    v = torch.randn(kl_grad.numel(), generator=g)
    exact = flat(torch.autograd.grad(kl_grad @ v, learner.params))
    torch.testing.assert_close(product(v), exact)
