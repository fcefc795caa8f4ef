"""The statistics of the study: is one group of searches better than another, and by how much?

The unit is one search (its pick's stand-alone accuracy, averaged over the pick's architectures
and training seeds): a group of ``n`` searches gives ``n`` numbers, and two groups are compared by

* :func:`bootstrap_difference`: the difference of their means with a percentile bootstrap
  confidence interval (each group resampled with replacement, independently);
* :func:`welch_t_test`: Welch's unequal-variance t-test, two-sided p-value (Student's t
  distribution with the Welch-Satterthwaite degrees of freedom, from the regularised incomplete
  beta function: no SciPy);
* :func:`kendall_tau_interval`: Kendall's tau between two rankings with a bootstrap interval
  over the ranked items;
* :func:`pooled_std`: the noise of one architecture's accuracy over its training seeds, pooled
  over the architectures (what a difference between groups must exceed to mean anything).

numpy only; every random draw comes from the ``seed`` given, so a report is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from enas.search.ranking import kendall_tau

RESAMPLES = 10_000
CONFIDENCE = 0.95


def bootstrap_difference(a, b, resamples=RESAMPLES, confidence=CONFIDENCE, seed=0):
    """``(mean(a) - mean(b), low, high)``: the difference of the means and its percentile bootstrap
    interval at ``confidence`` (``a`` and ``b`` each resampled with replacement, ``resamples``
    times). ``(nan, nan, nan)`` when a group is empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0 or b.size == 0:
        return (math.nan,) * 3
    rng = np.random.default_rng(seed)
    means_a = a[rng.integers(0, a.size, (resamples, a.size))].mean(axis=1)
    means_b = b[rng.integers(0, b.size, (resamples, b.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means_a - means_b, [tail, 1 - tail])
    return float(a.mean() - b.mean()), float(low), float(high)


def welch_t_test(a, b):
    """``(t, degrees of freedom, two-sided p)`` of Welch's t-test of ``mean(a) == mean(b)``.
    ``nan`` where it is undefined (fewer than two values in a group, or no variance in either)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or b.size < 2:
        return (math.nan,) * 3
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return (math.nan,) * 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return float(t), float(df), float(student_t_two_sided_p(float(t), float(df)))


def student_t_two_sided_p(t, df):
    """``P(|T| >= |t|)`` for Student's t with ``df`` (real, > 0) degrees of freedom:
    ``I_x(df / 2, 1 / 2)`` with ``x = df / (df + t^2)``."""
    return regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)


def regularized_incomplete_beta(x, a, b):
    """``I_x(a, b)`` for ``0 <= x <= 1``, ``a, b > 0`` (Lentz's continued fraction, as in
    Numerical Recipes' ``betai``; relative accuracy about 1e-12)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x, a, b, iterations=300, eps=1e-15):
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, iterations + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def pooled_std(samples):
    """``sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1))``: the pooled standard deviation of several
    samples (e.g. each architecture's accuracies over its training seeds), ``s_i^2`` the sample
    variance of sample ``i``. Samples of fewer than two values carry no variance and are left
    out; ``nan`` when none is left."""
    squares, dof = 0.0, 0
    for sample in samples:
        values = np.asarray(sample, np.float64)
        if values.size >= 2:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += values.size - 1
    return math.sqrt(squares / dof) if dof else math.nan


def kendall_tau_interval(xs, ys, resamples=2_000, confidence=CONFIDENCE, seed=0):
    """``(tau, low, high)``: Kendall's tau-b of ``xs`` and ``ys`` and its percentile bootstrap
    interval (the pairs resampled with replacement; resamples where tau is undefined, e.g. all
    one item, are left out)."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    tau = kendall_tau(xs.tolist(), ys.tolist())
    if xs.size < 3:
        return tau, math.nan, math.nan
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        pick = rng.integers(0, xs.size, xs.size)
        value = kendall_tau(xs[pick].tolist(), ys[pick].tolist())
        if value == value:
            taus.append(value)
    if not taus:
        return tau, math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(taus, [tail, 1 - tail])
    return tau, float(low), float(high)
