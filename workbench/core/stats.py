"""Small statistics helpers for adaptation curves."""
from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=4096)
def _t975(dof: int) -> float:
    # scipy.special.stdtrit is what scipy.stats.t.ppf evaluates (the inverse of Student's t CDF); importing
    # it costs a fraction of importing scipy.stats, which every `workbench train` and `eval` would pay
    from scipy.special import stdtrit

    return float(stdtrit(dof, 0.975))


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom (``scipy.stats.t.ppf(0.975, dof)``,
    exact to double precision): the half-width factor of a two-sided 95% confidence interval of a mean of
    ``dof + 1`` samples.  ``dof`` is a count (an int, or a numpy integer); NaN for ``dof < 1``."""
    if dof < 1:
        return float("nan")
    return _t975(int(dof))


def mean_ci95(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% confidence interval of the mean along ``axis``.

    The reporting rule for diverged tasks, everywhere (eval.csv, ``workbench eval``, the Python API, the
    app's curves): where any sample is not finite (a task whose loss overflowed), the mean and its CI are
    NaN — "diverged" — never inf and never a mean of the tasks that survived.  Which tasks diverged, and
    from which step, is :func:`divergence`'s."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(samples).all(axis)
        mean = np.where(bad, np.nan, samples.mean(axis))
        if n < 2:
            return mean, np.full_like(mean, np.nan)  # undefined from a single sample
        sem = samples.std(axis, ddof=1) / math.sqrt(n)
    return mean, np.where(bad, np.nan, t975(n - 1) * sem)


def divergence(per_task: np.ndarray, steps: list | None = None) -> dict[int, int]:
    """{task index: the first step at which its value is not finite} for every task of ``per_task``
    (tasks, len(steps)) that diverged; steps are ``steps[j]`` (default: column indices)."""
    per_task = np.asarray(per_task, dtype=np.float64)
    if per_task.ndim != 2 or per_task.size == 0:
        return {}
    bad = ~np.isfinite(per_task)
    rows = np.flatnonzero(bad.any(1))
    first = bad.argmax(1)
    steps = list(range(per_task.shape[1])) if steps is None else list(steps)
    return {int(t): int(steps[first[t]]) for t in rows}


def describe_divergence(diverged: dict[int, int], tasks: int, shown: int = 5) -> str:
    """'7 of 100 tasks diverged: task 3 from step 8, task 17 from step 9, ... (first at step 8)'."""
    if not diverged:
        return ""
    items = sorted(diverged.items(), key=lambda kv: (kv[1], kv[0]))
    listed = ", ".join(f"task {t} from step {s}" for t, s in items[:shown]) + (", ..." if len(items) > shown else "")
    return f"{len(items)} of {tasks} tasks diverged (the loss overflowed): {listed}"


def ema_tensorboard(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing (its line chart's ``resmoothDataset``): a debiased exponential moving average.

    last = weight * last + (1 - weight) * v;  smoothed = last / (1 - weight ** n)  (n finite values so far;
    no debiasing at weight 1).  Non-finite values are shown as they are and leave the average alone; a
    constant series is shown unsmoothed.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) and np.all(values == values[0]):
        return values.copy()
    return ema_continue(values, weight, 0.0, 0)[0]


def ema_continue(values, weight: float, last: float, n: int) -> tuple[np.ndarray, float, int]:
    """:func:`ema_tensorboard` over ``values`` continuing from state (last, n); returns (smoothed, last, n).
    (A live curve cannot know it will stay constant: there the debiased average equals the constant.)"""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    if weight <= 0:
        out[:] = values
        return out, last, n
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            out[i] = v
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out[i] = last / (1 - weight ** n) if weight < 1 else last
    return out, last, n
