"""The statistical assertions refuse garbage, keep their stated false-alarm rate and have power.

Oracles: data with known mean and covariance (skewed, rank-deficient); for garbage
inputs, the requirement that the result is an error or a failure, never a pass.

Calibration on exponential data at alpha = 0.01: over 2000 null data sets the number of
false alarms is Binomial(2000, 0.01) (mean 20) for a calibrated test; we accept 0..45
(probability of a wrong verdict < 1e-6 for a calibrated test); the variance tests, over
1000 sets, accept 0..45 (4.5x nominal: a coarse guard; the calibration table is the real
check). Seeds fixed. The calibration on real estimators' laws is in
tests/test_calibration.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabularpg import TabularSoftmax, envs
from tabularpg._validation import ShapeError, ValidationError
from tabularpg.estimators import estimate, expected
from tabularpg.sampling import sample
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
    f = lambda X, cov: variance_test(X, cov, alpha=0.01)
    assert 0 <= _null_rate(f, n_sets=1000, n=400) <= 45  # nominal 10 of 1000; 45 = 4.5x


def test_covariance_false_alarm_rate():
    f = lambda X, cov: covariance_test(X, cov, alpha=0.01)
    assert 0 <= _null_rate(f, n_sets=1000, n=400) <= 45


def test_power():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2)) + [0.15, 0.0]
    with pytest.raises(AssertionError, match="mean differs from target"):
        assert_unbiased(X, [0.0, 0.0], cov=np.eye(2))
    with pytest.raises(AssertionError, match="mean differs from target"):
        assert_unbiased(X, [0.0, 0.0])
    with pytest.raises(AssertionError, match="covariance differs"):
        assert_variance(X, 1.3 * np.eye(2))
    assert_unbiased(X, [0.15, 0.0], cov=np.eye(2))


def test_null_space_component_must_match_exactly():
    X = np.column_stack([np.random.default_rng(2).normal(size=100), np.full(100, 3.0)])
    cov = np.diag([1.0, 0.0])
    assert unbiased_test(X, [0.0, 3.0], cov=cov).passed
    assert not unbiased_test(X, [0.0, 3.1], cov=cov).passed


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


# ----------------------------------------------------------------------------- garbage in
TESTS = {
    "unbiased_cov": lambda X, mu, C, **kw: unbiased_test(X, mu, cov=C, **kw),
    "unbiased_hotelling": lambda X, mu, C, **kw: unbiased_test(X, mu, **kw),
    "variance": lambda X, mu, C, **kw: variance_test(X, C, **kw),
    "covariance": lambda X, mu, C, **kw: covariance_test(X, C, **kw),
}
ASSERTS = {
    "unbiased_cov": lambda X, mu, C, **kw: assert_unbiased(X, mu, cov=C, **kw),
    "unbiased_hotelling": lambda X, mu, C, **kw: assert_unbiased(X, mu, **kw),
    "variance": lambda X, mu, C, **kw: assert_variance(X, C, **kw),
    "covariance": lambda X, mu, C, **kw: assert_covariance(X, C, **kw),
}


def _good(n=200, p=3, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, p))
    return X, np.zeros(p), np.eye(p)


@pytest.mark.parametrize("name", sorted(TESTS))
def test_issue_examples_are_refused(name):
    """The reported garbage that used to pass: all-NaN data, one NaN per column."""
    for X in (np.full((100, 3), np.nan), np.where(np.eye(100, 3, dtype=bool), np.nan, 1.0)):
        for fn in (TESTS[name], ASSERTS[name]):
            with pytest.raises(ValidationError, match=r"`samples` must be finite; got \d+ non-finite"):
                fn(X, np.zeros(3), np.eye(3))
    with pytest.raises(ValidationError, match="20 non-finite entries"):
        assert_unbiased(np.full((10, 2), np.nan), [0, 0])
    X = np.random.default_rng(0).normal(size=(1000, 2))
    X[17, 1] = np.nan
    with pytest.raises(ValidationError, match=r"1 NaN, 0 infinite\) in rows \[17\], columns \[1\]"):
        assert_unbiased(X, [0, 0])


@pytest.mark.parametrize("name", sorted(TESTS))
def test_non_finite_target_and_cov_are_refused(name):
    X, mu, C = _good()
    if name.startswith("unbiased"):
        with pytest.raises(ValidationError, match="`target` must be finite"):
            TESTS[name](X, [0.0, np.inf, 0.0], C)
    if name != "unbiased_hotelling":
        bad = C.copy()
        bad[1, 1] = np.nan
        with pytest.raises(ValidationError, match="`cov` must be finite"):
            TESTS[name](X, mu, bad)


@pytest.mark.parametrize("name", sorted(TESTS))
def test_shape_mismatch_names_both_shapes(name):
    X, mu, C = _good()
    if name.startswith("unbiased"):
        with pytest.raises(ShapeError, match=r"`target` of shape \(4,\).*`samples` of shape \(200, 3\)"):
            TESTS[name](X, np.zeros(4), C)
    if name != "unbiased_hotelling":
        with pytest.raises(ShapeError, match=r"`cov` of shape \(2, 2\).*`samples` of shape \(200, 3\)"):
            TESTS[name](X, mu, np.eye(2))


@pytest.mark.parametrize("name", [n for n in sorted(TESTS) if n != "unbiased_hotelling"])
def test_cov_must_be_symmetric_psd(name):
    X, mu, _ = _good()
    with pytest.raises(ValidationError, match="symmetric"):
        TESTS[name](X, mu, np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValidationError, match="positive semi-definite"):
        TESTS[name](X, mu, np.diag([1.0, -0.1, 1.0]))
    TESTS[name](X, mu, np.diag([1.0, 1.0, 1.0]) + 1e-12 * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]))


@pytest.mark.parametrize("name", sorted(TESTS))
@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_alpha_must_lie_in_open_unit_interval(name, alpha):
    X, mu, C = _good()
    with pytest.raises(ValidationError, match="alpha"):
        TESTS[name](X, mu, C, alpha=alpha)


def test_estimate_is_accepted():
    mdp, pol = envs.bandit([1.0, 0.0]), TabularSoftmax(1, 2)
    theta = pol.zeros()
    est = estimate(sample(mdp, pol, theta, 2000, rng=0), pol, theta, "reinforce")
    g = expected("reinforce", mdp, pol, theta)
    assert assert_unbiased(est, g).passed
    assert unbiased_test(est, g).statistic == unbiased_test(est.samples, g).statistic
    assert not unbiased_test(est, g + 0.2).passed


def test_degenerate_data_pass_only_at_the_target():
    X = np.full((50, 2), 1.5)
    res = unbiased_test(X, [1.5, 1.5])
    assert res.passed and "null_atol" in res.note and "zero sample variance" in str(res)
    assert not unbiased_test(X, [1.5, 1.5 + 1e-6]).passed
    assert unbiased_test(X, [1.5, 1.5 + 1e-6], null_atol=1e-5).passed


def test_nan_statistic_never_passes():
    from tabularpg.testing.assertions import TestResult
    assert not TestResult(np.nan, 2, 1.0, 0.01, "t").passed
    assert not TestResult(1.0, 2, np.nan, 0.01, "t").passed


def _inject(kind, X, rng):
    X = X.copy()
    if kind == "nan":
        X[rng.integers(X.shape[0]), rng.integers(X.shape[1])] = np.nan
    elif kind == "inf":
        X[rng.integers(X.shape[0]), rng.integers(X.shape[1])] = rng.choice([np.inf, -np.inf])
    elif kind == "constant_column":
        X[:, rng.integers(X.shape[1])] = 7.0
    elif kind == "single_row":
        X = X[:1]
    return X


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["nan", "inf", "constant_column", "single_row", "wrong_target", "wrong_cov",
                             "nan_target", "inf_cov"]),
       name=st.sampled_from(sorted(TESTS)), n=st.integers(2, 60), p=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_garbage_is_an_error_or_a_failure_never_a_pass(kind, name, n, p, seed):
    """NaN, inf, constant columns (where the covariance says the column varies), single rows
    and mismatched shapes: every assertion raises a ValueError or fails."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 0.1
    mu, C = np.full(p, 0.1), np.eye(p)
    if kind in ("nan", "inf", "constant_column", "single_row"):
        X = _inject(kind, X, rng)
    elif kind == "wrong_target":
        mu = np.zeros(p + 1)
    elif kind == "wrong_cov":
        C = np.eye(p + 1)
    elif kind == "nan_target":
        mu[0] = np.nan
    elif kind == "inf_cov":
        C[0, 0] = np.inf
    if kind == "constant_column" and name == "unbiased_hotelling":
        mu = mu + 1.0  # a constant column is fine for the mean unless it misses the target
    if name == "unbiased_hotelling" and kind in ("wrong_cov", "inf_cov"):
        return  # Hotelling takes no covariance
    if name in ("variance", "covariance") and kind in ("wrong_target", "nan_target"):
        return  # no target
    try:
        res = TESTS[name](X, mu, C)
    except ValueError:
        return
    assert not res.passed, (kind, name, str(res))
    with pytest.raises(AssertionError):
        ASSERTS[name](X, mu, C)
