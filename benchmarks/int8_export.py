"""int8 against float ONNX of adapted models: file size and the metric on held-out data of each task.

For each bundle, N fresh test-stream tasks of its family: the model is adapted to each task's support set
(RL: to the task by its own trajectories) as ``workbench adapt`` does, written as float ONNX and as int8 ONNX
(onnxruntime's dynamic quantisation), and both are measured on the task's held-out query set (RL: the
return of deterministic episodes in the task).  Prints sizes, their ratio, both metrics (mean ± 95% CI
over the tasks) and the paired change.

    python benchmarks/int8_export.py BUNDLE [BUNDLE ...] [--tasks 20]

e.g. the sinusoid, classification and navigation bundles of `workbench train maml-sinusoid`,
`maml-glyphs-5w1s` / `protonet-glyphs-5w1s` and `maml-trpo-navigation`.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workbench  # noqa: E402
from workbench.core import seeding  # noqa: E402
from workbench.core.stats import mean_ci95  # noqa: E402
from workbench.services import adapt as ad  # noqa: E402
from workbench.services.onnx_export import quantize_int8, run_onnx  # noqa: E402


def one_task(model, batch, i: int, folder: Path) -> tuple[float, float, int, int]:
    """(float metric, int8 metric, float bytes, int8 bytes) of the model adapted to task ``i``."""
    fam = model.family
    if fam.kind == "rl":
        row = batch.params[i:i + 1]
        adapted = ad.adapt_policy(model, row, None, seed=i)
        samples = None
    else:
        samples = ad.Samples(batch.xs[i].numpy(), batch.ys[i].numpy(), f"task {i}")
        adapted = ad.adapt_supervised(model, samples, None)
    ad.write_adapted(model, adapted, folder, f"task {i}")
    onnx, int8 = folder / ad.FLOAT_ONNX, quantize_int8(folder / ad.FLOAT_ONNX, folder / ad.INT8_ONNX)
    if fam.kind == "rl":
        spec, n = model.learner.policy.spec, model.learner.eval_trajectories
        metric = [ad.policy_return(fam, spec, fam.discrete_actions, lambda o, p=p: run_onnx(p, o), row, n, i)
                  for p in (onnx, int8)]
    else:
        xq, yq = batch.xq[i].numpy(), batch.yq[i].numpy()
        metric = [ad.supervised_metric(fam.metric, run_onnx(p, xq), yq) for p in (onnx, int8)]
    return metric[0], metric[1], onnx.stat().st_size, int8.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'bundle':<34} {'metric':>8} {'float B':>9} {'int8 B':>9} {'ratio':>6} {'float':>17} {'int8':>17} "
          f"{'change (paired)':>18}")
    for path in args.bundles:
        model = workbench.load_model(path)
        batch = model.family.evaluation_batch(args.tasks, args.seed, stream=seeding.TEST)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.tasks):
                rows.append(one_task(model, batch, i, Path(tmp) / f"t{i}"))
        a = np.asarray(rows, dtype=np.float64)
        (mf, mq), (cf, cq) = mean_ci95(a[:, :2])
        dm, dc = mean_ci95(a[:, 1] - a[:, 0])
        name = Path(path).parent.name if Path(path).name == "model.safetensors" else Path(path).name
        label = f"{name} ({model.algorithm})"
        print(f"{label:<34} {model.family.metric:>8} {int(a[0, 2]):>9,} {int(a[0, 3]):>9,} "
              f"{a[0, 3] / a[0, 2]:>6.2f} {mf:>9.4f} ± {cf:<6.4f} {mq:>9.4f} ± {cq:<6.4f} {dm:>+9.4f} ± {dc:<7.4f}")


if __name__ == "__main__":
    main()
