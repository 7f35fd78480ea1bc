"""The assertions' false-alarm rates on real estimators' laws stay within [0.5, 2]x nominal.

Oracle: the exact per-episode law of reinforce, reward_to_go and gae on two small problems
(trajectory enumeration, :mod:`tabularpg.testing._calibration`); null data sets are i.i.d.
draws from it, tested against its exact mean and covariance (and the exact expectation
from ``tabularpg.estimators.expected``). Fixed seeds.

Bounds: with ``n`` null sets at alpha = 0.05, a test whose rate q lies in [0.025, 0.1]
gives a false-alarm count inside [Binomial(n, 0.025).ppf(1e-4), Binomial(n, 0.1).isf(1e-4)]
except with probability < 2e-4; a count outside says the rate is outside [0.5, 2]x nominal.
Where calibration holds (docs/calibration.md): the mean tests from N = 100 on all six laws,
the variance test from N = 400 and the covariance test from N = 100 on the Garnet laws
(kurtosis <= 31). The full table (2000 sets per cell, N up to 3000) is produced by
benchmarks/calibration.py.
"""
import numpy as np
import pytest
from scipy import stats

from tabularpg.testing._calibration import calibration_laws
from tabularpg.testing.assertions import covariance_test, unbiased_test, variance_test

LAWS = calibration_laws()
ALPHA = 0.05


def _band(n):
    return int(stats.binom.ppf(1e-4, n, 0.5 * ALPHA)), int(stats.binom.isf(1e-4, n, 2 * ALPHA))


def _count(test, laws, n, n_sets, seed, wrong=False):
    fails = 0
    for k, law in enumerate(laws):
        rng = np.random.default_rng([seed, k])
        for _ in range(n_sets):
            X = law.draw(n, rng)
            fails += not test(X, law, wrong).passed
    return fails


def _mean_exact(X, law, wrong):
    return unbiased_test(X, law.target + (0.5 * np.sqrt(np.diag(law.cov)) if wrong else 0), cov=law.cov, alpha=ALPHA)


def _mean_hotelling(X, law, wrong):
    return unbiased_test(X, law.target + (0.5 * np.sqrt(np.diag(law.cov)) if wrong else 0), alpha=ALPHA)


def _variance(X, law, wrong):
    return variance_test(X, law.cov * (1.5 if wrong else 1.0), alpha=ALPHA)


def _covariance(X, law, wrong):
    return covariance_test(X, law.cov * (1.5 if wrong else 1.0), alpha=ALPHA)


def test_laws_are_exact():
    for law in LAWS:
        np.testing.assert_allclose(law.mean, law.target, atol=1e-10)
        assert law.kurtosis > 5  # skewed, heavy-tailed per-episode estimates


@pytest.mark.parametrize("test", [_mean_exact, _mean_hotelling], ids=["exact_cov", "hotelling"])
def test_mean_tests_calibrated_from_n100(test):
    n_sets = 120
    lo, hi = _band(len(LAWS) * n_sets)
    count = _count(test, LAWS, 100, n_sets, seed=1)
    assert lo <= count <= hi, (count, lo, hi)
    # the band can fail: a target half a standard deviation off is rejected far more often
    assert _count(test, LAWS[:2], 100, 40, seed=2, wrong=True) > 0.5 * 80


@pytest.mark.parametrize("test, n", [(_variance, 400), (_covariance, 400), (_covariance, 100)],
                         ids=["variance-400", "covariance-400", "covariance-100"])
def test_variance_tests_calibrated_on_garnet_laws(test, n):
    garnet = [law for law in LAWS if law.name.endswith("garnet")]
    n_sets = 150
    lo, hi = _band(len(garnet) * n_sets)
    count = _count(test, garnet, n, n_sets, seed=3)
    assert lo <= count <= hi, (count, lo, hi)
    assert _count(test, garnet[:1], 400, 40, seed=4, wrong=True) > 0.5 * 40


def _variance_greater(X, law, wrong):
    # wrong: the true covariance is twice the claim
    return variance_test(X, law.cov / (2.0 if wrong else 1.0), alpha=ALPHA, alternative="greater")


def test_variance_greater_calibrated_from_n100():
    """``alternative="greater"`` on all six laws at N = 100 (kurtosis 14-50)."""
    n_sets = 120
    lo, hi = _band(len(LAWS) * n_sets)
    count = _count(_variance_greater, LAWS, 100, n_sets, seed=5)
    assert lo <= count <= hi, (count, lo, hi)
    # and the band can fail: a variance twice the claim is caught in most sets at N = 400
    assert _count(_variance_greater, LAWS[:2], 400, 40, seed=6, wrong=True) > 0.5 * 80


def test_lower_side_is_limited_by_missed_rare_values():
    """Why the lower side cannot be calibrated at N = 100 (docs/calibration.md): removing
    the rarest large estimates, of total probability q, halves the variance, and a sample
    of 100 misses all of them with probability (1 - q)^100 -- such a sample *is* a sample
    from the halved law. Checked on the enumerated laws of REINFORCE on the gamma = 1
    problem, where that probability exceeds 10%."""
    law = next(law for law in LAWS if law.name == "reinforce/terminal")
    dev2 = ((law.atoms - law.mean) ** 2).sum(axis=1)
    keep = np.ones(dev2.size, bool)
    q = 0.0
    for i in np.argsort(-dev2):
        keep[i] = False
        q += law.prob[i]
        pr = law.prob[keep] / law.prob[keep].sum()
        m = pr @ law.atoms[keep]
        if pr @ ((law.atoms[keep] - m) ** 2).sum(axis=1) <= 0.5 * np.trace(law.cov):
            break
    assert (1 - q) ** 100 > 0.1


def test_covariance_deep_tail_at_default_alpha():
    """At the library's default alpha = 1e-6, N = 100: no false alarm in 500 null sets per
    law on all six laws (kurtosis 14-50). A calibrated test alarms in 3000 sets with
    probability 3e-3. Before the diagonal's upper side used the mixed-scale score and the
    off-diagonal entries Student's self-normalized statistic, samples with an excess of
    rare large values gave p-values down to 1e-31: 0.35-0.4% of null sets alarmed at 1e-6
    on REINFORCE's laws (4000 sets per law), and 4 of these 3000 sets alarmed."""
    alarms = 0
    for k, law in enumerate(LAWS):
        rng = np.random.default_rng([7, k])
        for _ in range(500):
            alarms += not covariance_test(law.draw(100, rng), law.cov, alpha=1e-6).passed
    assert alarms == 0
    # the same test sees a variance 4x the claim in one direction at N = 400 (kurtosis 31)
    law = LAWS[0]
    w, U = np.linalg.eigh(law.cov)
    wrong = law.cov - 0.75 * w[-1] * np.outer(U[:, -1], U[:, -1])  # claims 1/4 of the leading variance
    rng = np.random.default_rng(8)
    assert sum(not covariance_test(law.draw(400, rng), wrong, alpha=1e-6).passed for _ in range(20)) >= 10
