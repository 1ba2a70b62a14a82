"""Cost of the live task map: the coarse map the app's trainer makes after each evaluation, against that
evaluation, measured in the same process on the same model (median of repeats, one torch thread as a run's
evaluation here).  Target: the map costs at most 20% of the evaluation.

    python benchmarks/taskmap_live.py [--presets maml-sinusoid,maml-trpo-navigation,maml-glyphs-5w1s] [--repeats 5]

The map's grid is what ``Trainer.task_map`` chooses from the preset's run.eval_tasks / eval_steps
(workbench.core.taskmap.live_plan); the evaluation is ``Trainer.evaluate`` (held-out tasks x eval_steps
inner steps, and the render of run.render_tasks tasks).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.core import taskmap  # noqa: E402
from workbench.core.config import ExperimentConfig  # noqa: E402
from workbench.services.trainer import Trainer  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="maml-sinusoid,maml-trpo-navigation,maml-glyphs-5w1s")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'preset':<24} {'map grid':>12} {'map tasks':>10} {'evaluation':>11} {'map':>9} {'ratio':>7}"
          "  target <= 0.20")
    for name in args.presets.split(","):
        cfg = ExperimentConfig.load(REPO / "presets" / f"{name}.toml", [f"run.threads={args.threads}"])
        trainer = Trainer(cfg)
        trained = trainer.evaluate().trained_steps
        m = trainer.task_map(trained)
        grid = " x ".join(str(len(a)) for a in m.axes)
        t_eval = timed(trainer.evaluate, args.repeats)
        t_map = timed(lambda: trainer.task_map(trained), args.repeats)
        tasks = taskmap.cells_of(m.axes) * m.tasks_per_cell
        print(f"{name:<24} {grid:>12} {tasks:>10} {t_eval * 1e3:>9.1f}ms {t_map * 1e3:>7.1f}ms {t_map / t_eval:>7.3f}")


if __name__ == "__main__":
    main()
