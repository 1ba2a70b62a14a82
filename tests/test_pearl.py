"""PEARL: the context posterior is a product of Gaussian factors that narrows as context grows; the replay
buffers keep what was collected; a short run on 2D navigation learns to use its context."""
import numpy as np
import pytest
import torch

import workbench
from conftest import PRESETS
from workbench.core import events as ev
from workbench.core.config import ExperimentConfig
from workbench.core.registry import ALGORITHMS, FAMILIES
from workbench.services.trainer import Trainer
from workbench.models.mlp import MLPSpec
from workbench.tasks.navigation import NavigationConfig


def tiny_pearl(**cfg):
    fam = FAMILIES.get("navigation")(NavigationConfig(horizon=8))
    algo = ALGORITHMS.get("pearl")
    config = algo.Config(train_tasks=6, meta_batch=3, collect_tasks=2, grad_steps=2, batch_size=16,
                         context_size=8, buffer_size=40, **cfg)
    return algo(config, MLPSpec(2, 2, (16,), "relu"), torch.device("cpu"), torch.Generator().manual_seed(0), 10,
                family=fam)


def test_posterior_is_the_product_of_the_factors_and_narrows_as_context_grows():
    learner = tiny_pearl()
    gen = torch.Generator().manual_seed(1)
    context = torch.randn(3, 40, learner.ctx.shape[-1], generator=gen)
    out = torch.nn.functional.softplus  # the factor variances as the encoder gives them
    from workbench.models import mlp

    raw = mlp.forward(learner.parts["encoder"], context, learner.activation)
    mu, var = raw[..., :5], out(raw[..., 5:]).clamp(min=1e-7)
    with torch.no_grad():
        mean2, var2 = learner.posterior(context[:, :2])
        expect_var = 1 / (1 / var[:, 0] + 1 / var[:, 1])
        torch.testing.assert_close(var2, expect_var)
        torch.testing.assert_close(mean2, expect_var * (mu[:, 0] / var[:, 0] + mu[:, 1] / var[:, 1]))
        variances = [learner.posterior(context[:, :n])[1] for n in (1, 2, 5, 10, 20, 40)]
    for a, b in zip(variances, variances[1:]):
        assert (b < a).all()  # every added transition sharpens every dimension of q(z|c)
    assert float(variances[-1].mean()) < 0.2 * float(variances[0].mean())
    # no context at all (masked out): the prior N(0, I)
    mean0, var0 = learner.posterior(context[:, :4], torch.zeros(3, 4))
    torch.testing.assert_close(mean0, torch.zeros_like(mean0))
    torch.testing.assert_close(var0, torch.ones_like(var0))


def test_replay_buffers_keep_valid_transitions_per_task_and_wrap_around():
    learner = tiny_pearl()
    tasks = torch.tensor([1, 4])
    tr = {"obs": torch.arange(2 * 30 * 2, dtype=torch.float32).view(2, 30, 2),
          "act": torch.zeros(2, 30, 2), "rew": torch.arange(60, dtype=torch.float32).view(2, 30),
          "next_obs": torch.zeros(2, 30, 2), "done": torch.zeros(2, 30), "valid": torch.ones(2, 30)}
    tr["valid"][1, 20:] = 0  # task 4's episode ended after 20 steps
    learner._add(tasks, tr)
    assert learner.size.tolist() == [0, 30, 0, 0, 20, 0]
    assert torch.equal(learner.buf["rew"][1, :30], tr["rew"][0]) and torch.equal(learner.buf["rew"][4, :20],
                                                                                 tr["rew"][1, :20])
    learner._add(tasks, tr)  # capacity 40: task 1 wraps around, oldest replaced first
    assert learner.size.tolist() == [0, 40, 0, 0, 40, 0] and learner.ptr.tolist() == [0, 20, 0, 0, 0, 0]
    assert torch.equal(learner.buf["rew"][1, :20], tr["rew"][0, 10:30])
    batch = learner._sample(tasks, 500, torch.Generator().manual_seed(0))
    assert batch["rew"].shape == (2, 500) and set(batch["rew"][1].tolist()) <= set(range(30, 50))


def pearl_nav_config(iterations, *extra):
    return ExperimentConfig.load(PRESETS / "pearl-navigation.toml", [
        f"run.iterations={iterations}", f"run.eval_interval={iterations}", "run.eval_tasks=20", "run.threads=1",
        "run.render_tasks=2", "run.eval_steps=2", "algorithm.train_tasks=10",
        "algorithm.buffer_size=2000", *extra])


def test_short_pearl_run_on_navigation_learns_to_use_its_context(tmp_path):
    seen = []
    # 80 iterations at lr 1e-3 (measured, seed 0: +0.98 over the untrained policy with context, and context
    # beats the prior by 2.3; 150 iterations at the preset's 3e-4 took twice as long for no firmer margin)
    trainer = Trainer(pearl_nav_config(80, "algorithm.lr=0.001"), tmp_path / "pearl", [seen.append])
    assert trainer.run().status == "finished"
    evals = [e for e in seen if isinstance(e, ev.Evaluation)]
    first, last = evals[0], evals[-1]
    assert last.steps == [0, 1, 2] and first.metric == "return"
    assert last.mean[2] > first.mean[2] + 0.3, (first.mean, last.mean)  # it learned
    assert last.mean[2] > last.mean[0] + 1.0, last.mean  # and context (posterior) beats the prior
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    assert render.view == "trajectories-2d" and render.paths.shape[:2] == (2, 3)
    model = workbench.load_model(tmp_path / "pearl")
    res = model.evaluate(tasks=10, seed=0)
    assert res["steps"] == [0, 1, 2] and np.isfinite(res["mean"]).all()


def test_pearl_resume_equals_uninterrupted(tmp_path):
    cfg = lambda: pearl_nav_config(6)  # noqa: E731
    full = Trainer(cfg(), tmp_path / "full")
    full.run()

    def stop_at_3(event):
        if isinstance(event, ev.IterationMetrics) and event.iteration == 3:
            part.stop()

    part = Trainer(cfg(), tmp_path / "part", [stop_at_3])
    assert part.run().status == "stopped"
    resumed = Trainer.from_run_dir(tmp_path / "part")
    assert resumed.run().status == "finished"
    for a, b in zip(full.learner.meta_parameters(), resumed.learner.meta_parameters()):
        assert torch.equal(a, b)


def test_pearl_bundle_is_not_exported_to_onnx_with_a_clear_message(tmp_path):
    result = Trainer(pearl_nav_config(1), tmp_path / "p").run()
    model = workbench.load_model(result.bundle_path)
    with pytest.raises(workbench.BundleError if hasattr(workbench, "BundleError") else Exception, match="ONNX"):
        model.to_onnx(tmp_path / "p.onnx")


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])
def test_pearl_runs_on_discrete_and_continuous_physics_families(family, tmp_path):
    """Discrete actions use the categorical form of SAC; Pendulum's torque bound scales the squashed policy."""
    text = (PRESETS / "pearl-navigation.toml").read_text().replace('family = "navigation"', f'family = "{family}"')
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(("goal_", "max_action")))
    preset = tmp_path / "p.toml"
    preset.write_text(text)
    cfg = ExperimentConfig.load(preset, ["run.iterations=2", "run.eval_interval=2", "run.eval_tasks=3",
                                         "run.threads=1", "run.render_tasks=1", "task.horizon=30",
                                         "algorithm.train_tasks=4", "algorithm.grad_steps=3"])
    seen = []
    result = Trainer(cfg, tmp_path / "run", [seen.append]).run()
    assert result.status == "finished"
    assert all(np.isfinite(e.mean).all() for e in seen if isinstance(e, ev.Evaluation))
    render = [e for e in seen if isinstance(e, ev.Render)][-1].payload
    assert render.view == "frames" and render.frames.shape[0] == 2
