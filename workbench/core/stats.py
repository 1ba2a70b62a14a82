"""Small statistics helpers for adaptation curves."""
from __future__ import annotations

import math

import numpy as np

# two-sided 97.5% quantiles of Student's t for small samples; the normal value beyond
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def t975(dof: int) -> float:
    if dof <= 0:
        return float("nan")
    for k in sorted(_T975):
        if dof <= k:
            return _T975[k]
    return 1.960


def mean_ci95(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% confidence interval of the mean along ``axis``."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):  # diverged tasks give inf / NaN, reported as such
        mean = samples.mean(axis)
        if n < 2:
            return mean, np.full_like(mean, np.nan)  # undefined from a single sample
        sem = samples.std(axis, ddof=1) / math.sqrt(n)
    return mean, t975(n - 1) * sem


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
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            out[i] = last / (1 - weight ** n) if n else v
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out[i] = last / (1 - weight ** n)
    return out, last, n
