"""The task-space map: where in (and just outside) its task distribution a meta-learner adapts well.

A family with continuous task parameters declares them (:meth:`map_params` of the family: a list of
:class:`MapParam` with the range training samples from).  A map takes one or two of them, lays a grid over
each that reaches ``margin`` of the range's width beyond both ends (never past the parameter's floor or
ceiling: a mass stays positive), and evaluates the model on ``tasks_per_cell`` tasks at every grid point, the
other parameters drawn as in training.  Every cell reports the family's metric before adaptation (step 0)
and after ``steps`` inner steps, with its 95% CI over the cell's tasks; a baseline (a pretrained model,
fine-tuned the same way) gives the gap.  All of a map's tasks are one batch: cell ``c`` (row-major over
the axes) holds tasks ``c * tasks_per_cell .. (c + 1) * tasks_per_cell - 1``.

Classification families map ``shots`` (an integer setting of the task, not a parameter row): one batch per
grid value.

The arithmetic lives here (Qt-free); the trainer emits a coarse map at each evaluation, ``workbench taskmap``
and the app's Task map view a full one of a bundle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import losses, seeding
from .errors import ConfigError
from .stats import mean_ci95

MAX_GRID = 201  # grid points per axis
MAX_TASKS = 200_000  # tasks of one map (cells x tasks per cell)
DEFAULT_MARGIN = 0.4  # of the training range's width, beyond each end
MAP_STREAM = "taskmap"  # the random stream of the parameters a map does not set


@dataclass(frozen=True)
class MapParam:
    """One task parameter a map can lay a grid over: training samples it from [low, high]; the grid may
    reach down to ``floor`` and up to ``ceiling`` (where the task stops making sense)."""
    name: str
    label: str  # for the user, with its unit
    low: float
    high: float
    floor: float = -math.inf
    ceiling: float = math.inf
    integer: bool = False  # a count (shots): integer grid values
    column: int | None = None  # its column in the family's task-parameter rows; None: a setting (shots)

    def grid(self, points: int, margin: float) -> np.ndarray:
        """``points`` values from ``margin`` x width below ``low`` to as far above ``high`` (clipped to
        [floor, ceiling]).  An integer setting (shots) spans [floor, ceiling]: every integer of it, or
        ``points`` of them spread evenly."""
        if self.integer:
            lo, hi = int(self.floor), int(self.ceiling)
            return np.unique(np.round(np.linspace(lo, hi, min(points, hi - lo + 1)))).astype(np.float64)
        width = self.high - self.low
        pad = margin * (width if width > 0 else max(abs(self.low), 1.0))
        return np.linspace(max(self.low - pad, self.floor), min(self.high + pad, self.ceiling), points)

    @classmethod
    def of_range(cls, name: str, label: str, low: float, high: float, column: int | None = None) -> "MapParam":
        """A parameter trained on [low, high]: a positive one (low > 0: a mass, a length) keeps the grid
        above low / 4; a non-negative one (low = 0) above 0; others are unbounded."""
        floor = low / 4 if low > 0 else 0.0 if low == 0 else -math.inf
        return cls(name, label, float(low), float(high), floor, math.inf, False, column)


@dataclass
class TaskMap:
    """A map's numbers (numpy only, no shared memory with a model); ``before`` / ``after`` / ``after_ci95``
    / ``baseline`` have the grid's shape: (n0,) for one parameter, (n0, n1) for two (axis 0 the first)."""
    family: str
    metric: str  # "mse" (lower is better), "accuracy" or "return" (higher is better)
    params: list[MapParam]
    axes: list[np.ndarray]  # the grid values of each parameter
    steps: int  # inner steps of "after"
    tasks_per_cell: int
    seed: int
    before: np.ndarray
    after: np.ndarray
    after_ci95: np.ndarray
    baseline: np.ndarray | None = None  # the baseline's metric after the same steps
    iteration: int = 0  # the training iteration it was made at (live maps)
    step_label: str = "inner step"
    notes: dict = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return losses.higher_is_better(self.metric)

    @property
    def gain(self) -> np.ndarray:
        """after − before: what adaptation changed (MSE: negative is better)."""
        return self.after - self.before

    @property
    def gap(self) -> np.ndarray | None:
        """after − the baseline's after (MSE: negative is where the meta-learner beats the baseline)."""
        return None if self.baseline is None else self.after - self.baseline

    def inside(self) -> np.ndarray:
        """A boolean grid: True where every coordinate lies in its training range."""
        masks = [(a >= p.low - 1e-12) & (a <= p.high + 1e-12) for p, a in zip(self.params, self.axes)]
        return masks[0] if len(masks) == 1 else masks[0][:, None] & masks[1][None, :]

    def cell_values(self, index: tuple[int, ...]) -> dict[str, float]:
        """The mapped parameters of cell ``index``: {name: value}."""
        return {p.name: float(a[i]) for p, a, i in zip(self.params, self.axes, index)}

    def to_dict(self) -> dict:
        """The JSON document of ``workbench taskmap --json`` (NaN: null)."""
        def grid(a):
            return None if a is None else [_clean(v) for v in a.tolist()] if a.ndim == 1 else \
                [[_clean(v) for v in row] for row in a.tolist()]

        return {"family": self.family, "metric": self.metric, "steps": self.steps,
                "params": [p.name for p in self.params],
                "axes": [{"name": p.name, "label": p.label, "values": [float(v) for v in a],
                          "train_range": [p.low, p.high]} for p, a in zip(self.params, self.axes)],
                "tasks_per_cell": self.tasks_per_cell, "seed": self.seed,
                "before": grid(self.before), "after": grid(self.after), "after_ci95": grid(self.after_ci95),
                "gain": grid(self.gain), "baseline": grid(self.baseline), "gap": grid(self.gap),
                "inside_training_range": self.inside().tolist()}


def _clean(v: float):
    return float(v) if math.isfinite(v) else None


def map_params(family) -> list[MapParam]:
    """The parameters ``family`` can map (its ``map_params()``; none when it declares none)."""
    fn = getattr(family, "map_params", None)
    return list(fn()) if fn is not None else []


def choose_params(family, names: list[str] | None, where: str = "--params") -> list[MapParam]:
    """The map's parameters: ``names`` (one or two of the family's), or its first two by default.
    ConfigError (one line) for a family without any or for a name it does not have."""
    known = map_params(family)
    if not known:
        raise ConfigError(f"{where}: the {family.name} family has no continuous task parameters to map")
    if not names:  # the first two, or a setting (shots) on its own
        return known[:1] if known[0].column is None else known[:2]
    by_name = {p.name: p for p in known}
    if len(names) > 2 or len(set(names)) != len(names):
        raise ConfigError(f"{where} = {','.join(names)}: name one or two different parameters")
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(f"{where} = {','.join(names)}: the {family.name} family has no task parameter "
                          f"{missing[0]!r}; it has {', '.join(by_name)}")
    chosen = [by_name[n] for n in names]
    if len(chosen) == 2 and any(p.column is None for p in chosen):
        raise ConfigError(f"{where} = {','.join(names)}: {next(p.name for p in chosen if p.column is None)} "
                          f"is mapped on its own")
    return chosen


def grid_axes(params: list[MapParam], points: int, margin: float, where: str = "--grid") -> list[np.ndarray]:
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_GRID:
        raise ConfigError(f"{where} = {points!r}: the grid needs 2 to {MAX_GRID} points per parameter")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and 0 <= margin <= 10):
        raise ConfigError(f"--margin = {margin!r}: a fraction of the training range in [0, 10]")
    return [p.grid(points, float(margin)) for p in params]


def cells_of(axes: list[np.ndarray]) -> int:
    return int(np.prod([len(a) for a in axes]))


def grid_tasks(family, params: list[MapParam], axes: list[np.ndarray], tasks_per_cell: int,
               generator: torch.Generator) -> torch.Tensor:
    """Task-parameter rows (cells x tasks_per_cell, P) of every cell, row-major over the axes: the mapped
    columns set to the cell's values, the others drawn as in training."""
    n = cells_of(axes) * tasks_per_cell
    rows = family.sample_task_params(n, generator).clone()
    mesh = np.meshgrid(*axes, indexing="ij")
    for p, m in zip(params, mesh):
        values = torch.as_tensor(m.reshape(-1), dtype=rows.dtype).repeat_interleave(tasks_per_cell)
        rows[:, p.column] = values
    return rows


def build_map(family, evaluate: Callable, params: list[MapParam], axes: list[np.ndarray], steps: int,
              tasks_per_cell: int, seed: int, stream: str = seeding.TEST, baseline: Callable | None = None,
              iteration: int = 0, step_label: str = "inner step") -> TaskMap:
    """Evaluate a model over the grid.  ``evaluate(batch, steps)`` gives every task's metric after 0..steps
    inner steps, (tasks, steps + 1) numpy; ``baseline`` the same for the baseline model (on the same
    tasks).  The tasks and their data come from ``stream`` / ``seed`` (see :func:`grid_batches`)."""
    shape = tuple(len(a) for a in axes)
    results = [], []
    for batch in grid_batches(family, params, axes, tasks_per_cell, seed, stream):
        results[0].append(np.asarray(evaluate(batch, steps), dtype=np.float64))
        if baseline is not None:
            results[1].append(np.asarray(baseline(batch, steps), dtype=np.float64))
    per_task = np.concatenate(results[0])  # (cells * tpc, steps + 1)
    cells = per_task.reshape(*shape, tasks_per_cell, -1)
    before, _ = mean_ci95(cells[..., 0], axis=-1)
    after, ci = mean_ci95(cells[..., -1], axis=-1)
    base = None
    if baseline is not None:
        base, _ = mean_ci95(np.concatenate(results[1]).reshape(*shape, tasks_per_cell, -1)[..., -1], axis=-1)
    return TaskMap(family.name, family.metric, list(params), [np.asarray(a, np.float64) for a in axes], steps,
                   tasks_per_cell, seed, before, after, ci, base, iteration, step_label)


def grid_batches(family, params: list[MapParam], axes: list[np.ndarray], tasks_per_cell: int, seed: int,
                 stream: str = seeding.TEST):
    """The map's task batches, in cell order: one batch of every cell's tasks (the unmapped parameters drawn
    from the ``taskmap`` stream, the support / query sets from ``seeding.generator(stream, seed)``, as
    ``evaluate(task_params=rows, seed=seed)`` of a bundle draws them), or for a ``shots`` map one
    evaluation batch per grid value (``family.evaluation_batch(tasks_per_cell, seed, shots=k)``)."""
    if len(params) == 1 and params[0].column is None:  # a setting of the task (shots): one batch per value
        for k in axes[0]:
            yield family.evaluation_batch(tasks_per_cell, seed, shots=int(k), stream=stream)
        return
    rows = grid_tasks(family, params, axes, tasks_per_cell, seeding.generator(MAP_STREAM, seed))
    yield family.batch_of(rows, seeding.generator(stream, seed))


def live_plan(params: list[MapParam], eval_tasks: int, eval_steps: int, trained_steps: int,
              budget: float = 0.15) -> tuple[int, int]:
    """(grid points per axis, tasks per cell) of the map made after each evaluation during training: about
    ``budget`` of the evaluation's adapted predictions (tasks x (steps + 1)) for the map's tasks x
    (trained steps + 1).  Two parameters: 4 to 15 points, one task each; one: 5 to 15 points, up to 20
    tasks each (its CI band).  benchmarks/taskmap_live.py measures the cost against the evaluation's."""
    tasks = budget * eval_tasks * (eval_steps + 1) / (trained_steps + 1)
    if len(params) == 2:
        return int(min(15, max(4, math.isqrt(max(int(tasks), 0))))), 1
    points = int(min(15, max(5, tasks // 4)))
    return points, int(min(20, max(2, tasks // points)))
