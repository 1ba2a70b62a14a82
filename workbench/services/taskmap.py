"""The task-space map of a model bundle (``workbench taskmap``, the app's Task map view): the arithmetic is
:mod:`workbench.core.taskmap`'s; this checks what the user asked for against the bundle, before anything
is allocated, and runs the bundle's own adaptation over the grid.

    from workbench.services.bundle import load_bundle
    from workbench.services.taskmap import bundle_map
    m = bundle_map(load_bundle("runs/maml-sinusoid/model.safetensors"), grid=25)
    m.after            # (25, 25): held-out MSE after the trained inner steps, amplitude x phase
"""
from __future__ import annotations

import math

from workbench.core import seeding
from workbench.core.errors import ConfigError
from workbench.core.taskmap import (DEFAULT_MARGIN, MAX_TASKS, TaskMap, build_map, cells_of, choose_params,
                                    grid_axes)

from .bundle import MAX_ADAPT_STEPS, _check_memory

DEFAULT_GRID = 25
TASK_BUDGET = {"rl": 640, "regression": 2500, "classification": 1200}  # default tasks of a whole map


def bundle_map(model, params: list[str] | None = None, grid: int = DEFAULT_GRID, steps: int | None = None,
               tasks_per_cell: int | None = None, seed: int = 0, margin: float = DEFAULT_MARGIN, baseline=None,
               cancel=None) -> TaskMap:
    """The task-space map of ``model`` (a loaded bundle) over ``params`` (one or two of its family's map
    parameters; default its first two), ``grid`` points per parameter, after ``steps`` inner steps (default:
    as trained), ``tasks_per_cell`` tasks per grid point (default: a budget of tasks over the cells), on
    the test stream with ``seed``; ``baseline`` (another bundle of the family) gives the gap layer.
    Raises ConfigError (one line naming the option and the value) for anything that cannot be mapped."""
    family = model.family
    chosen = choose_params(family, params)
    axes = grid_axes(chosen, grid, margin)
    cells = cells_of(axes)
    if steps is None:
        steps = model.trained_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_ADAPT_STEPS:
        raise ConfigError(f"--steps = {steps!r}: a number of inner steps in [0, {MAX_ADAPT_STEPS}]")
    model.check_steps(steps)
    if tasks_per_cell is None:
        tasks_per_cell = max(1, min(50, TASK_BUDGET[family.kind] // cells))
    if isinstance(tasks_per_cell, bool) or not isinstance(tasks_per_cell, int) or tasks_per_cell < 1:
        raise ConfigError(f"--tasks-per-cell = {tasks_per_cell!r}: a positive number of tasks")
    total = cells * tasks_per_cell if chosen[0].column is not None else tasks_per_cell
    if cells * tasks_per_cell > MAX_TASKS:
        raise ConfigError(f"--grid = {grid}: {cells} cells x {tasks_per_cell} tasks = {cells * tasks_per_cell} tasks "
                          f"is more than a map may evaluate ({MAX_TASKS}); use a smaller grid or fewer tasks per cell")
    _check_memory(model, total, steps)
    if baseline is not None:
        if baseline.meta.get("family") != model.meta.get("family"):
            raise ConfigError(f"--baseline {baseline.path}: a {baseline.meta.get('family')} model; the mapped model "
                              f"is {model.meta.get('family')}")
        if dict(baseline.meta.get("task", {})) != dict(model.meta.get("task", {})):
            changed = sorted(k for k in set(baseline.meta.get("task", {})) | set(model.meta.get("task", {}))
                             if baseline.meta["task"].get(k) != model.meta["task"].get(k))
            raise ConfigError(f"--baseline {baseline.path}: trained on other {model.meta.get('family')} tasks "
                              f"(task.{changed[0]} = {baseline.meta['task'].get(changed[0])!r}, the model's "
                              f"{model.meta['task'].get(changed[0])!r})")
        baseline.check_steps(steps, f"--baseline {baseline.path}: ")
        _check_memory(baseline, total, steps)

    def evaluate(batch, s):
        return model.curve(batch, s, cancel)

    def evaluate_baseline(batch, s):
        return baseline.curve(batch, s, cancel)

    label = "inner step"
    if hasattr(model, "learner") and getattr(model.learner, "step_label", None):
        label = model.learner.step_label
    m = build_map(family, evaluate, chosen, axes, steps, tasks_per_cell, seed, seeding.TEST,
                  evaluate_baseline if baseline is not None else None,
                  int(model.meta.get("training", {}).get("iterations", 0)), label)
    m.notes = {"algorithm": model.algorithm, "bundle": str(model.path),
               "baseline": str(baseline.path) if baseline is not None else None}
    return m


def describe_map(m: TaskMap) -> list[str]:
    """A few lines for a terminal: where the model does best and worst, inside and outside training."""
    better = max if m.higher_is_better else min
    worse = min if m.higher_is_better else max
    inside = m.inside()
    lines = [f"{m.family} {m.notes.get('algorithm', '')}: held-out {m.metric} after {m.steps} {m.step_label}(s) "
             f"over {' x '.join(p.name for p in m.params)} ({' x '.join(str(len(a)) for a in m.axes)} points, "
             f"{m.tasks_per_cell} task(s) each)"]
    for name, mask in (("inside the training range", inside), ("outside it", ~inside)):
        values = m.after[mask]
        values = values[[math.isfinite(v) for v in values]] if values.size else values
        if values.size:
            lines.append(f"  {name}: mean {values.mean():.4g}, best {better(values):.4g}, worst {worse(values):.4g}")
        elif mask.any():
            lines.append(f"  {name}: every point diverged (a task's {m.metric} overflowed)")
    return lines
