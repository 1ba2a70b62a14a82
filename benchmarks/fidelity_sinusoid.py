"""Fidelity on the MAML-paper sinusoid: train every shipped sinusoid preset, evaluate each on 600 fresh
10-shot tasks, print the table (algorithm x MSE at 0 / 1 / 10 steps ± 95% CI, training time).

    python benchmarks/fidelity_sinusoid.py [--iterations 20000] [--out runs/fidelity] [ALGO ...]

It drives the real CLI (``workbench train`` then ``workbench eval --json``), exactly as a user would.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALGOS = ["maml", "fomaml", "metasgd", "anil", "reptile", "pretrained", "scratch"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("algos", nargs="*", default=ALGOS)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--out", default="runs/fidelity")
    ap.add_argument("--tasks", type=int, default=600)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "workbench"]
    rows = []
    for algo in args.algos:
        run = Path(args.out) / f"{algo}-{time.strftime('%Y%m%d-%H%M%S')}"
        iters = 0 if algo == "scratch" else args.iterations
        t0 = time.perf_counter()
        out = subprocess.run([*cli, "train", str(REPO / "presets" / f"{algo}-sinusoid.toml"), "--iterations",
                              str(iters), "--out", str(run), "--quiet"], check=True, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        bundle = out.stdout.strip().splitlines()[-1]
        res = json.loads(subprocess.run([*cli, "eval", bundle, "--tasks", str(args.tasks), "--shots", "10",
                                         "--steps", "0,1,10", "--json"], check=True, capture_output=True,
                                        text=True).stdout)
        rows.append((algo, iters, res, secs))
        print(f"{algo:<11} {iters:>6} it " + "  ".join(_cell(m, c, d) for m, c, d in
                                                        zip(res["mean"], res["ci95"], res["diverged"]))
              + f"  {secs:6.1f} s", flush=True)
    print()
    print("| algorithm | iterations | MSE 0 steps | MSE 1 step | MSE 10 steps | train time |")
    print("|---|---|---|---|---|---|")
    for algo, iters, res, secs in rows:
        cells = " | ".join(_cell(m, c, d) for m, c, d in zip(res["mean"], res["ci95"], res["diverged"]))
        print(f"| {algo} | {iters} | {cells} | {secs:.0f} s |")


def _cell(mean, ci, diverged) -> str:
    return f"diverged on {diverged} tasks" if diverged else f"{mean:.3f} ± {ci:.3f}"


if __name__ == "__main__":
    main()
