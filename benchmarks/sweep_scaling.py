"""Sweep scaling: 2 seeds in parallel on a local Ray against the same 2 seeds one after another, in one run.

Both sides run the same two trials (maml-sinusoid, one torch thread each, run folders written as usual):

    sequential   both trials in this process, one after the other (torch already imported)
    parallel     ``run_sweep`` on a local Ray with 2 CPUs, Ray already running (the figure the target is
                 about): submitting, the worker processes importing torch and workbench, the runs, and
                 collecting the results
    start-up     Ray's overhead on top: ray.init, then until the first trial is running; and ray.shutdown
                 (``workbench sweep`` pays all of it: the "with Ray's start" ratio)

Target: parallel <= 0.6x sequential on 2 cores.

Then, in the same run, early stopping: 8 trials of a random search (log-uniform outer and inner learning
rates over ranges where some cannot learn) with ASHA against the same 8 trials (the same draws: the search's
random state is the seed) without, on the same local Ray: wall time and the best held-out MSE found.

    pip install -e '.[cluster]'
    python benchmarks/sweep_scaling.py [--iterations 20000] [--cpus 2] [--search-iterations 5000] [--search-only]
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "presets" / "maml-sinusoid.toml"


def busy_cores(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes over the next ``seconds`` (Linux /proc/stat), else None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20000, help="meta-iterations per trial (default 20000, the preset's own run)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray, and seeds run (default 2)")
    ap.add_argument("--search-iterations", type=int, default=5000, help="meta-iterations of each search trial")
    ap.add_argument("--search-only", action="store_true", help="only the ASHA comparison")
    args = ap.parse_args()
    if not args.search_only:
        scaling(args)
    asha_comparison(args)


def asha_comparison(args) -> None:
    """8 random-search trials with ASHA vs the same 8 without, on one local Ray: wall time, best metric."""
    import ray

    from workbench.services.sweep import plan_search, run_sweep

    overrides = [f"run.iterations={args.search_iterations}", "run.threads=1",
                 f"run.eval_interval={max(1, args.search_iterations // 8)}"]
    space = dict(loguniform=["algorithm.outer_lr=1e-6,0.03", "algorithm.inner_lr=1e-4,0.1"], samples=8)
    print(f"\nrandom search, 8 samples of outer_lr in [1e-6, 0.03] and inner_lr in [1e-4, 0.1] (log-uniform), "
          f"{args.search_iterations} meta-iterations each, evaluated every {args.search_iterations // 8}; "
          f"local Ray with {args.cpus} CPUs")
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    rows = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for scheduler in ("none", "asha"):
                plan = plan_search(PRESET, 1, [], overrides, scheduler=scheduler, **space)
                result = run_sweep(plan, Path(tmp) / scheduler, sweep_id=scheduler)
                done = [r for r in result.trials if r.after is not None]
                best = min(done, key=lambda r: r.after)
                iters = sum(r.iteration for r in result.trials)
                rows[scheduler] = (result.wall_seconds, best, iters, result.counts)
                lrs = ", ".join(f"{format(r.trial.values['algorithm.outer_lr'], '.2g')}/"
                                f"{format(r.trial.values['algorithm.inner_lr'], '.2g')}" for r in result.trials)
                print(f"  {scheduler:5s} {result.wall_seconds:7.1f} s, {iters} meta-iterations in all, "
                      f"{result.counts}; best held-out mse {best.after:.4f} (trial {best.trial.name}); "
                      f"outer/inner lr drawn: {lrs}")
    finally:
        ray.shutdown()
    (t0, b0, i0, _), (t1, b1, i1, _) = rows["none"], rows["asha"]
    print(f"ASHA / none: wall time {t1 / t0:.2f}x, meta-iterations {i1 / i0:.2f}x; best mse {b1.after:.4f} vs "
          f"{b0.after:.4f} ({'the same trial' if b1.trial.values == b0.trial.values else 'different trials'})")


def scaling(args) -> None:

    import ray
    import torch

    from workbench.core.config import ExperimentConfig
    from workbench.services.sweep import plan_sweep, run_sweep
    from workbench.services.trainer import Trainer

    seeds = args.cpus
    overrides = [f"run.iterations={args.iterations}", "run.threads=1"]
    trials = plan_sweep(PRESET, seeds, [], overrides)
    print(f"{seeds} trials of maml-sinusoid, {args.iterations} meta-iterations each, 1 torch thread per trial; "
          f"{os.cpu_count()} cores here, local Ray with {args.cpus} CPUs; Ray {ray.__version__}, torch "
          f"{torch.__version__}")

    busy = busy_cores()
    if busy is not None:
        print(f"other work before starting: {busy:.2f} cores busy" + (
            "  (the parallel figure will suffer: rerun on an idle machine)" if busy > 0.3 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        torch.set_num_threads(1)
        seq_trial = []
        for t in trials:
            t0 = time.perf_counter()
            Trainer(ExperimentConfig.from_dict(t.config), Path(tmp) / "seq" / t.name).run()
            seq_trial.append(time.perf_counter() - t0)
        sequential = sum(seq_trial)
        print(f"sequential  {sequential:7.2f} s  ({seeds} trials one after another in this process: "
              f"{', '.join(f'{s:.2f} s' for s in seq_trial)})")

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        init = time.perf_counter() - t0
        try:
            sweep = run_sweep(trials, Path(tmp) / "sweep", sweep_id="bench")
        finally:
            t1 = time.perf_counter()
            ray.shutdown()
            shutdown = time.perf_counter() - t1
        assert all(r.status == "finished" for r in sweep.trials), [r.message for r in sweep.trials]
        print(f"parallel    {sweep.wall_seconds:7.2f} s  (run_sweep on the running local Ray: submit, worker "
              f"processes import torch, run, collect; in the workers: "
              f"{', '.join(f'{r.seconds:.2f} s' for r in sweep.trials)})")
        first = sweep.startup_seconds
        print(f"start-up    {init + first:7.2f} s  from ray.init to the first trial running (ray.init {init:.2f} s, "
              f"then {first:.2f} s to the first trial running); ray.shutdown {shutdown:.2f} s")

    ratio = sweep.wall_seconds / sequential
    total = init + sweep.wall_seconds + shutdown
    print(f"ratio parallel / sequential: {ratio:.2f}x; with Ray's start and shutdown (as 'workbench sweep' pays "
          f"them): {total:.2f} s, {total / sequential:.2f}x")
    print(f"target <= 0.6x on 2 cores: {'meets' if ratio <= 0.6 else 'misses'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
