"""The MAML paper's test protocol (issue 15): normalised navigation actions, the per-step inner learning-rate
schedule, the evaluation's own trajectory count, the schedule's validation, and the done condition."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from workbench.algorithms.maml_trpo import MAMLTRPO, MAMLTRPOConfig
from workbench.cli import main as cli_main
from workbench.core.config import ExperimentConfig, lr_at
from workbench.core.errors import ConfigError
from workbench.models.mlp import MLPSpec
from workbench.rl.rollout import Episodes, collect
from workbench.tasks.navigation import Navigation, Navigation2DEnv, NavigationBatch, NavigationConfig

PRESETS = Path(__file__).resolve().parents[1] / "presets"
PAPER_PRESETS = ["maml-trpo-navigation-paper", "pretrained-navigation-paper", "maml-trpo-cheetah-vel-paper",
                 "pretrained-cheetah-vel-paper", "maml-trpo-cheetah-dir-paper", "pretrained-cheetah-dir-paper"]


def _nav_batch(goals, normalized=True):
    cfg = NavigationConfig(max_action=0.1, normalized_actions=normalized)
    env = NavigationBatch(torch.tensor(goals, dtype=torch.float32), cfg)
    env.reset(1, torch.Generator().manual_seed(0))
    return env


# -- action normalisation ----------------------------------------------------------------------------------
def test_normalised_actions_are_scaled_by_max_action_and_clipped():
    env = _nav_batch([[0.4, 0.4]])
    obs, _, _ = env.step(torch.tensor([[[0.5, -0.3]]]))
    assert torch.allclose(obs, torch.tensor([[[0.05, -0.03]]]), atol=1e-7)
    obs, _, _ = env.step(torch.tensor([[[3.0, -2.0]]]))  # out of [-1, 1]: clipped to ±1, a move of ±0.1
    assert torch.allclose(obs, torch.tensor([[[0.15, -0.13]]]), atol=1e-7)


def test_raw_actions_stay_the_default():
    assert NavigationConfig().normalized_actions is False
    env = _nav_batch([[0.4, 0.4]], normalized=False)
    obs, _, _ = env.step(torch.tensor([[[0.5, -0.03]]]))  # moves in raw units, clipped to ±0.1
    assert torch.allclose(obs, torch.tensor([[[0.1, -0.03]]]), atol=1e-7)
    assert Navigation(NavigationConfig()).action_scale == pytest.approx(0.1)
    assert Navigation(NavigationConfig(normalized_actions=True)).action_scale == 1.0


def test_gymnasium_face_normalises_the_same_way():
    env = Navigation2DEnv(goal=(0.3, 0.3), normalized_actions=True)
    env.reset(seed=0)
    assert env.action_space.high.tolist() == [1.0, 1.0]
    obs, *_ = env.step([0.5, 4.0])
    assert obs.tolist() == pytest.approx([0.05, 0.1], abs=1e-7)


# -- the done condition of the paper's navigation ----------------------------------------------------------
def test_done_when_both_coordinates_are_within_a_hundredth():
    env = _nav_batch([[0.05, 0.02], [0.05, 0.02]])
    _, reward, done = env.step(torch.tensor([[[0.5, 0.2]], [[0.3, 0.2]]]))  # (0.05, 0.02) reached; (0.03, 0.02) not
    assert done.tolist() == [[True], [False]]
    assert reward[1, 0].item() == pytest.approx(-0.02, abs=1e-6)


class _ConstantPolicy:
    discrete = False

    def __init__(self, action):
        self.action = torch.tensor(action)

    def sample(self, params, obs, generator):
        return self.action.expand(*obs.shape[:-1], 2)


def test_an_episode_stops_counting_rewards_once_done():
    cfg = NavigationConfig(max_action=0.1, normalized_actions=True, horizon=10)
    env = Navigation(cfg).make_env(torch.tensor([[0.3, 0.3]]))
    ep = collect(env, _ConstantPolicy([1.0, 1.0]), None, 2, torch.Generator().manual_seed(0))
    assert ep.mask[0, 0].tolist() == [1, 1, 1] + [0] * 7  # at (0.3, 0.3) after 3 moves of 0.1: done
    expected = -(0.2 * math.sqrt(2) + 0.1 * math.sqrt(2))  # distances after moves 1, 2 (3: ~0)
    assert ep.returns[0].tolist() == pytest.approx([expected, expected], abs=1e-5)


def test_a_cancelled_collection_stops_within_ten_env_steps():
    """Quitting during File → Open model… on thousands of RL tasks waited for whole adaptation steps."""
    from workbench.core.errors import Cancelled

    class SetAtSecondLook:
        looks = 0

        def is_set(self):
            self.looks += 1
            return self.looks >= 2

    cfg = NavigationConfig(max_action=0.1, normalized_actions=True, horizon=100)
    env = Navigation(cfg).make_env(torch.tensor([[0.4, 0.4]]))
    cancel = SetAtSecondLook()
    with pytest.raises(Cancelled):
        collect(env, _ConstantPolicy([0.0, 0.0]), None, 1, torch.Generator().manual_seed(0), cancel=cancel)
    assert cancel.looks == 2  # looked at step 0 and step 10, not after all 100


# -- the per-step learning-rate schedule -------------------------------------------------------------------
def _toy_learner(**cfg):
    family = Navigation(NavigationConfig(normalized_actions=True, horizon=5))
    config = MAMLTRPOConfig(**cfg)
    learner = MAMLTRPO(config, MLPSpec(2, 2, (3,), "relu"), torch.device("cpu"), torch.Generator().manual_seed(0),
                       10, family=family)
    return learner, family


def test_schedule_gives_each_inner_step_its_rate_exactly():
    learner, _ = _toy_learner(inner_lr=[0.5, 0.25])
    with torch.no_grad():  # a policy whose mean is its output bias: only that bias and log σ get gradients
        for p in learner.params:
            p.zero_()
    # one task, one trajectory, one step at the origin: action (1, 0), advantage 1
    ep = Episodes(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 0.0]]]]), torch.zeros(1, 1, 1), torch.ones(1, 1, 1))
    adv = torch.ones(1, 1, 1)
    fast = learner.expand([p.detach() for p in learner.params], 1)
    fast = learner.inner_update(fast, ep, adv, False, values_only=True, step=0)
    fast = learner.inner_update(fast, ep, adv, False, values_only=True, step=1)
    # by hand, L = -log N(a; b, σ²): ∂L/∂b = -(a - b)/σ², ∂L/∂log σ = -((a - b)²/σ² - 1)
    # step 0 (α 0.5) from b = 0, log σ = 0: b = (0.5, 0), log σ = (0, -0.5)
    # step 1 (α 0.25): σ² = (1, e^-1): b = (0.5 + 0.25 · 0.5, 0), log σ = (-0.25 · 0.75, -0.5 - 0.25)
    assert fast[-2][0].tolist() == pytest.approx([0.625, 0.0], abs=1e-6)  # output bias
    assert fast[-1][0].tolist() == pytest.approx([-0.1875, -0.75], abs=1e-6)  # log σ
    assert all(float(t.abs().max()) == 0.0 for t in fast[:-2])  # nothing else moved


def test_schedule_last_entry_repeats_and_a_float_stays_a_float():
    assert [lr_at([0.5, 0.25], k) for k in range(4)] == [0.5, 0.25, 0.25, 0.25]
    assert [lr_at(0.1, k) for k in range(3)] == [0.1, 0.1, 0.1]


# -- the evaluation's own trajectory count ----------------------------------------------------------------
def test_evaluation_uses_eval_trajectories_and_training_uses_trajectories():
    learner, family = _toy_learner(meta_batch=2, trajectories=3, eval_trajectories=7, fisher_subsample=1)
    counts = []
    make_env = family.make_env

    def counting_env(params, **kwargs):
        env = make_env(params, **kwargs)
        reset = env.reset
        env.reset = lambda n, g: (counts.append(n), reset(n, g))[1]
        return env

    family.make_env = counting_env
    learner.meta_step(family.sample_batch(2, torch.Generator().manual_seed(1)), 0)
    assert counts == [3, 3]  # the inner step's trajectories and the outer update's
    counts.clear()
    learner.evaluate(family, family.evaluation_batch(2, 0), 2, 0)
    assert counts == [7, 7, 7]  # steps 0, 1, 2
    counts.clear()
    learner.cfg = dataclasses.replace(learner.cfg, eval_trajectories=0)  # 0: as training
    learner.evaluate(family, family.evaluation_batch(2, 0), 1, 0)
    assert counts == [3, 3]


# -- presets: the paper's protocol, and bad schedules refused ----------------------------------------------
@pytest.mark.parametrize("names", [PAPER_PRESETS[:2], PAPER_PRESETS[2:]], ids=["navigation", "cheetah"])
def test_paper_presets_follow_the_protocol(names):
    if "cheetah" in names[0]:
        from workbench.core.registry import FAMILIES

        ok, why = FAMILIES.get("cheetah-vel").available()
        if not ok:
            pytest.skip(f"HalfCheetah is not available here: {why}")
    for name in names:
        c = ExperimentConfig.load(PRESETS / f"{name}.toml")
        assert c.run.eval_tasks >= 40 and c.run.eval_steps >= 3, name
        assert isinstance(c.algorithm.inner_lr, list) and c.algorithm.eval_trajectories > 0, name
        assert c.model.hidden == [100, 100] and c.model.activation == "relu", name
    nav = ExperimentConfig.load(PRESETS / "maml-trpo-navigation-paper.toml")
    assert nav.task.normalized_actions and nav.task.max_action == 0.1 and nav.task.horizon == 100
    assert nav.algorithm.inner_lr == [0.5, 0.25] and nav.algorithm.eval_trajectories == 40
    assert (nav.algorithm.meta_batch, nav.algorithm.trajectories, nav.algorithm.inner_steps) == (20, 20, 1)
    old = ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml")  # the existing preset is unchanged
    assert old.task.normalized_actions is False and old.algorithm.inner_lr == 0.1
    assert old.algorithm.eval_trajectories == 0


@pytest.mark.parametrize("value, says", [("[0.5, -0.25]", "out of range"), ("[]", "a list of 1 to 1000 numbers"),
                                         ('"fast"', "expected a number or a list"),
                                         ('[0.5, "x"]', "expected a number or a list")])
def test_bad_schedule_is_refused_in_one_line_naming_file_and_key(tmp_path, capsys, value, says):
    text = (PRESETS / "maml-trpo-navigation-paper.toml").read_text().replace("inner_lr = [0.5, 0.25]",
                                                                            f"inner_lr = {value}")
    preset = tmp_path / "bad.toml"
    preset.write_text(text)
    assert cli_main(["train", str(preset), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(preset) in err and "[algorithm]" in err and "inner_lr = " in err and says in err
    assert not (tmp_path / "run").exists()


def test_eval_inner_lr_flag_is_parsed_and_checked(tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path / "none.safetensors"), "--inner-lr", "0.5,x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--inner-lr '0.5,x'" in err


def test_a_bundle_records_the_protocol_and_eval_can_override_the_schedule(tmp_path):
    import workbench
    from workbench.services.bundle import write_bundle

    config = ExperimentConfig.load(PRESETS / "maml-trpo-navigation-paper.toml",
                                   ["model.hidden=[3]", "algorithm.eval_trajectories=3", "task.horizon=5"])
    learner = MAMLTRPO(config.algorithm, MLPSpec(2, 2, (3,), "relu"), torch.device("cpu"),
                       torch.Generator().manual_seed(0), 10, family=Navigation(config.task))
    path = write_bundle(tmp_path / "m.safetensors", learner, config, {"iterations": 0})
    model = workbench.load_model(path)
    assert model.learner.cfg.inner_lr == [0.5, 0.25] and model.learner.eval_trajectories == 3
    assert model.family.cfg.normalized_actions
    a = model.evaluate(tasks=2, steps=[0, 1, 2])
    b = model.evaluate(tasks=2, steps=[0, 1, 2], inner_lr=[0.5, 0.25])
    c = model.evaluate(tasks=2, steps=[0, 1, 2], inner_lr=[0.5, 0.01])
    assert a["per_task"] == b["per_task"]  # the recorded schedule is the one used
    assert a["per_task"][0][:2] == c["per_task"][0][:2] and a["per_task"][0][2] != c["per_task"][0][2]
    assert model.learner.cfg.inner_lr == [0.5, 0.25]  # an override leaves the model as it was
    with pytest.raises(ConfigError, match=r"--inner-lr: inner_lr = \[0.5, 0.0\]: out of range"):
        model.evaluate(tasks=2, steps=[0, 1], inner_lr=[0.5, 0.0])


def test_rllab_initialisation_for_the_paper_presets():
    spec = MLPSpec(2, 2, (100, 100), "relu")
    xavier = spec.init(torch.Generator().manual_seed(0), scheme="xavier")
    for w, b, (fan_in, fan_out) in zip(xavier[::2], xavier[1::2], [(2, 100), (100, 100), (100, 2)]):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert float(b.abs().max()) == 0.0
        assert 0.9 * bound < float(w.abs().max()) <= bound
    torch_init = spec.init(torch.Generator().manual_seed(0))  # the default is PyTorch's, as before
    assert float(torch_init[1].abs().max()) > 0.5  # first-layer biases: uniform ±1/sqrt(2)
    learner, _ = _toy_learner(policy_init="xavier")
    assert float(learner.params[1].abs().max()) == 0.0 and float(learner.params[-1].abs().max()) == 0.0


# -- the paper's navigation baseline: multi-task policy gradient with one Adam step per batch --------------
def test_adam_pretrained_baseline_takes_one_adam_step_on_the_policy_gradient_loss():
    from workbench.algorithms.maml_trpo import PretrainedRL, PretrainedRLConfig

    family = Navigation(NavigationConfig(normalized_actions=True, horizon=5))
    learner = PretrainedRL(PretrainedRLConfig(optimizer="adam", lr=1e-3, meta_batch=3, trajectories=4),
                           MLPSpec(2, 2, (8,), "relu"), torch.device("cpu"), torch.Generator().manual_seed(0), 10,
                           family=family)
    batch = family.sample_batch(3, torch.Generator().manual_seed(1))
    before = [p.detach().clone() for p in learner.params]
    gen = learner.sample_gen.get_state()
    # the same trajectories by hand: g = ∇ −Σ_i,t log π(a|s) A / (live steps of every task)
    env = family.make_env(batch.params)
    ep = collect(env, learner.policy, learner.expand(before, 3), 4, torch.Generator().set_state(gen))
    adv = learner.advantages(ep).reshape(3, -1)
    theta = [p.clone().requires_grad_() for p in before]
    mask = ep.mask.reshape(3, -1)
    logp = learner.policy.log_prob(learner.expand(theta, 3), ep.flat_obs(), ep.flat_actions())
    grads = torch.autograd.grad(-(logp * adv * mask).sum() / mask.sum(), theta)
    learner.meta_step(batch, 0)
    for p, p0, g in zip(learner.params, before, grads):
        # Adam's first step: m̂ = g, v̂ = g², so θ moves by −lr · g / (|g| + ε)
        expected = p0 - 1e-3 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=2e-6)
    assert float(sum((p.detach() - p0).abs().sum() for p, p0 in zip(learner.params, before))) > 0
    trpo = PretrainedRL(PretrainedRLConfig(), MLPSpec(2, 2, (8,), "relu"), torch.device("cpu"),
                        torch.Generator().manual_seed(0), 10, family=family)
    assert PretrainedRLConfig().optimizer == "trpo" and not hasattr(trpo.optimizer, "step")  # TRPO stays the default
