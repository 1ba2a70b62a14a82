"""HalfCheetah sampling (MuJoCo), in one run:

  * environment steps per second of the workbench's batched sampler (``CheetahBatch``: every task and
    trajectory of a meta-batch stepped by one ``mujoco.batch.Batch`` call per control step) vs gymnasium's
    SyncVectorEnv over the gymnasium face of the same environment, with the same number of environments
    (default: the MAML setup, 40 tasks x 20 trajectories) and the same policy (64-64 tanh Gaussian) choosing
    the actions in both;
  * the raw physics backends behind it, per environment step (5 MuJoCo substeps): a Python loop of
    ``mj_step`` over MjData, ``mujoco.rollout`` (which restarts each call without the solver's warm start,
    so it is not bit-identical to gymnasium), and ``mujoco.batch.Batch`` at 1 and at --threads threads;
  * the cost of frame capture per evaluation: the rollout view's replay and offscreen rendering of one
    episode after each of 0..S adaptation steps (S = --eval-steps), beside the cost of sampling that
    evaluation's episodes.

    MUJOCO_GL=egl python benchmarks/halfcheetah_sampling.py [--tasks 40] [--trajectories 20] [--threads 1]

Target: the batched sampler >= 2x SyncVectorEnv at one thread.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--trajectories", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads and MuJoCo batch threads")
    ap.add_argument("--eval-steps", type=int, default=3, help="adaptation steps S of an evaluation (frames: S+1 "
                    "episodes)")
    ap.add_argument("--skip-backends", action="store_true", help="skip the raw physics backends")
    args = ap.parse_args()
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
