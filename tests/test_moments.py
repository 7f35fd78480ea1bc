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
