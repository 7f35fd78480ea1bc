"""The public hypothesis strategies produce what they promise."""
import numpy as np
from hypothesis import given

from tabularpg import LinearSoftmax, TabularSoftmax, exact
from tabularpg.testing.strategies import mdps, problems


@given(mdps(kinds=("terminal",)))
def test_terminal_mdps_have_only_proper_policies(mdp):
    assert mdp.terminal.any() and mdp.horizon is None and mdp.mu[mdp.terminal].sum() == 0
    for pi in (np.eye(mdp.n_actions)[np.zeros(mdp.n_states, int)], np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions)):
        assert np.isfinite(exact.objective(mdp, pi))  # never ImproperPolicyError


@given(mdps(kinds=("finite",), max_horizon=3))
def test_finite_mdps(mdp):
    assert 1 <= mdp.horizon <= 3 and not mdp.terminal.any()


@given(problems(sparse=True))
def test_problems(problem):
    mdp, pol, theta = problem
    assert mdp.is_sparse and isinstance(pol, (TabularSoftmax, LinearSoftmax))
    assert theta.shape == pol.theta_shape and np.all(np.abs(theta) <= 2.0)
