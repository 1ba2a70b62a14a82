"""The Bernoulli-bandit references: the exact Bayes-optimal programme against brute-force enumeration of every
policy, the Gittins indices against Gittins' tables, and the simulated reference policies against each
other and the known figures (k = 5, n = 10)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from workbench.core.registry import FAMILIES
from workbench.tasks import bandit_references as br


def _sequence_probability(history, k) -> Fraction:
    """P(the rewards of ``history``) under i.i.d. U[0, 1] arm means: per arm, the integral of
    p^s (1 - p)^f dp = s! f! / (s + f + 1)!, whatever the order of the pulls."""
    prob = Fraction(1)
    for arm in range(k):
        s = sum(1 for a, r in history if a == arm and r == 1)
        f = sum(1 for a, r in history if a == arm and r == 0)
        prob *= Fraction(math.factorial(s) * math.factorial(f), math.factorial(s + f + 1))
    return prob


def _all_policy_values(k, n, history=()):
    """The exact expected total reward of every deterministic policy (a decision tree over the history of
    (arm, reward)), by enumerating its reward sequences: a list with one entry per policy."""
    if len(history) == n:
        return [_sequence_probability(history, k) * sum(r for _, r in history)]
    values = []
    for arm in range(k):
        lose = _all_policy_values(k, n, history + ((arm, 0),))
        win = _all_policy_values(k, n, history + ((arm, 1),))
        values += [a + b for a in lose for b in win]
    return values


@pytest.mark.parametrize("k,n,policies", [(2, 3, 128), (3, 2, 27), (1, 4, 1)])
def test_dp_value_equals_the_best_policy_by_enumeration(k, n, policies):
    values = _all_policy_values(k, n)
    assert len(values) == policies
    assert br.bayes_optimal_value(k, n) == pytest.approx(float(max(values)), abs=1e-12)
    assert max(values) > min(values) or k == 1  # the choice matters: the DP did not just match any policy


def test_dp_hand_values_and_the_known_k5_n10_figure():
    assert br.bayes_optimal_value(1, 7) == pytest.approx(3.5)  # one arm: n / 2
    # k = 2, n = 2: pull one (1/2); stay on a success (2/3), switch after a failure (1/2)
    assert br.bayes_optimal_value(2, 2) == pytest.approx(0.5 + 0.5 * 2 / 3 + 0.5 * 0.5)
    assert br.bayes_optimal_value(5, 10) == pytest.approx(6.66, abs=0.005)
    assert br.bayes_optimal_tractable(5, 10) and not br.bayes_optimal_tractable(10, 100)
    with pytest.raises(ValueError, match="intractable"):
        br.bayes_optimal_value(10, 100)


def test_the_dp_policy_table_plays_the_dp_value():
    k, n, tasks = 3, 5, 20_000
    rng = np.random.default_rng(0)
    means = rng.random((tasks, k))
    played = br.reference_returns(means, n, 1, rng, which=(br.BAYES,))[br.BAYES]
    ci = 1.96 * played.std(ddof=1) / math.sqrt(tasks)
    assert abs(played.mean() - br.bayes_optimal_value(k, n)) < ci


def test_gittins_indices_match_gittins_tables_and_are_monotone():
    g9 = br.gittins_indices(0.9, 30)
    assert g9[0, 0] == pytest.approx(0.7029, abs=2e-4)  # Beta(1, 1), γ = 0.9 (Gittins 1979)
    assert br.gittins_indices(0.99, 20)[0, 0] == pytest.approx(0.8699, abs=2e-4)  # γ = 0.99
    s, f = np.meshgrid(np.arange(31), np.arange(31), indexing="ij")
    ok = s + f <= 30
    assert np.isnan(g9[~ok]).all() and np.isfinite(g9[ok]).all()
    mean = (s + 1) / (s + f + 2)
    assert (g9[ok] > mean[ok]).all()  # the value of information: above the posterior mean
    assert (np.diff(g9, axis=0)[ok[1:] & ok[:-1]] > 0).all()  # more successes: higher
    assert (np.diff(g9, axis=1)[ok[:, 1:] & ok[:, :-1]] < 0).all()  # more failures: lower
    fine = br.gittins_indices(0.9, 30, grid=1601)
    assert np.nanmax(np.abs(g9 - fine)) < 2e-3  # the grid's error, small


def test_simulated_references_rank_as_known_at_k5_n10():
    rng = np.random.default_rng(1)
    means = rng.random((4000, 5))
    refs = br.reference_returns(means, 10, 1, rng, which=(br.RANDOM, br.THOMPSON, br.UCB1, br.BEST_ARM,
                                                          br.GREEDY, br.GITTINS, br.BAYES))
    m = {name: v.mean() for name, v in refs.items()}
    assert refs[br.THOMPSON].shape == (4000,)
    assert m[br.RANDOM] == pytest.approx(5.0, abs=0.1) and m[br.BEST_ARM] == pytest.approx(8.33, abs=0.1)
    assert 5.6 < m[br.THOMPSON] < 6.1 and 5.45 < m[br.UCB1] < 5.95  # measured 5.84, 5.68
    for name in (br.GREEDY, br.GITTINS, br.BAYES):  # the Bayesian lookahead policies: 6.6 to 6.7
        assert 6.5 < m[name] < 6.8, (name, m[name])
        assert m[name] > m[br.THOMPSON] + 0.5


def test_gittins_policy_beats_thompson_at_k10_n100():
    rng = np.random.default_rng(2)
    means = rng.random((300, 10))
    refs = br.reference_returns(means, 100, 1, rng)
    assert br.GITTINS in refs and br.BAYES not in refs  # the DP is intractable: Gittins stands in
    diff = refs[br.GITTINS] - refs[br.THOMPSON]  # paired on the same tasks; measured 83.7 vs 77.2
    assert diff.mean() - 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) > 2.0


def test_family_reports_bayes_optimal_or_gittins_and_is_seeded():
    fam_cls = FAMILIES.get("bandits")
    small = fam_cls(fam_cls.Config(arms=5, pulls=10, reference_runs=20))
    params = small.sample_task_params(50, torch.Generator().manual_seed(0))
    refs = small.references(params, 0)
    assert set(refs) == {"Thompson sampling", "UCB1", "best arm", br.GREEDY, br.BAYES}
    again = small.references(params, 0)
    assert all(torch.equal(refs[k], again[k]) for k in refs)
    assert not torch.equal(refs[br.THOMPSON], small.references(params, 1)[br.THOMPSON])
    large = fam_cls(fam_cls.Config(arms=10, pulls=10, reference_runs=2))
    refs = large.references(large.sample_task_params(20, torch.Generator().manual_seed(0)), 0, pulls=100)
    assert br.GITTINS in refs and br.BAYES not in refs and refs[br.GITTINS].shape == (20,)


def test_rl2_fused_replay_equals_the_stepped_gru_with_its_gradients():
    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    presets = __import__("pathlib").Path(__file__).resolve().parents[1] / "presets"
    cfg = ExperimentConfig.load(presets / "rl2-bandits-10x100.toml", ["run.iterations=0", "run.threads=1"])
    learner = Trainer(cfg).learner
    xs = torch.randn(6, 40, learner.policy.in_dim, generator=torch.Generator().manual_seed(0))
    out, v = learner.replay(xs)  # torch.gru on the CPU
    hs = learner.replay_steps(xs)  # the Python loop over the cell the rollouts step
    out2, v2 = learner.policy.heads(learner.params, hs.reshape(-1, learner.policy.hidden))
    assert out.shape == (6, 40, 10) and v.shape == (6, 40)
    torch.testing.assert_close(out.reshape(-1, 10), out2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v.reshape(-1), v2, rtol=1e-5, atol=1e-6)
    g1 = torch.autograd.grad((out.square().sum() + v.sum()), learner.params)
    g2 = torch.autograd.grad((out2.square().sum() + v2.sum()), learner.params)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
