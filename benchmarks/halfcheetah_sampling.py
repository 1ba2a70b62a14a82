"""HalfCheetah sampling (MuJoCo), in one run:

  * sampler workers (``run.sampler_workers``): environment steps per second of the workbench's batched
    sampler with 1 and with 2 physics threads (--workers), torch held at one thread so that only the
    physics threads differ: a ``collect`` of 40 tasks x 20 trajectories x 200 steps with the task settings
    (frame_skip) and the policy of --preset (default ``maml-trpo-cheetah-vel-paper``); the episodes must be
    bitwise the same for every worker count.  Then the seconds per meta-iteration of that preset's training
    (a warm-up iteration, then --meta-iterations timed ones) with each worker count, ``run.threads`` fixed
    (--run-threads);
  * environment steps per second of the batched sampler (``CheetahBatch``: every task and trajectory of a
    meta-batch stepped by one ``mujoco.batch.Batch`` call per control step) vs gymnasium's SyncVectorEnv
    over the gymnasium face of the same environment, with the same number of environments (default: the
    MAML setup, 40 tasks x 20 trajectories) and the same policy (64-64 tanh Gaussian) choosing the actions
    in both;
  * the raw physics backends behind it, per environment step (5 MuJoCo substeps): a Python loop of
    ``mj_step`` over MjData, ``mujoco.rollout`` (which restarts each call without the solver's warm start,
    so it is not bit-identical to gymnasium), and ``mujoco.batch.Batch`` at 1 and at --threads threads;
  * the cost of frame capture per evaluation: the rollout view's replay and offscreen rendering of one
    episode after each of 0..S adaptation steps (S = --eval-steps), beside the cost of sampling that
    evaluation's episodes.

    MUJOCO_GL=egl python benchmarks/halfcheetah_sampling.py [--workers 1,2] [--preset PATH] [--meta-iterations 3]
        [--run-threads 1] [--tasks 40] [--trajectories 20] [--threads 1]

Targets: 2 sampler workers >= 1.7x the env-steps/s of 1 on a 2-core machine; the batched sampler >= 2x
SyncVectorEnv at one thread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.7  # env-steps/s with 2 sampler workers over 1, on a 2-core machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--trajectories", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads and MuJoCo batch threads")
    ap.add_argument("--eval-steps", type=int, default=3, help="adaptation steps S of an evaluation (frames: S+1 "
                    "episodes)")
    ap.add_argument("--skip-backends", action="store_true", help="skip the raw physics backends")
    ap.add_argument("--workers", default="1,2", help="sampler worker counts to compare, e.g. 1,2 (the first is "
                    "the reference of the ratios)")
    ap.add_argument("--preset", default=str(REPO / "presets" / "maml-trpo-cheetah-vel-paper.toml"),
                    help="the preset whose task settings, policy and meta-iteration the workers section uses")
    ap.add_argument("--meta-iterations", type=int, default=3, help="timed meta-iterations per worker count, "
                    "after a warm-up one (0: skip the meta-iteration timing)")
    ap.add_argument("--run-threads", type=int, default=1, help="run.threads (torch threads) of the "
                    "meta-iterations, the same for every worker count")
    ap.add_argument("--repeats", type=int, default=5, help="timed collects per worker count (the median is "
                    "reported)")
    ap.add_argument("--only-workers", action="store_true", help="run the sampler-workers section only")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    sampler_workers(args, workers)
    if args.meta_iterations > 0:
        meta_iterations(args, workers)
    if args.only_workers:
        return
    torch.set_num_threads(args.threads)

    import gymnasium as gym

    from workbench.core.registry import FAMILIES
    from workbench.rl.policies import GaussianPolicy
    from workbench.rl.rollout import collect
    from workbench.tasks import cheetah as ch

    ok, why = ch.mujoco_status()
    if not ok:
        raise SystemExit(f"halfcheetah_sampling: {why}")
    fam_cls = FAMILIES.get("cheetah-vel")
    family = fam_cls(fam_cls.Config(horizon=args.horizon))
    b, n, h = args.tasks, args.trajectories, args.horizon
    gen = torch.Generator().manual_seed(0)
    tasks = family.sample_task_params(b, gen)
    policy = GaussianPolicy(ch.OBS_DIM, ch.ACT_DIM, (64, 64), "tanh")
    params = policy.init(gen)
    print(f"HalfCheetah-Vel, {b} tasks x {n} trajectories = {b * n} environments, {h} steps per episode, "
          f"{args.threads} thread{'s' if args.threads > 1 else ''}")

    # -- the workbench's batched sampler -------------------------------------------------------------------
    env = family.make_env(tasks)
    collect(env, policy, params, n, gen)  # warm-up
    reps = 2
    t = time.perf_counter()
    for _ in range(reps):
        collect(env, policy, params, n, gen)
    batched = reps * b * n * h / (time.perf_counter() - t)

    # -- gymnasium's SyncVectorEnv over the gymnasium face ---------------------------------------------------
    goals = tasks[:, 0].tolist()
    t = time.perf_counter()
    venv = gym.vector.SyncVectorEnv([lambda g=g: ch.face("HalfCheetahVelEnv")(g, horizon=h) for g in goals
                                     for _ in range(n)])
    made = time.perf_counter() - t
    obs, _ = venv.reset(seed=0)
    t = time.perf_counter()
    for _ in range(h):
        with torch.no_grad():
            a = policy.sample(params, torch.as_tensor(obs, dtype=torch.float32)[None], gen)[0]
        obs, r, term, trunc, _ = venv.step(a.numpy())
    sync = b * n * h / (time.perf_counter() - t)
    venv.close()
    print(f"sampling: workbench {batched:,.0f} env-steps/s vs SyncVectorEnv {sync:,.0f} env-steps/s = "
          f"{batched / sync:.1f}x (target >= 2x); making the {b * n} gymnasium environments took {made:.1f} s")

    # -- raw physics backends ------------------------------------------------------------------------------
    if not args.skip_backends:
        physics_backends(ch, b * n, args.threads)

    # -- frame capture per evaluation ----------------------------------------------------------------------
    ok, why = ch.rendering_status()
    if not ok:
        print(f"frame capture: skipped, {why}")
        return
    s1 = args.eval_steps + 1
    episodes = []
    t = time.perf_counter()
    for _ in range(s1):  # an evaluation samples S+1 sets of episodes (here without the inner updates)
        episodes.append(collect(env, policy, params, n, gen)[:4])
    sampling = time.perf_counter() - t
    steps = list(range(s1))
    t = time.perf_counter()
    payload = family.render(tasks[:4], episodes, steps)
    first = time.perf_counter() - t
    times = []
    for _ in range(2):
        t = time.perf_counter()
        payload = family.render(tasks[:4], episodes, steps)
        times.append(time.perf_counter() - t)
    n_eps, n_frames, height, width = payload.frames.shape[:4]
    per_eval = min(times)
    print(f"frame capture: {per_eval * 1e3:,.0f} ms per evaluation ({n_eps} episodes x {n_frames} frames of "
          f"{width}x{height} = {per_eval * 1e3 / (n_eps * n_frames):.1f} ms per frame; the first call, with the "
          f"EGL context, {first * 1e3:,.0f} ms) vs {sampling:.1f} s sampling "
          f"that evaluation's {s1} x {b} x {n} episodes = {per_eval / (sampling + per_eval):.0%} of it; "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}")


class _PhysicsClock:
    """Adds up the seconds a CheetahBatch spends in ``sims.step`` (the physics), once its simulations exist."""

    def __init__(self, env):
        self.seconds = 0.0
        real = env.sims.step

        def timed(ctrl, nstep):
            t = time.perf_counter()
            real(ctrl, nstep)
            self.seconds += time.perf_counter() - t

        env.sims.step = timed


def sampler_workers(args, workers: list[int]) -> None:
    """Env-steps/s of ``collect`` (tasks x trajectories x horizon) with each sampler worker count, torch at
    one thread; the seconds of physics per control step beside the rest (the policy, the tensors)."""
    from workbench.core.config import ExperimentConfig
    from workbench.core.registry import FAMILIES
    from workbench.rl.policies import make_policy
    from workbench.rl.rollout import collect
    from workbench.tasks import cheetah as ch

    ok, why = ch.mujoco_status()
    if not ok:
        raise SystemExit(f"halfcheetah_sampling: {why}")
    torch.set_num_threads(1)
    cfg = ExperimentConfig.load(args.preset, [f"task.horizon={args.horizon}"])
    family = FAMILIES.get(cfg.family)(cfg.task)
    b, n, h = args.tasks, args.trajectories, args.horizon
    policy = make_policy(family, tuple(cfg.model.hidden), cfg.model.activation)
    params = policy.init(torch.Generator().manual_seed(0))
    tasks = family.sample_task_params(b, torch.Generator().manual_seed(1))
    envs = {w: family.make_env(tasks, workers=w) for w in workers}
    returns = {}
    for w in workers:  # warm-up: the simulations are made (reused by the timed collects)
        returns[w] = collect(envs[w], policy, params, n, torch.Generator().manual_seed(2)).returns
    clocks = {w: _PhysicsClock(env) for w, env in envs.items()}
    steps = b * n * h
    backend = "mujoco.batch.Batch" if type(envs[workers[0]].sims).__name__ == "_BatchSims" else "loop of mj_step"
    print(f"sampler workers: {cfg.meta.name}'s {cfg.family} (frame_skip {cfg.task.frame_skip}) and "
          f"{'-'.join(map(str, cfg.model.hidden))} {cfg.model.activation} policy, {b} tasks x {n} trajectories x "
          f"{h} steps = {steps:,} env-steps per collect, torch threads 1, {backend}, medians of {args.repeats} "
          f"collects per count (x: median of the paired ratios); {os.cpu_count()} CPUs")
    times: dict[int, list[float]] = {w: [] for w in workers}
    physics: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(args.repeats):  # interleaved, so that a slow spell of the machine hits every count alike
        for w in workers:
            clocks[w].seconds = 0.0
            t = time.perf_counter()
            collect(envs[w], policy, params, n, torch.Generator().manual_seed(2))
            times[w].append(time.perf_counter() - t)
            physics[w].append(clocks[w].seconds)
    base = workers[0]
    for w in workers:
        sec, phys = statistics.median(times[w]), statistics.median(physics[w])
        # the ratio (x) is the median over repeats of adjacent collects' ratios: a slow spell of a shared
        # machine moves both sides of a pair
        ratio = statistics.median(t0 / t for t0, t in zip(times[base], times[w]))
        phys_ratio = statistics.median(p0 / p for p0, p in zip(physics[base], physics[w]))
        same = torch.equal(returns[w], returns[base])
        note = f" (target >= {TARGET}x with 2)" if w == 2 else ""
        print(f"  {w} worker{'s' if w > 1 else ' '}: {steps / sec:9,.0f} env-steps/s = {ratio:.2f}x {base} "
              f"worker{'s' if base > 1 else ''}{note}; per control step {sec / h * 1e3:.2f} ms: physics "
              f"{phys / h * 1e3:.2f} ms ({phys_ratio:.2f}x), the rest (policy, tensors) {(sec - phys) / h * 1e3:.2f} "
              f"ms; returns {'bitwise identical' if same else 'DIFFERENT'} to {base} worker{'s' if base > 1 else ''}")
    sec, phys = statistics.median(times[base]), statistics.median(physics[base])
    for w in workers[1:]:
        rest = statistics.median(times[w]) - statistics.median(physics[w])
        print(f"  with the physics {w / base:g}x as fast and the rest as measured with {w}, {w} workers would give "
              f"at most {sec / (phys * base / w + rest):.2f}x (Amdahl: the policy and tensors stay on one thread)")


def meta_iterations(args, workers: list[int]) -> None:
    """Seconds per meta-iteration of --preset's training with each sampler worker count (same seed, same
    run.threads): a warm-up iteration, then --meta-iterations timed ones."""
    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    print(f"meta-iterations: {Path(args.preset).stem}, run.threads = {args.run_threads}, a warm-up iteration then "
          f"{args.meta_iterations} timed:")
    base, metrics = None, {}
    for w in workers:
        cfg = ExperimentConfig.load(args.preset, [f"run.threads={args.run_threads}", f"run.sampler_workers={w}",
                                                  "run.render_tasks=0"])
        torch.set_num_threads(cfg.run.threads)
        trainer = Trainer(cfg)
        learner, meta_batch = trainer.learner, cfg.algorithm.meta_batch
        seconds, returns = [], []
        for i in range(1 + args.meta_iterations):
            batch = learner.training_batch(trainer.family, meta_batch, trainer.task_gen).to(trainer.device)
            t = time.perf_counter()
            m = learner.meta_step(batch, i)
            seconds.append(time.perf_counter() - t)
            returns.append(m.get("return", float("nan")))
        sec = statistics.mean(seconds[1:])
        base = base or sec
        metrics[w] = returns
        same = "" if w == workers[0] else (f"; returns {'identical' if returns == metrics[workers[0]] else 'DIFFERENT'}"
                                           f" to {workers[0]} worker{'s' if workers[0] > 1 else ''}")
        print(f"  {w} worker{'s' if w > 1 else ' '}: {sec:6.2f} s per meta-iteration (warm-up {seconds[0]:.2f} s) = "
              f"{base / sec:.2f}x{same}")


def physics_backends(ch, nsim: int, threads: int, steps: int = 50) -> None:
    """Microseconds per environment step (FRAME_SKIP substeps) of each way to step ``nsim`` cheetahs."""
    import mujoco
    from mujoco import rollout

    model = ch.cheetah_model()
    rng = np.random.default_rng(0)
    qpos = model.qpos0 + rng.uniform(-0.1, 0.1, (nsim, model.nq))
    qvel = 0.1 * rng.standard_normal((nsim, model.nv))
    ctrl = rng.uniform(-1, 1, (steps, nsim, model.nu))
    results = {}

    def timed(name, fn):
        t = time.perf_counter()
        final = fn()
        results[name] = ((time.perf_counter() - t) / (steps * nsim) * 1e6, final)

    def loop():
        sims = ch.make_sims(nsim, 1, backend="loop")
        sims.reset_to(qpos, qvel)
        for k in range(steps):
            sims.step(ctrl[k], ch.FRAME_SKIP)
        return sims.qpos.copy()

    def with_rollout(nthread):
        def run():
            spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
            data = mujoco.MjData(model)
            state = np.empty((nsim, mujoco.mj_stateSize(model, spec)))
            for i in range(nsim):
                mujoco.mj_resetData(model, data)
                data.qpos[:], data.qvel[:] = qpos[i], qvel[i]
                mujoco.mj_forward(model, data)
                mujoco.mj_getState(model, data, state[i], spec)
            out = np.empty((nsim, ch.FRAME_SKIP, state.shape[1]))
            with rollout.Rollout(nthread=nthread) as r:
                datas = [mujoco.MjData(model) for _ in range(nthread)]
                for k in range(steps):
                    r.rollout(model, datas, state, np.repeat(ctrl[k][:, None], ch.FRAME_SKIP, 1), state=out)
                    state = out[:, -1].copy()
            return state[:, 1:1 + model.nq]
        return run

    def with_batch(nthread):
        def run():
            sims = ch.make_sims(nsim, nthread, backend="batch")
            sims.reset_to(qpos, qvel)
            for k in range(steps):
                sims.step(ctrl[k], ch.FRAME_SKIP)
            return sims.qpos.copy()
        return run

    timed("loop of mj_step", loop)
    have_batch = True
    try:
        import mujoco.batch  # noqa: F401
    except ImportError:
        have_batch = False
    for k in sorted({1, threads}):
        timed(f"mujoco.rollout, {k} thread{'s' if k > 1 else ''}", with_rollout(k))
        if have_batch:
            timed(f"mujoco.batch.Batch, {k} thread{'s' if k > 1 else ''}", with_batch(k))
    reference = results["loop of mj_step"][1]
    print(f"physics, {nsim} cheetahs x {steps} steps of {ch.FRAME_SKIP} substeps, us per env-step "
          f"(max |qpos - loop's| after {steps} steps):")
    for name, (us, final) in results.items():
        print(f"  {name:28s} {us:6.1f} us  ({np.abs(final - reference).max():.1e})")


if __name__ == "__main__":
    main()
