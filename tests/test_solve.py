"""Value iteration, policy iteration and the LP agree; published optimal values.

Oracles: the three solvers against each other, the Bellman optimality residual, exact
evaluation of every deterministic policy (brute force over A^S policies on tiny MDPs),
and Sutton & Barto's Example 3.8.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given

from tabularpg import MDP, envs, exact, solve
from tabularpg.testing.strategies import mdps

SOLVERS = [solve.value_iteration, solve.policy_iteration, solve.linear_program]


@given(mdps(max_states=3, max_actions=3))
def test_solvers_agree_and_beat_every_deterministic_policy(mdp):
    results = [f(mdp) for f in SOLVERS]
    ref = results[1]
    for r in results:
        assert r.converged
        np.testing.assert_allclose(r.v, ref.v, atol=1e-7 * max(1, np.abs(ref.v).max()))
    v0 = ref.v if ref.v.ndim == 1 else ref.v[0]
    if mdp.horizon is None:
        assert solve.bellman_optimality_residual(mdp, ref.v) <= 1e-9 * max(1, np.abs(ref.v).max())
        # the greedy policy of each solver attains V*
        for r in results:
            np.testing.assert_allclose(exact.evaluate(mdp, r.pi)[0], ref.v, atol=1e-6 * max(1, np.abs(ref.v).max()))
        S, A = mdp.n_states, mdp.n_actions
        best = max(exact.objective(mdp, np.eye(A)[list(acts)]) for acts in itertools.product(range(A), repeat=S))
        assert mdp.mu @ v0 == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_sutton_barto_example_3_8_optimal_values():
    """Sutton & Barto (2018), Example 3.8, Figure 3.5 (one decimal)."""
    published = np.array([[22.0, 24.4, 22.0, 19.4, 17.5], [19.8, 22.0, 19.8, 17.8, 16.0],
                          [17.8, 19.8, 17.8, 16.0, 14.4], [16.0, 17.8, 16.0, 14.4, 13.0],
                          [14.4, 16.0, 14.4, 13.0, 11.7]])
    for f in SOLVERS:
        np.testing.assert_allclose(f(envs.sutton_barto_gridworld()).v.reshape(5, 5), published, atol=0.05 + 1e-9)


def test_value_iteration_error_bound():
    m = envs.garnet(30, 3, 3, gamma=0.95, rng=2)
    exact_v = solve.policy_iteration(m).v
    for tol in (1e-3, 1e-8):
        assert np.max(np.abs(solve.value_iteration(m, tol=tol).v - exact_v)) <= tol


def test_finite_horizon_backward_induction():
    m = envs.garnet(6, 2, 2, rng=1, horizon=4)
    r = solve.value_iteration(m)
    assert r.v.shape == (4, 6) and r.pi.shape == (4, 6, 2)
    # the time-dependent greedy policy beats every stationary deterministic policy
    best = max(exact.objective(m, np.eye(2)[list(a)]) for a in itertools.product(range(2), repeat=6))
    assert m.mu @ r.v[0] >= best - 1e-12


def _no_proper_policy_mdp():
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = 1.0
    P[1, 0, 1] = 1.0
    return MDP(P, np.zeros((2, 1)), np.array([1.0, 0.0]), gamma=1.0, terminal=np.array([False, True]))


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda f: f.__name__)
def test_cliff_walking_optimal_return(solver):
    """Sutton & Barto (2018), Example 6.6: the optimal path along the cliff takes 13 steps."""
    m = envs.cliff_walking()
    assert m.mu @ solver(m).v == pytest.approx(-13.0, abs=1e-8)


def test_sparse_solvers_match_dense():
    d = envs.garnet(60, 3, 4, rng=5, sparse=False)
    s = envs.garnet(60, 3, 4, rng=5, sparse=True)
    ref = solve.policy_iteration(d).v
    for f in SOLVERS:
        np.testing.assert_allclose(f(s).v, ref, atol=1e-8)


BAD = [
    ("no-proper-policy-vi", lambda: solve.value_iteration(_no_proper_policy_mdp()), solve.NoProperPolicyError,
     r"states \[0\] cannot reach a terminal state"),
    ("no-proper-policy-pi", lambda: solve.policy_iteration(_no_proper_policy_mdp()), solve.NoProperPolicyError,
     r"states \[0\] cannot reach a terminal state"),
    ("no-proper-policy-lp", lambda: solve.linear_program(_no_proper_policy_mdp()), solve.NoProperPolicyError,
     r"states \[0\] cannot reach a terminal state"),
    ("not-an-mdp", lambda: solve.value_iteration(np.zeros(3)), TypeError, "`mdp` must be a tabularpg.MDP; got ndarray"),
    ("negative-tol", lambda: solve.value_iteration(envs.two_state(), tol=-1.0), ValueError, "tol"),
    ("zero-max-iter", lambda: solve.policy_iteration(envs.two_state(), max_iter=0), ValueError, "max_iter"),
    ("bi-no-horizon", lambda: solve.backward_induction(envs.two_state()), ValueError,
     "backward_induction needs a finite `horizon`; got None"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_results_unpack_as_value_and_policy():
    m = envs.two_state()
    V, pi = solve.value_iteration(m)
    np.testing.assert_allclose(V, [18.0, 20.0], atol=1e-8)
    np.testing.assert_array_equal(pi, [[0, 1], [1, 0]])
