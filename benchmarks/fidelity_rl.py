"""Fidelity of the meta-RL presets, through the real CLI (train, then eval --json):

  * maml-trpo-navigation and pretrained-navigation, 500 meta-iterations each, evaluated on 100 held-out
    goals: return before adaptation and after one policy-gradient step;
  * rl2-bandits (600 iterations), evaluated on 500 held-out 5-armed bandits: mean total reward of a
    10-pull trial vs Thompson sampling and UCB1 on the same tasks.

    python benchmarks/fidelity_rl.py [--out runs/fidelity-rl] [--nav-iterations 500] [--rl2-iterations 600]

Targets: navigation after one step >= -9.0 (Meta-SGD paper: MAML -9.12), clearly above before adaptation and
above the pretrained baseline after one step; RL² >= 0.95 x Thompson sampling.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "workbench"]


def train(preset: str, iterations: int, out: Path) -> tuple[str, float]:
    t = time.perf_counter()
    r = subprocess.run([*CLI, "train", str(REPO / "presets" / f"{preset}.toml"), "--iterations", str(iterations),
                        "--out", str(out / preset), "--quiet"], capture_output=True, text=True, check=True)
    return r.stdout.strip().splitlines()[-1], time.perf_counter() - t


def evaluate(bundle: str, tasks: int, steps: str) -> dict:
    r = subprocess.run([*CLI, "eval", bundle, "--tasks", str(tasks), "--steps", steps, "--json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/fidelity-rl")
    ap.add_argument("--nav-iterations", type=int, default=500)
    ap.add_argument("--rl2-iterations", type=int, default=600)
    args = ap.parse_args()
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    print("| preset | iterations | return before | return after 1 step | train time |")
    print("|---|---|---|---|---|")
    for preset in ("maml-trpo-navigation", "pretrained-navigation"):
        bundle, secs = train(preset, args.nav_iterations, out)
        res = evaluate(bundle, 100, "0,1")
        cells = " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in zip(res["mean"], res["ci95"]))
        print(f"| {preset} | {args.nav_iterations} | {cells} | {secs:.0f} s |", flush=True)
    bundle, secs = train("rl2-bandits", args.rl2_iterations, out)
    res = evaluate(bundle, 500, ",".join(str(i) for i in range(10)))
    totals = np.asarray(res["per_task"]).sum(1)
    episodes = len(res["steps"])
    refs = {k: v * episodes for k, v in res["references"].items()}
    ci = 1.96 * totals.std(ddof=1) / np.sqrt(len(totals))
    print()
    print("| rl2-bandits (500 held-out tasks, 10 pulls) | mean total reward |")
    print("|---|---|")
    print(f"| RL² ({args.rl2_iterations} iterations, {secs:.0f} s) | {totals.mean():.2f} ± {ci:.2f} |")
    for name, value in refs.items():
        print(f"| {name} | {value:.2f} |")
    print(f"\nRL² / Thompson sampling = {totals.mean() / refs['Thompson sampling']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
