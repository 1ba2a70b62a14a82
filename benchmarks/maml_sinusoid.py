"""MAML meta-iterations per second on the MAML-paper sinusoid config, against the peers, in one run.

Config: MLP 1-40-40-1 ReLU, meta-batch 25, K = 10 support + 10 query, one inner SGD step (α = 0.01),
second-order meta-gradient, Adam 1e-3, one CPU thread.  The workbench figure is its own Trainer's
throughput (task sampling + meta-step, evaluations excluded).  The peers (a per-task loop, higher,
torchopt) come from ../shared/bench/maml_peers.py, run in the same command so both see the same load.

    pip install higher torchopt
    python benchmarks/maml_sinusoid.py [--iterations 3000] [--peer-iterations 200]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def workbench_its(iterations: int, reps: int = 3) -> float:
    import torch

    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    torch.set_num_threads(1)
    best = 0.0
    for rep in range(reps):
        cfg = ExperimentConfig.load(REPO / "presets" / "maml-sinusoid.toml", [
            f"run.iterations={iterations}", "run.threads=1", f"run.eval_interval={10 * iterations}",
            f"run.seed={rep}"])
        trainer = Trainer(cfg)
        trainer.run()
        best = max(best, iterations / trainer.elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--peer-iterations", type=int, default=200)
    ap.add_argument("--peers", default=str(REPO.parent / "shared" / "bench" / "maml_peers.py"))
    args = ap.parse_args()

    peers: dict[str, float] = {}
    if Path(args.peers).is_file():
        out = subprocess.run([sys.executable, args.peers, "loop,higher,torchopt", str(args.peer_iterations)],
                             capture_output=True, text=True, check=True).stdout
        print(out.rstrip())
        for line in out.splitlines():
            m = re.match(r"(\S+)\s+([\d.]+) meta-it/s", line)
            if m:
                peers[m.group(1)] = float(m.group(2))
    else:
        print(f"peers script not found at {args.peers}; workbench figure only")

    ours = workbench_its(args.iterations)
    print(f"{'workbench':9s} {ours:8.1f} meta-it/s  (eager, second order, 1 thread)")
    for name, its in peers.items():
        print(f"ratio workbench / {name}: {ours / its:6.1f}x")
    if "higher" in peers:
        verdict = "meets" if ours / peers["higher"] >= 35 else "misses"
        print(f"target >= 35x higher: {verdict} ({ours / peers['higher']:.1f}x)")


if __name__ == "__main__":
    main()
