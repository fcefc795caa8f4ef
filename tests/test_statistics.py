"""The study's statistics on inputs whose answers are known."""

import math

import numpy as np
import pytest

from enas.search import statistics

# Welch's t-test example of its Wikipedia article (sample A3 / A4): t = -2.46, df = 24.99, p = 0.021.
A = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
B = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_t_test_matches_the_published_example():
    t, df, p = statistics.welch_t_test(A, B)
    assert t == pytest.approx(-2.4554, abs=1e-3)
    assert df == pytest.approx(24.9885, abs=1e-3)
    assert p == pytest.approx(0.02138, abs=2e-4)
    assert statistics.welch_t_test(B, A)[2] == pytest.approx(p)  # two-sided
    assert all(math.isnan(v) for v in statistics.welch_t_test([1.0], [2.0, 3.0]))


@pytest.mark.parametrize("t,df,p", [(2.0, 10, 0.07339), (1.959964, 1e7, 0.05), (0.0, 3, 1.0), (12.706, 1, 0.05),
                                    (4.303, 2, 0.05)])
def test_student_t_p_values_from_tables(t, df, p):
    assert statistics.student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


def test_bootstrap_interval_of_a_difference():
    """Constant groups: the interval is the difference itself; noisy groups: it holds the
    difference, shrinks as the groups grow, and is reproducible from its seed."""
    assert statistics.bootstrap_difference([0.9, 0.9, 0.9], [0.8, 0.8]) == pytest.approx((0.1, 0.1, 0.1))
    rng = np.random.default_rng(0)
    small = statistics.bootstrap_difference(rng.normal(1.0, 1.0, 10), rng.normal(0.0, 1.0, 10))
    large = statistics.bootstrap_difference(rng.normal(1.0, 1.0, 1000), rng.normal(0.0, 1.0, 1000))
    for diff, low, high in (small, large):
        assert low < diff < high
    assert large[2] - large[1] < (small[2] - small[1]) / 5
    assert 0.8 < large[1] and large[2] < 1.2  # the true difference, 1, within a tight interval
    a, b = [0.81, 0.83, 0.80], [0.79, 0.80, 0.78]
    assert statistics.bootstrap_difference(a, b, seed=3) == statistics.bootstrap_difference(a, b, seed=3)


def test_kendall_tau_interval():
    same = list(range(10))
    assert statistics.kendall_tau_interval(same, same) == (1.0, 1.0, 1.0)
    tau, low, high = statistics.kendall_tau_interval(same, [0, 2, 1, 3, 5, 4, 6, 8, 7, 9])
    assert tau == pytest.approx(1 - 2 * 3 / 45)
    assert low < tau <= high <= 1.0


def test_pooled_std_of_training_seeds():
    """Two architectures with two seeds each: the pooled variance is the mean of their variances
    ((0.01^2 / 2) * 2 / 2 per pair of values 0.02 apart); one-value samples carry none."""
    assert statistics.pooled_std([[0.97, 0.99], [0.95, 0.97]]) == pytest.approx(0.02 / math.sqrt(2))
    assert statistics.pooled_std([[0.97, 0.99], [0.5]]) == pytest.approx(0.02 / math.sqrt(2))
    # Unequal sizes weigh by degrees of freedom: [1, 2, 3] (SS 2, dof 2) and [10, 14] (SS 8, dof 1).
    assert statistics.pooled_std([[1.0, 2.0, 3.0], [10.0, 14.0]]) == pytest.approx(math.sqrt(10 / 3))
    assert math.isnan(statistics.pooled_std([[0.9], []]))
    rng = np.random.default_rng(1)  # many samples of one noise: the pooled std is that noise
    assert statistics.pooled_std(rng.normal(0.5, 0.01, (500, 2))) == pytest.approx(0.01, rel=0.1)
