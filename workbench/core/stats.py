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
    mean = samples.mean(axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    sem = samples.std(axis, ddof=1) / math.sqrt(n)
    return mean, t975(n - 1) * sem
