"""Re-make the two small 2D-navigation bundles the playground tests use (about 20 KB each):

    navigation-maml-trpo.safetensors    MAML-TRPO, presets/maml-trpo-navigation.toml, 300 iterations, seed 0
    navigation-pretrained.safetensors   its baseline, presets/pretrained-navigation.toml, 150 iterations, seed 0

Each is exactly the `model.safetensors` of

    workbench train presets/<preset>.toml --iterations N --seed 0 --set run.threads=1 --out DIR

(on one CPU core about 2 minutes for MAML-TRPO, 3 for the pretrained policy, whose TRPO step uses every
observation).  The baseline stops at 150 iterations: trained to 300, its policy is so sure of itself that
the preset's fine-tuning step (lr 0.1) throws it off the map (held-out return -40 before, -178 after one
step), a poor picture of what fine-tuning a pretrained policy does.

Training is too slow for a test, so the bundles are committed; run this script from the repository root
to re-make them after a change to the bundle format, the policy or the navigation family:

    python tests/data/make_navigation_bundles.py

It then checks what the tests rely on: after adaptation, the meta-learned policy's trajectories end closer
to goals across the range than before, and closer than the baseline's.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUNDLES = {"maml-trpo-navigation": ("navigation-maml-trpo.safetensors", 300),
           "pretrained-navigation": ("navigation-pretrained.safetensors", 150)}


def train(preset: str, iterations: int, out: Path) -> Path:
    cmd = [sys.executable, "-m", "workbench", "train", str(REPO / "presets" / f"{preset}.toml"),
           "--iterations", str(iterations), "--seed", "0", "--set", "run.threads=1", "--quiet", "--out", str(out)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return out / "model.safetensors"


def check() -> None:
    import numpy as np

    sys.path.insert(0, str(REPO))
    from workbench.services.bundle import load_bundle
    from workbench.services.playground_rl import RLSession

    session = RLSession(load_bundle(HERE / BUNDLES["maml-trpo-navigation"][0]),
                        load_bundle(HERE / BUNDLES["pretrained-navigation"][0]))
    goals = np.random.default_rng(0).uniform(-0.5, 0.5, (30, 2))
    before, after, baseline = [], [], []
    for x, y in goals:
        r = session.run({"goal_x": float(x), "goal_y": float(y)}, steps=2)
        before.append(r.final_distance[0])
        after.append(r.final_distance[-1])
        baseline.append(r.baseline_final_distance[-1])
    closer = int((np.array(after) < np.array(before)).sum())
    print(f"final distance to the goal over {len(goals)} goals: before {np.mean(before):.3f}, after 2 steps "
          f"{np.mean(after):.3f} (closer for {closer}), baseline after 2 steps {np.mean(baseline):.3f}")
    assert np.mean(after) < 0.6 * np.mean(before) and np.mean(after) < np.mean(baseline)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for preset, (name, iterations) in BUNDLES.items():
            bundle = train(preset, iterations, Path(tmp) / preset)
            shutil.copyfile(bundle, HERE / name)
            print(f"{HERE / name}: {(HERE / name).stat().st_size} bytes")
    check()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    else:
        main()
