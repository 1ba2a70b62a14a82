"""Few-shot classification fidelity: 5-way 1-shot and 5-shot accuracy on 600 held-out tasks of the glyph
family, for Prototypical Networks, MAML (second order), FOMAML, ANIL and the pretrained baseline, each
trained from its shipped preset within a CPU budget; and a cosine nearest-neighbour classifier on raw
pixels, the difficulty yardstick of Vinyals et al. 2016 (Omniglot: 41.7% at 5-way 1-shot, 63.2% at 5-shot).

    python benchmarks/fidelity_classification.py [--shots 1,5] [--methods protonet,maml,...]
        [--minutes 20] [--out DIR] [--tasks 600]

Each (method, shots) pair trains ``<preset>`` (``maml-glyphs-5w1s`` and so on; FOMAML is the MAML preset
with ``algorithm.first_order = true``) with ``workbench train`` for the preset's iterations, stopped as
Ctrl-C stops it if it passes ``--minutes`` (its bundle then holds the parameters reached), then runs
``workbench eval --json --tasks 600`` at the trained shots after the preset's evaluation steps.
Prints one table row per pair and the targets: ProtoNets and MAML >= 90% at 1-shot
and >= 97% at 5-shot, raw-pixel nearest neighbour <= 50% at 1-shot, the pretrained baseline below both
meta-learners at 1-shot.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = {  # name: (preset stem, extra overrides, eval steps)
    "protonet": ("protonet-glyphs", [], "0"),
    "maml": ("maml-glyphs", [], "0,1,3"),
    "fomaml": ("maml-glyphs", ["algorithm.first_order=true"], "0,1,3"),
    "anil": ("anil-glyphs", [], "0,1,3"),
    "pretrained": ("pretrained-glyphs", [], "0,20"),
}


def pixel_nearest_neighbour(shots: int, tasks: int) -> tuple[float, float]:
    """Accuracy ± 95% CI of a cosine nearest-neighbour classifier on raw pixels (Vinyals et al. 2016)."""
    from workbench.core.stats import mean_ci95
    from workbench.tasks.glyphs import Glyphs, GlyphsConfig

    fam = Glyphs(GlyphsConfig(shots=shots))
    b = fam.evaluation_batch(tasks, 0, stream="test")
    s = torch.nn.functional.normalize(b.xs.flatten(2), dim=-1)
    q = torch.nn.functional.normalize(b.xq.flatten(2), dim=-1)
    pred = b.ys.gather(1, (q @ s.transpose(1, 2)).argmax(-1))
    per_task = (pred == b.yq).double().mean(-1, keepdim=True).numpy()
    mean, ci = mean_ci95(per_task)
    return float(mean[0]), float(ci[0])


def train(preset: str, overrides: list[str], out: Path, minutes: float) -> None:
    """Train ``preset`` into ``out``, stopped after ``minutes``."""
    args = [sys.executable, "-m", "workbench", "train", preset, "--out", str(out), "--quiet"]
    for o in overrides:
        args += ["--set", o]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the run stops with its checkpoint and bundle written
        proc.wait()
    if not (out / "model.safetensors").is_file():
        status = json.loads((out / "status.json").read_text())
        raise SystemExit(f"{preset}: no bundle ({status.get('status')}: {status.get('message')})")


def _bundle_meta(path: Path) -> dict:
    """The safetensors header's ``__metadata__`` of a bundle (JSON strings; nothing else is read)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def evaluate(out: Path, shots: int, tasks: int, steps: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "workbench", "eval", str(out), "--json", "--tasks", str(tasks),
                        "--shots", str(shots), "--steps", steps], capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        raise SystemExit(f"eval {out}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", default="1,5")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per (method, shots)")
    ap.add_argument("--tasks", type=int, default=600)
    ap.add_argument("--out", default=str(REPO / "runs" / "fidelity-classification"))
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    rows = {}
    for shots in [int(s) for s in args.shots.split(",")]:
        m, c = pixel_nearest_neighbour(shots, args.tasks)
        rows[("pixels-nn", shots)] = m
        print(f"5-way {shots}-shot  {'raw-pixel cosine NN':20s} {100 * m:5.1f}% ± {100 * c:.1f}   (no training)",
              flush=True)
        for method in args.methods.split(","):
            stem, overrides, steps = METHODS[method]
            out = root / f"{method}-5w{shots}s"
            if not (out / "model.safetensors").is_file():
                train(f"{stem}-5w{shots}s", overrides, out, args.minutes)
            training = json.loads(next(iter(_bundle_meta(out / "model.safetensors").values()))).get("training", {})
            report = evaluate(out, shots, args.tasks, steps)
            m, c = report["mean"][-1], report["ci95"][-1]
            rows[(method, shots)] = m
            print(f"5-way {shots}-shot  {method:20s} {100 * m:5.1f}% ± {100 * c:.1f}   after step {report['steps'][-1]}"
                  f" (before: {100 * report['mean'][0]:.1f}%); trained {training.get('iterations')} iterations, "
                  f"{training.get('train_seconds', float('nan')) / 60:.1f} min of meta-steps", flush=True)
    print("targets:")
    for method, shots, bar in (("protonet", 1, 0.90), ("maml", 1, 0.90), ("protonet", 5, 0.97), ("maml", 5, 0.97)):
        if (method, shots) in rows:
            print(f"  {method} 5-way {shots}-shot >= {bar:.0%}: {'meets' if rows[method, shots] >= bar else 'misses'}")
    if ("pixels-nn", 1) in rows:
        print(f"  raw-pixel NN 5-way 1-shot <= 50%: {'meets' if rows['pixels-nn', 1] <= 0.5 else 'misses'}")
    if all((m, 1) in rows for m in ("pretrained", "protonet", "maml")):
        below = rows["pretrained", 1] < min(rows["protonet", 1], rows["maml", 1])
        print(f"  pretrained below both meta-learners at 1-shot: {'meets' if below else 'misses'}")


if __name__ == "__main__":
    main()
