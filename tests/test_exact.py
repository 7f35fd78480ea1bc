"""Exact solvers against independent oracles.

Oracles: complex-step derivative of ``objective`` (dense MDPs; exact to rounding),
central finite differences (sparse MDPs, whose GMRES solves cannot carry a 1e-30
imaginary step), the Bellman equations themselves, brute-force sums over (s, a), and
closed forms (``sum d = 1/(1-gamma)``, Kakade's NPG = advantage for tabular softmax).
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given

from tabularpg import MDP, ImproperPolicyError, exact
from tabularpg.testing import oracles
from tabularpg.testing.strategies import problems



def complex_step_gradient(mdp, pol, theta):
    return oracles.complex_step_gradient(oracles.objective_of(mdp, pol), theta)


def central_difference_gradient(mdp, pol, theta):
    return oracles.central_difference_gradient(oracles.objective_of(mdp, pol), theta)


def rel_err(x, y):
    return np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-12)


@given(problems(sparse=False))
def test_gradient_matches_complex_step(problem):
    mdp, pol, theta = problem
    g = exact.policy_gradient(mdp, pol, theta)
    oracle = complex_step_gradient(mdp, pol, theta)
    assert g.shape == theta.shape
    assert np.max(np.abs(g - oracle)) <= 1e-9 * max(np.max(np.abs(oracle)), 1.0)


@given(problems(sparse=True, kinds=("discounted", "terminal"), gamma=0.9))
def test_sparse_gradient_matches_central_differences(problem):
    mdp, pol, theta = problem
    g = exact.policy_gradient(mdp, pol, theta)
    oracle = central_difference_gradient(mdp, pol, theta)
    assert np.max(np.abs(g - oracle)) <= 1e-7 * max(np.max(np.abs(oracle)), 1.0)


@given(problems(sparse=False))
def test_sparse_and_dense_agree(problem):
    mdp, pol, theta = problem
    sparse = mdp.replace(P=sp.csr_matrix(mdp.P_flat()))
    pi = pol.probs(theta)
    for a, b in zip(exact.analyze(mdp, pi).__dict__.values(), exact.analyze(sparse, pi).__dict__.values()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@given(problems())
def test_bellman_consistency(problem):
    mdp, pol, theta = problem
    pi = pol.probs(theta)
    ev = exact.analyze(mdp, pi)
    keep = mdp.nonterminal
    P = mdp.P_dense()
    if mdp.horizon is None:
        np.testing.assert_allclose(ev.v, mdp.expected_reward(pi) + mdp.gamma * mdp.transition_matrix(pi) @ ev.v,
                                   atol=1e-9)
        np.testing.assert_allclose(ev.q, (mdp.r_sa + mdp.gamma * P @ (keep * ev.v)) * keep[:, None], atol=1e-9)
        np.testing.assert_allclose(ev.v, np.sum(pi * ev.q, axis=1), atol=1e-9)
    else:
        v_next = np.vstack([ev.v[1:], np.zeros((1, mdp.n_states))])
        np.testing.assert_allclose(ev.q, (mdp.r_sa + mdp.gamma * np.einsum("sat,ht->hsa", P, keep * v_next))
                                   * keep[:, None], atol=1e-9)
        np.testing.assert_allclose(ev.v, np.sum(pi * ev.q, axis=-1), atol=1e-9)


@given(problems())
def test_objective_two_ways(problem):
    """J = mu^T V = sum_t d_t^T r_pi (the occupancy and the value are dual)."""
    mdp, pol, theta = problem
    pi = pol.probs(theta)
    ev = exact.analyze(mdp, pi)
    j_from_d = ev.d_total @ mdp.expected_reward(pi)
    assert ev.j == pytest.approx(j_from_d, rel=1e-9, abs=1e-9)


@given(problems(kinds=("discounted", "finite"), sparse=False))
def test_occupancy_mass(problem):
    """Without terminal states: sum_s d(s) = 1/(1-gamma); finite horizon: sum_s d[t,s] = gamma^t."""
    mdp, pol, theta = problem
    d = exact.occupancy(mdp, pol.probs(theta))
    if mdp.horizon is None:
        assert d.sum() == pytest.approx(1.0 / (1.0 - mdp.gamma), rel=1e-10)
    else:
        np.testing.assert_allclose(d.sum(axis=1), mdp.gamma ** np.arange(mdp.horizon), rtol=1e-10, atol=1e-14)


@given(problems(kinds=("discounted", "terminal"), policy_kinds=("tabular",), sparse=False))
def test_tabular_npg_equals_advantage_up_to_state_constant(problem):
    """Kakade (2001): F^+ grad J = A(s, .) + c(s) in every visited state."""
    mdp, pol, theta = problem
    pi = pol.probs(theta)
    ev = exact.analyze(mdp, pi)
    npg = exact.natural_gradient(mdp, pol, theta)
    diff = npg - ev.advantage
    visited = ev.d > 1e-8
    spread = np.ptp(diff[visited], axis=1) if visited.any() else np.zeros(1)
    assert np.max(spread) <= 1e-7 * max(1.0, np.abs(ev.advantage).max())


@given(problems(sparse=False))
def test_fisher_brute_force(problem):
    mdp, pol, theta = problem
    pi = pol.probs(theta)
    d = exact.analyze(mdp, pi).d_total
    F = np.zeros((pol.n_params, pol.n_params))
    for s in range(mdp.n_states):
        for a in range(mdp.n_actions):
            g = pol.score(theta, s, a).ravel()
            F += d[s] * pi[s, a] * np.outer(g, g)
    np.testing.assert_allclose(exact.fisher(mdp, pol, theta), F, atol=1e-10)
    v = np.random.default_rng(0).normal(size=pol.theta_shape)
    np.testing.assert_allclose(exact.fisher_vector_product(mdp, pol, theta, v).ravel(), F @ v.ravel(), atol=1e-10)


def test_improper_policy_is_refused():
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = 1.0  # action 0 loops 0 -> 1 -> 0
    P[1, :, 0] = 1.0
    P[0, 1, 2] = 1.0  # action 1 reaches the terminal state 2
    P[2, :, 2] = 1.0
    mdp = MDP(P, np.ones((3, 2)), np.array([1.0, 0, 0]), gamma=1.0, terminal=np.array([False, False, True]))
    assert exact.objective(mdp, np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])) == pytest.approx(1.0)
    assert exact.objective(mdp, np.full((3, 2), 0.5)) == pytest.approx(1 + 2 * 1.0)  # E[#steps] = 3
    with pytest.raises(ImproperPolicyError, match=r"never terminates from states \[0, 1\]"):
        exact.objective(mdp, np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))


def test_complex_pi_accepted_and_real_result_for_real_input():
    mdp = MDP(np.full((2, 2, 2), 0.5), np.eye(2), np.array([0.5, 0.5]), gamma=0.5)
    j = exact.objective(mdp, np.full((2, 2), 0.5))
    assert isinstance(j, float) and j == pytest.approx(0.5 / (1 - 0.5))
