"""What the user waits for: `workbench train maml-sinusoid` end to end, against higher, in one run.

The workbench figure is the wall time of the whole command as a user types it — the preset's 20,000
meta-iterations, start-up (the torch import included), recording, checkpoints, the held-out evaluations
and the bundle.  The peer is higher (``../shared/bench/maml_peers.py``) on the same setup, timed over
``--peer-iterations`` meta-iterations just before and just after the workbench run (their mean rate) and
scaled to the preset's count: what the same training takes with it, leaving out everything but its
meta-steps (so the comparison favours the peer).

    pip install higher
    python benchmarks/train_end_to_end.py [--iterations 20000] [--peer-iterations 300]

Prints both times and their ratio (target: the workbench >= 30x faster).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--peer-iterations", type=int, default=300)
    ap.add_argument("--peers", default=str(REPO.parent / "shared" / "bench" / "maml_peers.py"))
    args = ap.parse_args()

    have_peer = Path(args.peers).is_file()
    # the peer is timed just before and just after the workbench, and their mean is used: on a shared
    # machine a slow spell then hits both sides of the ratio alike
    rates = [peer_rate(args)] if have_peer else []
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "workbench", "train", "maml-sinusoid", "--out", str(Path(tmp) / "run"),
                   "--iterations", str(args.iterations)]
        start = time.perf_counter()
        r = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(f"workbench train failed: {r.stderr.strip().splitlines()[-1]}")
    print(f"workbench train maml-sinusoid ({args.iterations} iterations): {wall:7.1f} s wall, "
          f"{args.iterations / wall:6.0f} it/s end to end")
    print("  " + r.stderr.strip().splitlines()[-1])
    if not have_peer:
        print(f"peers script not found at {args.peers}; workbench figure only")
        return
    rates.append(peer_rate(args))
    peer = sum(rates) / len(rates)
    peer_seconds = args.iterations / peer
    print(f"higher: {peer:6.1f} meta-it/s (before {rates[0]:.1f}, after {rates[1]:.1f}) -> {peer_seconds:7.1f} s "
          f"for {args.iterations} iterations (meta-steps only)")
    ratio = peer_seconds / wall
    print(f"ratio higher / workbench (end to end): {ratio:5.1f}x  (target >= 30x: {'meets' if ratio >= 30 else 'misses'})")


def peer_rate(args) -> float:
    """higher's meta-iterations per second on the same setup (``../shared/bench/maml_peers.py``)."""
    out = subprocess.run([sys.executable, args.peers, "higher", str(args.peer_iterations)], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"higher\s+([\d.]+) meta-it/s", out).group(1))


if __name__ == "__main__":
    main()
