r"""Statistical assertions with stated false-alarm rates, for testing estimators.

:func:`assert_unbiased` tests :math:`H_0: E[X] = \mu_0` from i.i.d. samples ``X``:

* with the exact covariance :math:`\Sigma` (e.g. from :func:`tabularpg.moments.exact_moments`):
  :math:`N (\bar X - \mu_0)^\top \Sigma^+ (\bar X - \mu_0) \sim \chi^2_r` asymptotically,
  ``r = rank(Sigma)``; components in the null space of :math:`\Sigma` have zero variance,
  so there :math:`\bar X` must equal :math:`\mu_0` to rounding;
* without it: Hotelling's :math:`T^2` with the sample covariance (restricted to its
  numerical range), :math:`\frac{N-r}{r(N-1)}T^2 \sim F_{r, N-r}` under normality.

:func:`assert_variance` tests :math:`\mathrm{Var}[v^\top X] = v^\top\Sigma v` along the
leading eigenvectors of :math:`\Sigma` and for the total variance, with the large-sample
normal law of :math:`\log s^2` (delta method, fourth moment estimated from the data) and
a Bonferroni correction over the directions. :func:`assert_covariance` tests the whole
matrix: whitened by :math:`\Sigma^{+1/2}` on its range, the sample covariance must be the
identity (entrywise z-tests, log scale on the diagonal, Bonferroni over the
:math:`r(r+1)/2` entries), and the variance in the null space of :math:`\Sigma` must be zero
to rounding. The two covariance tests are asymptotic: with skewed data they need
N in the thousands for their false-alarm rate to be near ``alpha`` (see the tests).

All raise ``AssertionError`` with the statistic, its degrees of freedom and p-value when
the p-value is below ``alpha`` (the false-alarm rate when the hypothesis holds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._validation import ShapeError, ValidationError, check_float

__all__ = [
    "TestResult",
    "assert_covariance",
    "assert_unbiased",
    "assert_variance",
    "covariance_test",
    "unbiased_test",
    "variance_test",
]


@dataclass(frozen=True)
class TestResult:
    """Outcome of a test: ``statistic``, ``dof``, ``p_value``, ``alpha``; ``passed`` if
    ``p_value >= alpha``."""

    __test__ = False  # not a pytest test class

    statistic: float
    dof: float
    p_value: float
    alpha: float
    test: str

    @property
    def passed(self) -> bool:
        return bool(self.p_value >= self.alpha)

    def __str__(self):
        return (f"{self.test}: statistic {self.statistic:.4g} on {self.dof:g} dof, p = {self.p_value:.3g} "
                f"({'>=' if self.passed else '<'} alpha = {self.alpha:g})")


def _samples(samples):
    X = np.asarray(samples, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeError(f"`samples` must have shape (N, p); got {X.shape}")
    if X.shape[0] < 2:
        raise ValidationError(f"`samples` needs at least 2 rows; got {X.shape[0]}")
    return X.reshape(X.shape[0], -1)


def _samples_and_cov(samples, cov, alpha):
    """Validated ``alpha``, samples (N, p) and covariance (p, p)."""
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
    X = _samples(samples)
    p = X.shape[1]
    cov = np.asarray(cov, dtype=float)
    if cov.shape != (p, p):
        raise ShapeError(f"`cov` must have shape ({p}, {p}); got {cov.shape}")
    return alpha, X, cov


def _range_basis(cov, rtol=1e-10):
    w, U = np.linalg.eigh(0.5 * (cov + cov.T))
    keep = w > rtol * max(w.max(), 0.0) if w.max() > 0 else np.zeros_like(w, dtype=bool)
    return w[keep], U[:, keep], U[:, ~keep]


def unbiased_test(samples, target, *, cov=None, alpha: float = 1e-6, null_atol: float = 1e-9) -> TestResult:
    """The test of :func:`assert_unbiased`, returning a :class:`TestResult`."""
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
    X = _samples(samples)
    N, p = X.shape
    mu0 = np.asarray(target, dtype=float).ravel()
    if mu0.size != p:
        raise ShapeError(f"`target` must have {p} entries; got {mu0.size}")
    diff = X.mean(axis=0) - mu0
    if cov is not None:
        cov = np.asarray(cov, dtype=float)
        if cov.shape != (p, p):
            raise ShapeError(f"`cov` must have shape ({p}, {p}); got {cov.shape}")
        w, U, Z = _range_basis(cov)
        scale = max(1.0, np.abs(mu0).max(), np.abs(X).max())
        off = np.abs(Z.T @ diff).max() if Z.size else 0.0
        if off > null_atol * scale:
            return TestResult(np.inf, Z.shape[1], 0.0, alpha, "chi-square (exact covariance), null-space mismatch")
        z = U.T @ diff
        stat = float(N * np.sum(z * z / w))
        r = w.size
        return TestResult(stat, r, float(stats.chi2.sf(stat, r)) if r else 1.0, alpha, "chi-square (exact covariance)")
    S = np.cov(X, rowvar=False).reshape(p, p)
    w, U, Z = _range_basis(S)
    scale = max(1.0, np.abs(mu0).max(), np.abs(X).max())
    if Z.size and np.abs(Z.T @ diff).max() > null_atol * scale:
        return TestResult(np.inf, Z.shape[1], 0.0, alpha, "Hotelling T^2, null-space mismatch")
    r = w.size
    if r == 0:
        return TestResult(0.0, 0, 1.0, alpha, "Hotelling T^2 (degenerate)")
    if N <= r:
        raise ValidationError(f"Hotelling's test needs more samples ({N}) than dimensions ({r}); pass `cov`")
    z = U.T @ diff
    t2 = float(N * np.sum(z * z / w))
    f = (N - r) / (r * (N - 1)) * t2
    return TestResult(t2, r, float(stats.f.sf(f, r, N - r)), alpha, "Hotelling T^2")


def assert_unbiased(samples, target, *, cov=None, alpha: float = 1e-6, null_atol: float = 1e-9) -> TestResult:
    r"""Assert that i.i.d. ``samples`` (N, p) have mean ``target`` (p,), at false-alarm rate ``alpha``.

    Parameters
    ----------
    samples : array of shape (N, p) (or (N,))
    target : array of p entries
    cov : array of shape (p, p), optional
        Exact covariance of one sample; then a chi-square test on its range (recommended).
    alpha : float
        Probability of a false alarm when the mean is ``target`` (asymptotically).
    null_atol : float
        Tolerance (relative to the data's scale) for components with zero variance.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(loc=[1.0, 2.0], size=(1000, 2))
    >>> print(assert_unbiased(x, [1.0, 2.0], cov=np.eye(2)).passed)
    True
    """
    res = unbiased_test(samples, target, cov=cov, alpha=alpha, null_atol=null_atol)
    if not res.passed:
        raise AssertionError(f"mean differs from target: {res}")
    return res


def variance_test(samples, cov, *, alpha: float = 1e-6, n_directions: int = 5) -> TestResult:
    """The test of :func:`assert_variance`, returning a :class:`TestResult`."""
    alpha, X, cov = _samples_and_cov(samples, cov, alpha)
    N, p = X.shape
    w, U, _ = _range_basis(cov)
    order = np.argsort(w)[::-1][:n_directions]
    dirs = [U[:, i] for i in order]
    Xc = X - X.mean(axis=0)
    zs = []
    # total variance: sum of squared norms
    for kind, v in [("trace", None)] + [("dir", d) for d in dirs]:
        if kind == "trace":
            y2 = np.sum(Xc * Xc, axis=1)
            sigma2 = np.trace(cov)
        else:
            y = Xc @ v
            y2 = y * y
            sigma2 = float(v @ cov @ v)
        s2 = y2.mean() * N / (N - 1)
        if sigma2 <= 0 or s2 <= 0:
            zs.append(0.0 if abs(s2 - sigma2) <= 1e-12 * max(1.0, abs(sigma2)) else np.inf)
            continue
        # delta method on log s^2: much closer to normal than s^2 for skewed data
        se = np.sqrt(max(np.var(y2, ddof=1), 1e-300) / N) / s2
        zs.append((np.log(s2) - np.log(sigma2)) / se)
    zmax = float(np.max(np.abs(zs)))
    k = len(zs)
    p_value = float(min(1.0, k * 2 * stats.norm.sf(zmax)))
    return TestResult(zmax, k, p_value, alpha, "variance z (Bonferroni over directions)")


def assert_variance(samples, cov, *, alpha: float = 1e-6, n_directions: int = 5) -> TestResult:
    r"""Assert that the covariance of ``samples`` (N, p) is ``cov`` (p, p), at false-alarm
    rate ``alpha`` (asymptotic: needs finite fourth moments and N in the hundreds or more).

    Tests the total variance :math:`\mathrm{tr}\,\Sigma` and the variance along the
    ``n_directions`` leading eigenvectors of ``cov``.
    """
    res = variance_test(samples, cov, alpha=alpha, n_directions=n_directions)
    if not res.passed:
        raise AssertionError(f"covariance differs from `cov`: {res}")
    return res


def covariance_test(samples, cov, *, alpha: float = 1e-6, null_atol: float = 1e-9) -> TestResult:
    """The test of :func:`assert_covariance`, returning a :class:`TestResult`."""
    alpha, X, cov = _samples_and_cov(samples, cov, alpha)
    N, p = X.shape
    w, U, Z = _range_basis(cov)
    Xc = X - X.mean(axis=0)
    scale = max(1.0, np.abs(X).max())
    if Z.size and np.sqrt(np.mean((Xc @ Z) ** 2, axis=0)).max() > null_atol * scale:
        return TestResult(np.inf, Z.shape[1], 0.0, alpha, "whitened covariance, null-space variance")
    r = w.size
    if r == 0:
        return TestResult(0.0, 0, 1.0, alpha, "whitened covariance (degenerate)")
    W = (Xc @ U) / np.sqrt(w)  # (N, r), identity covariance under the hypothesis
    i, j = np.triu_indices(r)
    Y = W[:, i] * W[:, j]  # (N, r(r+1)/2) products
    m = Y.mean(axis=0) * N / (N - 1)
    se = np.sqrt(np.maximum(np.var(Y, axis=0, ddof=1), 1e-300) / N)
    diag = i == j
    z = np.empty(m.size)
    # diagonal: delta method on log s^2 (closer to normal for skewed data); off-diagonal: plain z
    with np.errstate(divide="ignore", invalid="ignore"):
        z[diag] = np.where(m[diag] > 0, np.log(m[diag]) / (se[diag] / np.maximum(m[diag], 1e-300)), -np.inf)
    z[~diag] = m[~diag] / se[~diag]
    zmax = float(np.max(np.abs(z)))
    k = z.size
    p_value = float(min(1.0, k * 2 * stats.norm.sf(zmax)))
    return TestResult(zmax, k, p_value, alpha, "whitened covariance z (Bonferroni over entries)")


def assert_covariance(samples, cov, *, alpha: float = 1e-6, null_atol: float = 1e-9) -> TestResult:
    r"""Assert that i.i.d. ``samples`` (N, p) have covariance ``cov`` (p, p), at false-alarm
    rate ``alpha`` (asymptotic: finite fourth moments, N in the thousands for skewed data).

    With :math:`\Sigma = U\,\mathrm{diag}(w)\,U^\top` on its range (rank ``r``, pseudo-inverse
    for singular :math:`\Sigma`, e.g. softmax scores), the whitened samples
    :math:`W = (X - \bar X) U w^{-1/2}` must have identity covariance. Each of the
    :math:`r(r+1)/2` entries :math:`\overline{W_i W_j}` gets a z statistic with its
    standard error estimated from the data (the diagonal on log scale), and the p-value is
    Bonferroni-corrected: ``min(1, k * 2 * Phi(-max|z|))``. In the null space of
    :math:`\Sigma` the samples must not vary (RMS at most ``null_atol`` times the data's
    scale). Unlike :func:`assert_variance`, it also sees wrong off-diagonal entries.

    Examples
    --------
    >>> import numpy as np
    >>> C = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> x = np.random.default_rng(0).multivariate_normal([0.0, 0.0], C, size=5000)
    >>> print(assert_covariance(x, C).passed)
    True
    """
    res = covariance_test(samples, cov, alpha=alpha, null_atol=null_atol)
    if not res.passed:
        raise AssertionError(f"covariance differs from `cov`: {res}")
    return res
