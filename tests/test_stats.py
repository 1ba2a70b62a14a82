"""Student-t quantiles (core/stats.py, from scipy) and the confidence intervals built on them."""
import math

import numpy as np
import pytest

from workbench.core.stats import mean_ci95, t975

# t_{0.975, dof}, to 6 decimals (published tables / R's qt(0.975, dof))
KNOWN = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 9: 2.262157, 10: 2.228139,
         19: 2.093024, 29: 2.045230, 30: 2.042272, 31: 2.039513, 60: 2.000298, 99: 1.984217, 120: 1.979930,
         1000: 1.962339}


@pytest.mark.parametrize("dof, expected", sorted(KNOWN.items()))
def test_t975_matches_published_values(dof, expected):
    assert abs(t975(dof) - expected) < 1e-6


def test_t975_is_scipys_quantile_for_every_dof_used():
    from scipy.stats import t as student_t

    dofs = np.r_[1:301, 500, 1999, 10_000, 100_000]
    got = np.array([t975(int(d)) for d in dofs])
    np.testing.assert_allclose(got, student_t.ppf(0.975, dofs), rtol=0, atol=1e-9)
    assert t975(np.int64(9)) == t975(9)  # a numpy count (runs.aggregate passes one)
    assert abs(t975(10 ** 9) - 1.959964) < 1e-6  # the normal quantile in the limit
    for bad in (0, -3):
        assert math.isnan(t975(bad))


def test_mean_ci95_is_the_student_t_interval():
    samples = np.arange(10.0)  # mean 4.5, sd sqrt(110/12)
    mean, half = mean_ci95(samples)
    assert mean == pytest.approx(4.5)
    assert half == pytest.approx(2.262157 * math.sqrt(110 / 12) / math.sqrt(10), abs=1e-6)
    mean, half = mean_ci95(np.array([[1.0, 2.0], [3.0, math.inf]]))  # a diverged column is NaN, not inf
    assert mean[0] == 2.0 and math.isnan(mean[1]) and math.isnan(half[1])
    assert math.isnan(mean_ci95(np.array([1.0]))[1])  # one sample: no interval
