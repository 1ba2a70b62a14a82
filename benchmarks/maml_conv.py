"""Second-order MAML on conv4 few-shot classification: the workbench against its peers and the floor.

Setup (as ../shared/bench/maml_conv_peers.py): conv4 (4 × [conv 3×3, 64 channels, batch norm with batch
statistics, ReLU, 2×2 max-pool], linear head), 5-way 1-shot, 15 queries per class, 28×28×1 random
inputs, meta-batch 32 tasks, one inner SGD step (α = 0.4), cross-entropy, Adam 1e-3 outer step, one CPU
thread.  The workbench figure is its own MAML learner's meta_step on the built-in ``conv4`` network
(through the general torch.func path, tasks in the chunks the network picks), on real meta-batches of
the ``glyphs`` family (``--data random`` for the peers' random images; the work is the same).  The time to
sample a meta-batch is printed beside it, the first ones (characters rendered on first use) and later
ones (drawings cached), against the meta-step's.

The peers script times higher and the per-task functional_call loop (learn2learn's pattern) and the
*floor*: one plain forward + backward of the network over the same images, which no MAML step can
undercut.  Both run in this one command, so they see the same machine load.

    pip install higher
    python benchmarks/maml_conv.py [--iterations 4] [--peer-iterations 3]

Prints meta-iterations per second for each, the workbench's time per meta-iteration over the floor's
(target: ≤ 1.10), its ratio to the fastest peer, and the achieved GFLOP/s beside the matmul peak.
GFLOP/s counts the floor's work per meta-iteration (a forward and a backward pass over the support and
query images, 3 × 2 × the forward MACs), so it is comparable across the rows.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
B, N, K, Q, LR = 32, 5, 1, 15, 0.4


def glyph_batches(count: int) -> tuple[list, float, float]:
    """``count`` 5-way 1-shot meta-batches of the glyph family, and the seconds per batch of sampling the
    first ``count`` (drawings rendered on first use) and of ``count`` more (mostly from the cache)."""
    import torch

    from workbench.tasks.glyphs import Glyphs, GlyphsConfig

    fam = Glyphs(GlyphsConfig(ways=N, shots=K, query=Q))
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    batches = [fam.sample_batch(B, g) for _ in range(count)]
    cold = (time.perf_counter() - t) / count
    for _ in range(400):  # the cache after a few hundred meta-iterations: most characters drawn once
        fam.background.images(torch.randint(0, 4000, (B * N,), generator=g), torch.zeros(B * N, dtype=torch.int64))
    t = time.perf_counter()
    for _ in range(count):
        fam.sample_batch(B, g)
    return batches, cold, (time.perf_counter() - t) / count


def workbench_seconds(iterations: int, data: str = "glyphs") -> float:
    """Seconds per meta-iteration of the workbench's second-order MAML on conv4 (best of 2 runs)."""
    import torch

    from workbench.core.config import ModelConfig
    from workbench.core.registry import ALGORITHMS
    from workbench.models.zoo import build_network
    from workbench.tasks.base import TaskBatch

    torch.set_num_threads(1)

    class Family:  # what the learner reads of a family: its loss and metric
        kind, loss, metric, in_shape, out_dim = "classification", "cross_entropy", "accuracy", (1, 28, 28), N

    net = build_network(ModelConfig(name="conv4"), (1, 28, 28), N, "cross_entropy")
    cls = ALGORITHMS.get("maml")
    cfg = cls.Config(inner_lr=LR, inner_steps=1, first_order=False, meta_batch=B, outer_lr=1e-3)
    learner = cls(cfg, net, torch.device("cpu"), torch.Generator().manual_seed(0), iterations, family=Family())
    g = torch.Generator().manual_seed(0)
    if data == "glyphs":
        real, cold, warm = glyph_batches(iterations + 1)
        print(f"sampling a glyph meta-batch: {cold * 1e3:6.1f} ms at first (rendering), {warm * 1e3:6.1f} ms "
              f"once cached")
        real = iter(real * 3)

    def batch():
        if data == "glyphs":
            return next(real)
        xs = torch.randn(B, N * K, 1, 28, 28, generator=g)
        xq = torch.randn(B, N * Q, 1, 28, 28, generator=g)
        ys = torch.arange(N).repeat_interleave(K).expand(B, -1).contiguous()
        yq = torch.arange(N).repeat_interleave(Q).expand(B, -1).contiguous()
        return TaskBatch(torch.zeros(B, 1), xs, ys, xq, yq)

    learner.meta_step(batch(), 0)  # warm-up
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        for i in range(iterations):
            learner.meta_step(batch(), i)
        best = min(best, (time.perf_counter() - t) / iterations)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--peer-iterations", type=int, default=3)
    ap.add_argument("--data", choices=("glyphs", "random"), default="glyphs")
    ap.add_argument("--peers", default=str(REPO.parent / "shared" / "bench" / "maml_conv_peers.py"))
    args = ap.parse_args()

    figures: dict[str, float] = {}
    if Path(args.peers).is_file():
        for kind in ("loop", "higher"):
            r = subprocess.run([sys.executable, args.peers, kind, str(args.peer_iterations)], capture_output=True,
                               text=True)
            if r.returncode != 0:
                print(f"{kind}: not measured ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})")
                continue
            out = r.stdout
            for line in out.splitlines():
                m = re.match(r"(\S+)\s+([\d.]+) (meta-it/s|GFLOP/s|GMAC)", line)
                if m and (m.group(1) == kind or m.group(1) not in figures):
                    figures[m.group(1)] = float(m.group(2))
                    if m.group(1) == kind:
                        print(line)
        for name in ("floor", "matmul-peak", "forward-macs"):
            if name in figures:
                unit = {"floor": "meta-it/s", "matmul-peak": "GFLOP/s", "forward-macs": "GMAC"}[name]
                print(f"{name:12s} {figures[name]:8.3f} {unit}")
    else:
        print(f"peers script not found at {args.peers}; workbench figure only")

    seconds = workbench_seconds(args.iterations, args.data)
    print(f"{'workbench':12s} {1 / seconds:8.3f} meta-it/s  (second order, conv4, 1 thread)")
    if "floor" in figures:
        ratio = seconds * figures["floor"]
        print(f"time per meta-iteration / floor's: {ratio:5.2f}  (target <= 1.10: {'meets' if ratio <= 1.10 else 'misses'})")
    peers = {k: v for k, v in figures.items() if k in ("loop", "higher")}
    if peers:
        fastest = max(peers, key=peers.get)
        print(f"workbench / fastest peer ({fastest}): {1 / seconds / peers[fastest]:5.2f}x")
    if "forward-macs" in figures:
        flops = 3 * 2 * figures["forward-macs"]  # GFLOP of a forward + backward pass over the meta-batch
        line = f"achieved {flops / seconds:6.1f} GFLOP/s"
        if "floor" in figures:
            line += f" (floor {flops * figures['floor']:6.1f})"
        if "matmul-peak" in figures:
            line += f"; matmul peak {figures['matmul-peak']:6.1f} GFLOP/s"
        print(line)


if __name__ == "__main__":
    main()
