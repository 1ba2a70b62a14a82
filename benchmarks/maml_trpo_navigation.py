"""MAML-TRPO on 2D navigation, the pytorch-maml-rl configuration, in one run:

  * seconds per full meta-iteration (sampling 20 tasks x 20 trajectories x 100 steps before and after the
    inner step, the inner policy-gradient step, the TRPO update with CG and line search);
  * sampling throughput of the batched sampler vs gymnasium's SyncVectorEnv over the gymnasium face of the
    same environment (400 envs: 20 goals x 20 trajectories), the same policy choosing the actions in both.

    python benchmarks/maml_trpo_navigation.py [--iterations 10] [--threads 1,2]

The meta-iteration is timed at each thread count given (default: one thread, then every core).

Targets: <= 0.25 s per meta-iteration; batched sampler >= 10x SyncVectorEnv.
(For scale: pytorch-maml-rl takes 11.9 s per meta-iteration on this machine, 7.8 s at best with 2 workers.)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                    help="comma-separated thread counts to time the meta-iteration at")
    args = ap.parse_args()
    counts = sorted({max(1, int(t)) for t in args.threads.split(",")})

    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer
    from workbench.rl.rollout import collect
    from workbench.tasks.navigation import Navigation2DEnv

    for threads in counts:
        cfg = ExperimentConfig.load(REPO / "presets" / "maml-trpo-navigation.toml", [f"run.threads={threads}"])
        torch.set_num_threads(threads)
        trainer = Trainer(cfg)
        learner, family = trainer.learner, trainer.family
        gen = torch.Generator().manual_seed(0)
        for i in range(2):  # warm-up
            learner.meta_step(family.sample_batch(20, gen), i)
        times = []
        for i in range(args.iterations):
            batch = family.sample_batch(20, gen)
            t = time.perf_counter()
            learner.meta_step(batch, i)
            times.append(time.perf_counter() - t)
        print(f"MAML-TRPO meta-iteration: {np.mean(times):.3f} s mean, {np.min(times):.3f} s best over "
              f"{args.iterations} ({threads} thread{'s' if threads > 1 else ''}; target <= 0.25 s)", flush=True)
    torch.set_num_threads(1)

    # sampling throughput, same policy, same 400 environments
    batch = family.sample_batch(20, gen)
    env = family.make_env(batch.params)
    params = learner.expand([p.detach() for p in learner.params], 20)
    collect(env, learner.policy, params, 20, gen)
    t = time.perf_counter()
    reps = 5
    for _ in range(reps):
        collect(env, learner.policy, params, 20, gen)
    batched = reps * 20 * 20 * 100 / (time.perf_counter() - t)

    import gymnasium as gym

    goals = batch.params.numpy()
    fns = [lambda g=g: Navigation2DEnv(goal=g) for g in goals for _ in range(20)]
    venv = gym.vector.SyncVectorEnv(fns)
    shared = [p.detach() for p in learner.params]
    obs, _ = venv.reset(seed=0)
    t = time.perf_counter()
    steps = 0
    for _ in range(2):
        obs, _ = venv.reset(seed=0)
        for _ in range(100):
            with torch.no_grad():
                a = learner.policy.sample(shared, torch.as_tensor(obs, dtype=torch.float32)[None], gen)[0]
            obs, r, term, trunc, _ = venv.step(a.numpy())
            steps += len(fns)
    sync = steps / (time.perf_counter() - t)
    print(f"sampling: batched {batched:,.0f} env-steps/s vs SyncVectorEnv {sync:,.0f} env-steps/s = "
          f"{batched / sync:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
