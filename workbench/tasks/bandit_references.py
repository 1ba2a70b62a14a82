"""Reference policies for k-armed Bernoulli bandits with independent uniform (Beta(1, 1)) priors on the arm
means, the task distribution of Duan et al. 2016 (RL², sec. 4.1).  Qt-free, numpy only.

* :func:`bayes_optimal_value` -- the Bayes-optimal expected total reward over n pulls, by exact dynamic
  programming over the posterior counts.  A state is the multiset of per-arm (successes, failures): the arms
  are exchangeable under the prior, so a state is a sorted tuple of count pairs, memoised.  Tractable for
  small k and n (k = 5, n = 10: 6.6600, 3,519 states, 0.05 s); :func:`bayes_optimal_tractable` says when.
* :class:`BayesOptimalPolicy` -- the same programme as a lookup table, played on given arm means.
* :func:`gittins_indices` -- Gittins indices of Beta(1 + s, 1 + f) arms for a discount γ.  The finite-horizon
  problem (n pulls) has no exact index policy; the standard approximation used here is the infinite-horizon
  discounted Gittins index with γ = 1 − 1/n (an effective horizon of n pulls), computed by calibration
  against a standard arm (the retirement-value formulation of Gittins 1979; Whittle 1980): for a retirement
  reward λ per step, V(a, b) = max(λ / (1 − γ), p (1 + γ V(a + 1, b)) + (1 − p) γ V(a, b + 1)) with
  p = a / (a + b), on the Beta lattice truncated at a + b = depth where V = max(λ, p) / (1 − γ) (no more learning); the index
  of (a, b) is the λ at which retiring and continuing are equally good.  One backward pass over the lattice
  per λ on a grid gives the continue-or-retire margin of every state at once, with its slope in λ; the index
  is the margin's zero, from the tangents at the two grid points around it.  See J. C. Gittins, "Bandit
  processes and dynamic allocation indices", JRSS B 41 (1979); M. N. Katehakis and A. F. Veinott, "The
  multi-armed bandit problem: decomposition and computation", Math. Oper. Res. 12 (1987); J. Chakravorty and
  A. Mahajan, "Multi-armed bandits, Gittins index, and its calculation" (2014), which lists the calibration
  method.
* :func:`reference_returns` -- per-task mean total reward of random, Thompson sampling, UCB1, greedy on the
  posterior mean, the Gittins-index policy and the Bayes-optimal policy, simulated on given arm means,
  vectorised over tasks x runs (a Python loop over pulls only).

Measured here (mean total reward, tasks U[0, 1]^k; benchmarks/fidelity_bandits.py):
  k = 5, n = 10 (20,000 tasks): random 5.00, UCB1 5.68, Thompson 5.84, greedy 6.65, Bayes-optimal 6.66
      (exact 6.6600), best arm 8.32;
  k = 10, n = 100 (2,000 tasks): random 50.3, UCB1 63.6, Thompson 77.2, greedy 79.2, Gittins 83.7, best arm 90.9;
  k = 50, n = 500 (500 tasks): random 250.6, UCB1 313.1, Thompson 425.5, greedy 410.7, Gittins 462.8,
      best arm 489.9.
"""
from __future__ import annotations

import math
import sys
from functools import lru_cache

import numpy as np

#: reference names, as reported beside evaluations (the keys of :func:`reference_returns`)
RANDOM, THOMPSON, UCB1, BEST_ARM = "random", "Thompson sampling", "UCB1", "best arm"
GREEDY, GITTINS, BAYES = "greedy posterior mean", "Gittins index", "Bayes-optimal"


# -- Bayes-optimal value by exact dynamic programming ------------------------------------------------------
def _state_estimate(k: int, n: int) -> float:
    """An estimate of the number of DP states: count vectors (s_1, f_1, ..., s_k, f_k) with sum <= n, over k!."""
    return math.comb(n + 2 * k, 2 * k) / math.factorial(k)


def bayes_optimal_tractable(k: int, n: int, max_states: float = 2e5) -> bool:
    """Whether the exact programme of :func:`bayes_optimal_value` is affordable (k = 5, n = 10 is; k = 10,
    n = 100 is not by ~16 orders of magnitude), and its states fit one int64 key each."""
    return _state_estimate(k, n) <= max_states and ((n + 1) ** 2) ** k < 2**62


@lru_cache(maxsize=8)
def _solve(k: int, n: int) -> dict:
    """state (sorted tuple of per-arm (s, f)) -> (value to go, the (s, f) of an arm that is optimal to pull)."""
    memo: dict = {}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * n + 1000))
    try:
        def value(state: tuple) -> float:
            got = memo.get(state)
            if got is not None:
                return got[0]
            if sum(s + f for s, f in state) == n:
                memo[state] = (0.0, None)
                return 0.0
            best, best_pair = -1.0, None
            for i, (s, f) in enumerate(state):
                if i and state[i - 1] == (s, f):
                    continue  # the same counts: the same choice
                p = (s + 1) / (s + f + 2)  # posterior mean of Beta(1 + s, 1 + f)
                rest = state[:i] + state[i + 1:]
                win = value(tuple(sorted(rest + ((s + 1, f),))))
                lose = value(tuple(sorted(rest + ((s, f + 1),))))
                q = p * (1.0 + win) + (1 - p) * lose
                if q > best + 1e-12:
                    best, best_pair = q, (s, f)
            memo[state] = (best, best_pair)
            return best

        value(((0, 0),) * k)
    finally:
        sys.setrecursionlimit(limit)
    return memo


def bayes_optimal_value(k: int, n: int) -> float:
    """Bayes-optimal expected total reward of n pulls of a k-armed Bernoulli bandit whose arm means are
    i.i.d. U[0, 1] (Beta(1, 1) priors): the exact dynamic programme over posterior counts.  k = 1: n / 2;
    k = 5, n = 10: 6.6600.  Raises ValueError when :func:`bayes_optimal_tractable` says no."""
    if not bayes_optimal_tractable(k, n):
        raise ValueError(f"the exact Bayes-optimal programme is intractable for k = {k}, n = {n}")
    return _solve(k, n)[((0, 0),) * k][0]


class BayesOptimalPolicy:
    """The Bayes-optimal policy of :func:`bayes_optimal_value` as a lookup table over int64 state keys: an
    arm's code is s (n + 1) + f, a state's key its k codes sorted and read as digits in base (n + 1)²."""

    def __init__(self, k: int, n: int):
        if not bayes_optimal_tractable(k, n):
            raise ValueError(f"the exact Bayes-optimal programme is intractable for k = {k}, n = {n}")
        self.k, self.n, self.base = k, n, (n + 1) ** 2
        memo = _solve(k, n)
        keys, best = [], []
        for state, (_, pair) in memo.items():
            if pair is not None:
                keys.append(self._key([s * (n + 1) + f for s, f in state]))
                best.append(pair[0] * (n + 1) + pair[1])
        order = np.argsort(keys)
        self.keys = np.asarray(keys, dtype=np.int64)[order]
        self.best = np.asarray(best, dtype=np.int64)[order]

    def _key(self, codes) -> int:
        key = 0
        for c in sorted(codes):
            key = key * self.base + int(c)
        return key

    def act(self, succ: np.ndarray, fail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Arms (M,) to pull from per-arm counts succ, fail (M, k); among arms with the optimal counts, one
        at random."""
        codes = succ.astype(np.int64) * (self.n + 1) + fail
        key = np.zeros(codes.shape[0], dtype=np.int64)
        for c in np.sort(codes, 1).T:
            key = key * self.base + c
        pos = np.searchsorted(self.keys, key)
        if not (pos < len(self.keys)).all() or not (self.keys[np.minimum(pos, len(self.keys) - 1)] == key).all():
            raise ValueError("a state outside the Bayes-optimal table (more pulls than n?)")
        target = self.best[pos]
        return ((codes == target[:, None]) + rng.random(codes.shape) * 0.5).argmax(1)


# -- Gittins indices -------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def gittins_indices(gamma: float, max_count: int, depth: int | None = None, grid: int = 201) -> np.ndarray:
    """Gittins indices of Bernoulli arms with Beta(1 + s, 1 + f) posteriors for discount ``gamma``: an array
    (max_count + 1, max_count + 1) of probabilities per pull, entry [s, f] for s + f <= max_count (nan
    beyond).  Calibration on the Beta lattice truncated at a + b = ``depth`` (default: max_count + 2 plus
    4 / (1 − γ) levels, where γ^levels < 2 %), with ``grid`` retirement rewards λ on [0, 1]; the margin
    is piecewise linear in λ, and its zero between grid points comes from the margin's values and slopes
    (carried through the same backward pass).  Known
    value: Beta(1, 1), γ = 0.9: 0.7029 (Gittins 1979's table).  Read-only (cached): do not modify."""
    if not 0 < gamma < 1:
        raise ValueError("gamma must lie in (0, 1)")
    top = max_count + 2  # highest a + b that is needed
    if depth is None:
        depth = top + int(math.ceil(4 / (1 - gamma)))
    depth = max(depth, top + 1)
    lam = np.linspace(0.0, 1.0, grid)[:, None]  # (G, 1)
    retire = lam / (1 - gamma)
    out = np.full((max_count + 1, max_count + 1), np.nan)
    a = np.arange(1, depth)  # level m = depth: a = 1..m-1
    v = np.maximum(lam, a / depth) / (1 - gamma)  # value (G, m - 1)
    d = (lam >= a / depth) / (1 - gamma)  # and its slope in λ (the discounted time spent retired)
    for m in range(depth - 1, 1, -1):
        a = np.arange(1, m)
        p = a / m
        # successors of (a, m - a): (a + 1, m - a) is entry a of level m + 1, (a, m - a + 1) entry a - 1
        cont = p * (1 + gamma * v[:, 1:]) + (1 - p) * gamma * v[:, :-1]
        dcont = gamma * (p * d[:, 1:] + (1 - p) * d[:, :-1])
        if m <= top:
            out[a - 1, m - a - 1] = _margin_zero(lam[:, 0], cont - retire, dcont - 1 / (1 - gamma))
        stop = retire >= cont
        v = np.where(stop, retire, cont)
        d = np.where(stop, 1 / (1 - gamma), dcont)
    out.setflags(write=False)
    return out


def _margin_zero(lam: np.ndarray, margin: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Zeros (S,) of continue-or-retire margins (G, S), convex, piecewise linear and decreasing in λ (G,),
    from their values and slopes on the grid: between the bracketing grid points the zero is the larger of
    the two end tangents' zeros, exact when the margin has at most one kink there (else a bound within the
    bracket)."""
    grid = len(lam)
    pos = (margin > 0).sum(0)  # first grid point where retiring is at least as good
    hi = np.clip(pos, 1, grid - 1)
    cols = np.arange(margin.shape[1])
    lo_l, hi_l = lam[hi - 1], lam[hi]

    def tangent_zero(i, at):
        s = slope[i, cols]
        return np.where(s < 0, at - margin[i, cols] / np.where(s < 0, s, -1.0), lo_l)

    z = np.maximum(tangent_zero(hi - 1, lo_l), tangent_zero(hi, hi_l))
    return np.clip(z, lo_l, hi_l)


def gittins_discount(pulls: int) -> float:
    """The discount that stands in for a horizon of ``pulls`` pulls: γ = 1 − 1/n (n ≥ 2)."""
    return 1.0 - 1.0 / max(pulls, 2)


# -- simulation of the references on given arm means -------------------------------------------------------
def _play(means: np.ndarray, pulls: int, runs: int, rng: np.random.Generator, choose) -> np.ndarray:
    """Mean total reward per task (T,) of a policy ``choose(succ, fail, step, rng) -> arms (M,)`` played for
    ``pulls`` pulls, ``runs`` times on each task of ``means`` (T, k); M = T x runs, all at once."""
    t, k = means.shape
    flat = np.repeat(means, runs, 0)  # (M, k), task-major
    rows = np.arange(t * runs)
    dtype = np.int16 if pulls < 2**15 else np.int32
    succ = np.zeros((t * runs, k), dtype=dtype)
    fail = np.zeros((t * runs, k), dtype=dtype)
    total = np.zeros(t * runs)
    for step in range(pulls):
        arm = choose(succ, fail, step, rng)
        r = rng.random(t * runs) < flat[rows, arm]
        succ[rows, arm] += r
        fail[rows, arm] += ~r
        total += r
    return total.reshape(t, runs).mean(1)


def _thompson(succ, fail, step, rng):
    return rng.beta(succ + 1.0, fail + 1.0).argmax(1)


def _ucb1(succ, fail, step, rng):
    k = succ.shape[1]
    if step < k:  # each arm once, in order
        return np.full(succ.shape[0], step)
    n = (succ + fail).astype(float)
    return (succ / n + np.sqrt(2 * math.log(step) / n)).argmax(1)


def _greedy(succ, fail, step, rng):
    mean = (succ + 1.0) / (succ + fail + 2.0)
    return (mean + rng.random(mean.shape) * 1e-9).argmax(1)  # ties at random (distinct means differ by > 1e-6)


def _gittins_policy(table: np.ndarray):
    def choose(succ, fail, step, rng):
        g = table[succ, fail]
        return (g + rng.random(g.shape) * 1e-9).argmax(1)

    return choose


def reference_returns(means: np.ndarray, pulls: int, runs: int, rng: np.random.Generator,
                      which: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Mean total reward per task (T,) over ``pulls`` pulls of the reference policies on arm means (T, k),
    each played ``runs`` times per task with Beta(1, 1) priors: random (exact expectation), Thompson
    sampling, UCB1 (Auer et al. 2002), best arm (exact, the oracle), greedy on the posterior mean, the
    Gittins-index policy (γ = 1 − 1/n, :func:`gittins_indices`) and the Bayes-optimal policy (only where
    :func:`bayes_optimal_tractable`).  ``which``: the names to compute (default: all but Gittins where the
    Bayes-optimal policy is tractable, all but Bayes-optimal where it is not), in the order Thompson, UCB1,
    greedy, Gittins, Bayes-optimal, drawing from ``rng`` in that order."""
    means = np.asarray(means, dtype=float)
    t, k = means.shape
    exact = bayes_optimal_tractable(k, pulls)
    if which is None:
        which = (RANDOM, THOMPSON, UCB1, BEST_ARM, GREEDY) + ((BAYES,) if exact else (GITTINS,))
    unknown = set(which) - {RANDOM, THOMPSON, UCB1, BEST_ARM, GREEDY, GITTINS, BAYES}
    if unknown:
        raise ValueError(f"unknown references {sorted(unknown)}")
    out = {}
    if THOMPSON in which:
        out[THOMPSON] = _play(means, pulls, runs, rng, _thompson)
    if UCB1 in which:
        out[UCB1] = _play(means, pulls, runs, rng, _ucb1)
    if BEST_ARM in which:
        out[BEST_ARM] = means.max(1) * pulls
    if RANDOM in which:
        out[RANDOM] = means.mean(1) * pulls
    if GREEDY in which:
        out[GREEDY] = _play(means, pulls, runs, rng, _greedy)
    if GITTINS in which:
        table = gittins_indices(gittins_discount(pulls), pulls)
        out[GITTINS] = _play(means, pulls, runs, rng, _gittins_policy(table))
    if BAYES in which:
        policy = BayesOptimalPolicy(k, pulls)
        out[BAYES] = _play(means, pulls, runs, rng, lambda s, f, step, g: policy.act(s, f, g))
    return {name: out[name] for name in which}
