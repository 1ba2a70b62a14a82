"""Fidelity of the physics / MuJoCo presets, through the real CLI (train, then eval --json), run outside CI:

  * HalfCheetah-Vel quick look: MAML-TRPO, its pretrained baseline (same hyperparameters, no inner loop in
    training) and PEARL, each evaluated on held-out target velocities: return before adaptation and after
    adapting (MAML / pretrained: one policy-gradient step; PEARL: episodes of context);
  * RL² on CartPole physics: mean episode return on held-out physics against the return cap (the horizon).

    python benchmarks/fidelity_physics.py [--out runs/fidelity-physics] [--cheetah-iterations 150]
        [--pearl-iterations 200] [--rl2-iterations N] [--only maml,pretrained,pearl,rl2]

The wall-clock time of each training run is printed with its row: that is the budget.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "workbench"]


def train(preset: str, out: Path, iterations: int | None, extra=()) -> tuple[str, float]:
    t = time.perf_counter()
    cmd = [*CLI, "train", str(REPO / "presets" / f"{preset}.toml"), "--out", str(out), "--quiet", *extra]
    if iterations:
        cmd += ["--iterations", str(iterations)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{preset}: {r.stderr.strip()}")
    return r.stdout.strip().splitlines()[-1], time.perf_counter() - t


def evaluate(bundle: str, tasks: int, steps: str | None) -> dict:
    cmd = [*CLI, "eval", bundle, "--tasks", str(tasks), "--json"] + (["--steps", steps] if steps else [])
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/fidelity-physics")
    ap.add_argument("--cheetah-iterations", type=int, default=150)
    ap.add_argument("--pearl-iterations", type=int, default=200)
    ap.add_argument("--rl2-iterations", type=int, default=None)
    ap.add_argument("--only", default="maml,pretrained,pearl,rl2")
    args = ap.parse_args()
    only = set(args.only.split(","))
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    print("| run | iterations | return before | return after adapting | train time |")
    print("|---|---|---|---|---|")
    runs = [("maml", "maml-trpo-cheetah-vel-quick", args.cheetah_iterations, [], "0,1"),
            ("pretrained", "maml-trpo-cheetah-vel-quick", args.cheetah_iterations,
             ["--set", "algorithm.name=pretrained-rl"], "0,1"),
            ("pearl", "pearl-cheetah-vel-quick", args.pearl_iterations, [], "0,1,2")]
    for key, preset, its, extra, steps in runs:
        if key not in only:
            continue
        bundle, secs = train(preset, out / key, its, extra)
        res = evaluate(bundle, 30, steps)
        cells = [f"{m:.1f} ± {c:.1f}" for m, c in zip(res["mean"], res["ci95"])]
        print(f"| {key} ({preset}) | {its} | {cells[0]} | {' → '.join(cells[1:])} | {secs:.0f} s |", flush=True)
    if "rl2" in only:
        bundle, secs = train("rl2-cartpole", out / "rl2", args.rl2_iterations)
        res = evaluate(bundle, 100, None)
        cells = [f"{m:.1f} ± {c:.1f}" for m, c in zip(res["mean"], res["ci95"])]
        print(f"| rl2 (rl2-cartpole), return per episode of the trial; cap = horizon | "
              f"{args.rl2_iterations or 'preset'} | {cells[0]} | {' → '.join(cells[1:])} | {secs:.0f} s |")


if __name__ == "__main__":
    main()
