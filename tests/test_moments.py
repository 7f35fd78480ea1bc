"""Trajectory enumeration: probabilities, limits, and agreement with the exact solvers."""
import numpy as np
import pytest
from hypothesis import given

from tabularpg import EnumerationTooLargeError, ValidationError, envs, exact
from tabularpg.moments import enumerate_trajectories, exact_moments
from tabularpg.testing.strategies import problems


@given(problems(max_states=3, max_actions=2, max_horizon=3, kinds=("finite", "terminal")))
def test_enumeration_probabilities_and_objective(problem):
    """sum_tau p(tau) = 1 and sum_tau p(tau) R(tau) = J (horizon-truncated)."""
    mdp, pol, theta = problem
    H = mdp.horizon or 3
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), H)
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    J = exact.objective(mdp if mdp.horizon else mdp.replace(horizon=H), pol.probs(theta))
    assert prob @ batch.returns() == pytest.approx(J, abs=1e-10)


@given(problems(max_states=3, max_actions=2, max_horizon=3, kinds=("finite", "terminal")))
def test_reinforce_enumeration_equals_policy_gradient(problem):
    mdp, pol, theta = problem
    H = mdp.horizon or 3
    m = exact_moments(mdp, pol, theta, "reinforce", H)
    g = exact.policy_gradient(mdp if mdp.horizon else mdp.replace(horizon=H), pol, theta)
    np.testing.assert_allclose(m.mean, g.ravel(), atol=1e-10)
    np.testing.assert_allclose(m.second - np.outer(m.mean, m.mean), m.cov, atol=1e-10)


def test_too_large_is_refused():
    mdp = envs.garnet(5, 3, 5, rng=0, horizon=8)
    with pytest.raises(EnumerationTooLargeError, match="more than 1000 trajectories"):
        enumerate_trajectories(mdp, np.full((5, 3), 1 / 3), 8, max_trajectories=1000)


def test_batch_baselines_are_refused():
    mdp = envs.bandit([1.0, 0.0])
    from tabularpg import TabularSoftmax

    with pytest.raises(ValidationError, match="couples the episodes of a batch"):
        exact_moments(mdp, TabularSoftmax(1, 2), np.zeros((1, 2)), "reinforce", baseline="mean")


@pytest.mark.parametrize("kind", ["tabular", "linear"])
@pytest.mark.parametrize("est", ["reinforce", "reward_to_go"])
def test_optimal_baseline_is_the_vertex_of_the_exact_variance(est, kind):
    """Oracle: exact per-component variances Var_i(b) from `exact_moments` at b = -1, 0, 1
    (a quadratic in b, since the baseline term has zero mean); its vertex and curvature must
    be `optimal_baseline`'s b*_i = E[X_i Y_i] / E[Y_i^2] and E[Y_i^2], and the scalar b* must
    minimize the exact total variance with excess E||Y||^2 (b - b*)^2."""
    from tabularpg import LinearSoftmax, TabularSoftmax
    from tabularpg.moments import optimal_baseline

    mdp = envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9)
    rng = np.random.default_rng(0)
    pol = TabularSoftmax(3, 2) if kind == "tabular" else LinearSoftmax(rng.normal(size=(3, 2, 3)))
    theta = rng.normal(size=pol.theta_shape)
    v = {b: np.diag(exact_moments(mdp, pol, theta, est, baseline=b).cov) for b in (-1.0, 0.0, 1.0)}
    curv = (v[1.0] + v[-1.0] - 2 * v[0.0]) / 2  # E[Y_i^2]
    slope = (v[1.0] - v[-1.0]) / 2  # -2 E[X_i Y_i]
    b_star = optimal_baseline(mdp, pol, theta, est)
    assert b_star.shape == (pol.n_params,)
    np.testing.assert_allclose(b_star, -slope / (2 * curv), rtol=1e-9, atol=1e-9)
    b1 = optimal_baseline(mdp, pol, theta, est, per_component=False)
    t = {b: np.trace(exact_moments(mdp, pol, theta, est, baseline=b).cov) for b in (b1, b1 + 0.5, b1 - 2.0)}
    assert t[b1 + 0.5] - t[b1] == pytest.approx(curv.sum() * 0.25, rel=1e-9)
    assert t[b1 - 2.0] - t[b1] == pytest.approx(curv.sum() * 4.0, rel=1e-9)
    with pytest.raises(ValidationError, match="estimator"):
        optimal_baseline(mdp, pol, theta, "q")


@pytest.mark.parametrize("est", ["reinforce", "reward_to_go", "reward_to_go_undiscounted"])
def test_batch_baselines_exact_over_all_pairs(est):
    """Batch-coupled baselines, exactly, for batches of N = 2 episodes: the oracle averages
    ``estimate(...).mean`` over every ordered pair of enumerated trajectories with weight
    p(tau_i) p(tau_j) (a brute-force loop, test only). "mean" gives exactly
    ``expected(..., baseline="mean", n_episodes=2)`` = (1 - 1/2) x the unbaselined expectation;
    "leave_one_out" and "optimal" (leave-one-out coefficients) give exactly the latter."""
    from tabularpg import TabularSoftmax
    from tabularpg import estimators as E

    mdp = envs.garnet(2, 2, 2, rng=4, horizon=2, gamma=0.9)
    pol = TabularSoftmax(2, 2)
    theta = np.random.default_rng(1).normal(size=(2, 2))
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), 2)
    K = prob.size
    unbiased = E.expected(est, mdp, pol, theta).ravel()
    mean_target = E.expected(est, mdp, pol, theta, baseline="mean", n_episodes=2).ravel()
    np.testing.assert_allclose(mean_target, E.expected_mean_baseline(est, mdp, pol, theta, n_episodes=2).ravel())
    for baseline, target in [("mean", mean_target),
                             ("leave_one_out", unbiased), ("optimal", unbiased)]:
        total = np.zeros(pol.n_params)
        for i in range(K):
            for j in range(K):
                g = E.estimate(batch.select([i, j]), pol, theta, est, baseline=baseline).mean.ravel()
                total += prob[i] * prob[j] * g
        np.testing.assert_allclose(total, target, atol=1e-12)
    assert np.abs(unbiased).max() > 1e-2  # the factor 1/2 is visible
