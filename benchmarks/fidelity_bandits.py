"""RL² on Bernoulli bandits against the references, for k / n in 5 / 10, 10 / 100 and 50 / 500 (Duan et al.
2016, RL², sec. 4.1 and Table 1): mean total reward of an n-pull trial ± 95% CI over the evaluated tasks
(arm means U[0, 1]) of

  random (exact expectation), greedy on the posterior mean, UCB1, Thompson sampling (Beta(1, 1)), the
  Gittins-index policy (γ = 1 − 1/n), the Bayes-optimal policy (exact dynamic programme, where tractable;
  its exact prior expectation on its own row), always the best arm, and RL² from a trained run / bundle,

all on the same tasks (the held-out "test" stream of ``workbench eval --seed``), so the RL² − Thompson
difference is paired.  Ratios: RL² / Bayes-optimal at 5 / 10 (target ≥ 0.98), RL² vs Thompson at 10 / 100
and 50 / 500 (target ≥ 1).

    python benchmarks/fidelity_bandits.py --rl2 5x10=RUN_DIR --rl2 10x100=RUN_DIR [--rl2 50x500=RUN_DIR]
    python benchmarks/fidelity_bandits.py --train 5x10,10x100 --out runs/fidelity-bandits   # train first
    python benchmarks/fidelity_bandits.py --settings 5x10,10x100,50x500                   # references only

The presets: rl2-bandits (5 x 10), rl2-bandits-10x100, rl2-bandits-50x500.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.core import seeding, stats  # noqa: E402
from workbench.tasks import bandit_references as br  # noqa: E402

PRESETS = {"5x10": "rl2-bandits", "10x100": "rl2-bandits-10x100", "50x500": "rl2-bandits-50x500"}
ROWS = (br.RANDOM, br.GREEDY, br.UCB1, br.THOMPSON, br.GITTINS, br.BAYES, br.BEST_ARM)


def parse_setting(text: str) -> tuple[int, int]:
    k, n = text.lower().split("x")
    return int(k), int(n)


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and 95% CI half-width by the project's one rule (Student t; NaN where a sample is not finite)."""
    mean, ci = stats.mean_ci95(x)
    return float(mean), float(ci)


def train(setting: str, out: Path, threads: int) -> str:
    preset = PRESETS[setting]
    run = out / preset
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "workbench", "train", preset, "--out", str(run), "--quiet",
                    "--set", f"run.threads={threads}"], check=True, cwd=REPO)
    print(f"trained {preset} in {time.perf_counter() - t:.0f} s: {run}", flush=True)
    return str(run)


def rl2_totals(path: str, k: int, n: int, tasks: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean total reward per task of the RL² model at ``path`` over its trials, and the tasks' arm means
    (T, k), drawn as ``workbench eval PATH --tasks T --seed S`` draws them."""
    import workbench

    model = workbench.load_model(path)
    fam = model.family
    if fam.name != "bandits" or fam.cfg.arms != k or fam.cfg.pulls * model.learner.cfg.episodes != n:
        raise SystemExit(f"{path}: not an RL² model of {k}-armed bandits over {n} pulls")
    means = fam.evaluation_batch(tasks, seed, stream=seeding.TEST).params.double().numpy()
    res = model.evaluate(tasks=tasks, seed=seed, steps=list(range(model.learner.cfg.episodes)))
    totals = np.asarray(res["per_task"], dtype=np.float64).sum(1)  # episodes of the trial: their sum
    label = f"RL² ({model.learner.cfg.eval_trials} trials per task)"
    return totals, means, label


def table(k: int, n: int, tasks: int, runs: int, seed: int, rl2_path: str | None) -> None:
    t0 = time.perf_counter()
    totals, label = None, ""
    if rl2_path:
        totals, means, label = rl2_totals(rl2_path, k, n, tasks, seed)
    else:
        means = np.random.default_rng(seeding.stream_seed("bandit-benchmark-tasks", seed)).random((tasks, k))
    exact = br.bayes_optimal_tractable(k, n)
    which = tuple(r for r in ROWS if r != br.BAYES or exact)
    rng = np.random.default_rng(seeding.stream_seed("bandit-benchmark", seed))
    refs = br.reference_returns(means, n, runs, rng, which=which)
    print(f"\n### k = {k} arms, n = {n} pulls: {tasks} tasks, {runs} runs of each reference per task "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print("| policy | mean total reward ± 95% CI |")
    print("|---|---|")
    for name in which:
        m, c = mean_ci(refs[name])
        extra = " (γ = 1 − 1/n)" if name == br.GITTINS else ""
        print(f"| {name}{extra} | {m:.2f} ± {c:.2f} |")
    if exact:
        print(f"| Bayes-optimal, exact DP (prior expectation) | {br.bayes_optimal_value(k, n):.3f} |")
    if totals is not None:
        m, c = mean_ci(totals)
        print(f"| **{label}** | **{m:.2f} ± {c:.2f}** |")
        if exact:
            v = br.bayes_optimal_value(k, n)
            print(f"\nRL² / Bayes-optimal (exact) = {m / v:.3f} ± {c / v:.3f} (target ≥ 0.98)")
            d, dc = mean_ci(totals - refs[br.BAYES])
            print(f"RL² − Bayes-optimal policy on the same tasks (paired) = {d:+.3f} ± {dc:.3f}; ratio "
                  f"{m / refs[br.BAYES].mean():.3f}")
        d, dc = mean_ci(totals - refs[br.THOMPSON])
        print(f"RL² − Thompson sampling (paired) = {d:+.2f} ± {dc:.2f}; RL² / Thompson = "
              f"{m / refs[br.THOMPSON].mean():.3f} (target ≥ 1)")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rl2", action="append", default=[], metavar="KxN=PATH",
                    help="a trained RL² run folder or bundle for setting KxN (repeatable)")
    ap.add_argument("--settings", default=None, help="settings to tabulate, e.g. 5x10,10x100,50x500 (default: "
                    "those given by --rl2 / --train, else all three)")
    ap.add_argument("--train", default="", help="settings to train first with their presets, e.g. 5x10,10x100")
    ap.add_argument("--out", default="runs/fidelity-bandits", help="where --train puts its runs")
    ap.add_argument("--threads", type=int, default=1, help="run.threads of the --train runs")
    ap.add_argument("--tasks", type=int, default=None, help="evaluated tasks (default 4000 / 500 / 200 for "
                    "n = 10 / 100 / 500)")
    ap.add_argument("--runs", type=int, default=None, help="runs of each reference per task (default 20 / 10 / 4)")
    ap.add_argument("--seed", type=int, default=0, help="the tasks' seed (as workbench eval --seed)")
    args = ap.parse_args()
    paths = dict(item.split("=", 1) for item in args.rl2)
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    for setting in filter(None, args.train.split(",")):
        paths[setting] = train(setting, out, args.threads)
    settings = (args.settings.split(",") if args.settings else None) or list(paths) or list(PRESETS)
    for setting in settings:
        k, n = parse_setting(setting)
        tasks = args.tasks or (4000 if n <= 10 else 500 if n <= 100 else 200)
        runs = args.runs or (20 if n <= 10 else 10 if n <= 100 else 4)
        table(k, n, tasks, runs, args.seed, paths.get(setting))


if __name__ == "__main__":
    main()
