"""HalfCheetah simulations on Ray actors: one run's sampling over the cores and machines of a Ray cluster.

``use_ray_actors(n)`` makes every :class:`~workbench.tasks.cheetah.CheetahBatch` of this process step its
simulations on ``n`` Ray actors of the cluster this process is connected to (``workbench train --address``
connects it).  Each actor holds a contiguous chunk of the meta-batch's simulations (a ``make_sims`` of its
own, stepped on one thread of its node).  The driver still draws the reset noise and runs the policy, and
ships each control step's motor commands, so the episodes are bitwise those of local sampling: every
simulation starts from the same state and is stepped by the same commands (tested against the local
backends).  A round trip per control step costs about a millisecond, so this pays when a step's physics
is longer than that, as in the paper presets' 40 x 20 simulations (~8 ms per control step on one core).

The actors are made once and kept for the process (a run makes its environments anew at every
meta-step; their actors are not), each holding its chunk of every batch size it has seen.
"""
from __future__ import annotations

import threading

import numpy as np

_actors = 0  # Ray actors that step the simulations; 0: sample in this process
_pools: dict[int, "RaySims"] = {}
_lock = threading.Lock()


def use_ray_actors(n: int) -> None:
    """Step the cheetah simulations of this process on ``n`` Ray actors (0: locally, as by default).
    Ray must be initialised (connected to its cluster) before the first environment steps."""
    global _actors
    if n < 0:
        raise ValueError(f"use_ray_actors({n}): expected 0 or more actors")
    _actors = n


def ray_actors() -> int:
    """The Ray actors the simulations are stepped on (0: none, local sampling)."""
    return _actors


class _SimsActor:
    """Chunks of simulations in a Ray actor, one per meta-batch size (``key``: the whole batch's count);
    each call returns the chunk's state (qpos, qvel) after it."""

    def __init__(self):
        self.sims: dict = {}

    def _sims(self, key: int, nsim: int):
        if key not in self.sims:
            from workbench.tasks.cheetah import make_sims

            self.sims[key] = make_sims(nsim, 1)
        return self.sims[key]

    def reset_to(self, key: int, qpos: np.ndarray, qvel: np.ndarray):
        sims = self._sims(key, len(qpos))
        sims.reset_to(qpos, qvel)
        return sims.qpos.copy(), sims.qvel.copy()

    def step(self, key: int, ctrl: np.ndarray, nstep: int):
        sims = self.sims[key]
        sims.step(ctrl, nstep)
        return sims.qpos.copy(), sims.qvel.copy()


class RaySims:
    """``nsim`` cheetah simulations split over Ray actors, with the local backends' interface:
    ``reset_to(qpos, qvel)``, ``step(ctrl, nstep)`` and the ``qpos`` (nsim, 9) / ``qvel`` (nsim, 9) arrays.
    The actors (one CPU each) are shared by every batch size: a run's training and evaluation batches use
    the same ones, one after the other."""

    def __init__(self, nsim: int, actors: list):
        import ray

        self.ray, self.nsim = ray, nsim
        k = max(1, min(len(actors), nsim))
        bounds = np.linspace(0, nsim, k + 1).round().astype(int)
        self.chunks = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        self.actors = actors[:k]
        self.qpos = np.zeros((nsim, 9))
        self.qvel = np.zeros((nsim, 9))

    def _gather(self, refs) -> None:
        try:
            outs = self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:  # the actor's own error (an unstable simulation)
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, Exception) else e) from None
        for (lo, hi), (qpos, qvel) in zip(self.chunks, outs):
            self.qpos[lo:hi], self.qvel[lo:hi] = qpos, qvel

    def reset_to(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self._gather([a.reset_to.remote(self.nsim, qpos[lo:hi], qvel[lo:hi])
                      for a, (lo, hi) in zip(self.actors, self.chunks)])

    def step(self, ctrl: np.ndarray, nstep: int) -> None:
        self._gather([a.step.remote(self.nsim, ctrl[lo:hi], nstep) for a, (lo, hi) in zip(self.actors, self.chunks)])


_actor_list: list = []


def ray_sims(nsim: int) -> RaySims:
    """The process's :class:`RaySims` for ``nsim`` simulations on :func:`ray_actors` actors (made once)."""
    import ray

    with _lock:
        if len(_actor_list) != _actors:
            _actor_list.clear()
            _pools.clear()
            actor = ray.remote(num_cpus=1)(_SimsActor)
            _actor_list.extend(actor.remote() for _ in range(_actors))
        if nsim not in _pools:
            _pools[nsim] = RaySims(nsim, _actor_list)
        return _pools[nsim]


def release() -> None:
    """Forget the actors (before ``ray.shutdown``, or to make new ones)."""
    with _lock:
        _pools.clear()
        _actor_list.clear()
