"""The exact-variance columns of ``tabularpg study`` come from the recursion."""
import numpy as np
import pytest

from tabularpg import sweep
from tabularpg.moments import exact_batch_moments, exact_moments


@pytest.mark.parametrize("estimator", ["reinforce", "reward_to_go", "gae"])
def test_study_fills_exact_variance_at_horizon_100(estimator):
    """Garnet(20, 4, 3) at H = 100 (far beyond enumeration): var_exact is the trace of the
    exact per-episode covariance, var_mean_exact = var_exact / N, and mse_exact is
    ||bias||^2 + tr Cov / N; the chi-square p-value of the bias needs N >= 10 x its 60
    degrees of freedom (docs/calibration.md), so N = 600."""
    task = sweep.Task(0, "garnet:S=20,A=4,b=3,seed=0", estimator, 600, 0, horizon=100)
    row = sweep.study_task(task, np.random.SeedSequence(0))
    mdp, H, pol, theta = sweep._problem(task.mdp, task.horizon, task.theta_seed)
    _, opts, _ = sweep._estimator_setup(estimator, mdp, H, pol, theta)
    tr = np.trace(exact_moments(mdp, pol, theta, estimator, H, **opts).cov)
    assert row["var_exact"] == pytest.approx(tr, rel=1e-12)
    assert row["var_mean_exact"] == pytest.approx(tr / 600, rel=1e-12)
    assert row["mse_exact"] == pytest.approx(row["bias_exact_norm"] ** 2 + tr / 600, rel=1e-9)
    assert np.isfinite(row["bias_p"]) and row["bias_dof"] == 60


def test_study_withholds_the_chi_square_p_value_below_ten_episodes_per_dof():
    """N = 50 < 10 x 60 dof: the statistic is reported, its p-value (whose large-sample
    reference would be far off, docs/calibration.md) is not; the CLI says why."""
    from tabularpg.cli import _why_empty

    task = sweep.Task(0, "garnet:S=20,A=4,b=3,seed=0", "reinforce", 50, 0, horizon=20)
    row = sweep.study_task(task, np.random.SeedSequence(0))
    assert np.isfinite(row["var_exact"]) and np.isfinite(row["bias_chi2"]) and row["bias_dof"] == 60
    assert np.isnan(row["bias_p"])
    assert "N < 10 x 60 degrees of freedom" in _why_empty(row, "bias_p", 80)


@pytest.mark.parametrize("baseline", ["mean", "leave_one_out"])
def test_study_batch_coupled_baselines_are_exact_at_each_n(baseline):
    """Batch-coupled baselines: var_mean_exact is the trace of the exact covariance of the
    N-episode mean (not tr Cov / N of a per-episode law), and var_exact is N times it."""
    for N in (3, 30):
        task = sweep.Task(0, "garnet:S=6,A=3,b=2,seed=1", "reward_to_go", N, 0, horizon=15,
                          options={"baseline": baseline})
        row = sweep.study_task(task, np.random.SeedSequence(1))
        mdp, H, pol, theta = sweep._problem(task.mdp, task.horizon, task.theta_seed)
        m = exact_batch_moments(mdp, pol, theta, "reward_to_go", H, n_episodes=N, baseline=baseline)
        assert row["var_mean_exact"] == pytest.approx(np.trace(m.cov), rel=1e-12)
        assert row["var_exact"] == pytest.approx(N * np.trace(m.cov), rel=1e-12)
