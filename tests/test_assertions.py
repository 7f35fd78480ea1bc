"""The statistical assertions keep their stated false-alarm rate and have power.

Oracle: data with known mean and covariance (skewed, rank-deficient).

Calibration at alpha = 0.01 over 2000 null data sets: the number of false alarms is
Binomial(2000, 0.01) (mean 20); we accept 0..45 (probability of a wrong verdict < 1e-6
for a calibrated test). Seeds fixed.
"""
import numpy as np
import pytest

from tabularpg.testing.assertions import (
    assert_covariance,
    assert_unbiased,
    assert_variance,
    covariance_test,
    unbiased_test,
    variance_test,
)


def _null_rate(test, n_sets=2000, n=400, **kw):
    rng = np.random.default_rng(0)
    A = np.array([[1.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.0, 0.0, 0.0]])  # rank-2 covariance
    cov = A @ A.T
    fails = 0
    for _ in range(n_sets):
        X = rng.exponential(size=(n, 3)) - 1.0  # skewed, mean 0, identity covariance
        X = X @ A.T + np.array([1.0, -2.0, 0.5])
        fails += not test(X, cov, **kw).passed
    return fails


@pytest.mark.parametrize("exact_cov", [True, False])
def test_unbiased_false_alarm_rate(exact_cov):
    f = lambda X, cov: unbiased_test(X, [1.0, -2.0, 0.5], cov=cov if exact_cov else None, alpha=0.01)
    assert 0 <= _null_rate(f) <= 45


def test_variance_false_alarm_rate():
    """Asymptotic test: calibrated at N = 3000 on exponential-tailed data."""
    f = lambda X, cov: variance_test(X, cov, alpha=0.01)
    assert 0 <= _null_rate(f, n=3000) <= 45


def test_power():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2)) + [0.15, 0.0]
    with pytest.raises(AssertionError, match="mean differs from target"):
        assert_unbiased(X, [0.0, 0.0], cov=np.eye(2))
    with pytest.raises(AssertionError, match="covariance differs"):
        assert_variance(X, 1.3 * np.eye(2))
    assert_unbiased(X, [0.15, 0.0], cov=np.eye(2))


def test_null_space_component_must_match_exactly():
    X = np.column_stack([np.random.default_rng(2).normal(size=100), np.full(100, 3.0)])
    cov = np.diag([1.0, 0.0])
    assert unbiased_test(X, [0.0, 3.0], cov=cov).passed
    assert not unbiased_test(X, [0.0, 3.1], cov=cov).passed


def test_covariance_false_alarm_rate():
    """Asymptotic test: calibrated at N = 3000 on exponential-tailed, rank-deficient data."""
    f = lambda X, cov: covariance_test(X, cov, alpha=0.01)
    assert 0 <= _null_rate(f, n=3000) <= 45


def test_covariance_power_off_diagonal():
    """A wrong correlation with correct variances (equal trace and eigen-directions of `cov`):
    assert_variance cannot see it, assert_covariance rejects it at the same N."""
    C = np.array([[1.0, 0.2], [0.2, 1.0]])
    X = np.random.default_rng(3).multivariate_normal([0.0, 0.0], C, size=3000)
    assert variance_test(X, np.eye(2)).passed
    with pytest.raises(AssertionError, match="covariance differs"):
        assert_covariance(X, np.eye(2))
    assert_covariance(X, C)


def test_covariance_null_space_must_not_vary():
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=500), np.full(500, 2.0)])
    assert covariance_test(X, np.diag([1.0, 0.0])).passed
    X[0, 1] += 1e-3
    res = covariance_test(X, np.diag([1.0, 0.0]))
    assert not res.passed and "null-space" in res.test
