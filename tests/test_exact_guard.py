"""The exactness guard: near-singular systems are refused, never returned wrong.

Oracles: closed forms of a two-state chain (computed on the chain as stored in floating
point), and a long truncated sum ``sum_{k < 2^50} P_pi^k r_pi`` by repeated doubling
(independent of the LU solve), for cliff walking with gamma = 1 under policies pushed
toward the wall-bumping loop of the top row.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tabularpg import MDP, ImproperPolicyError, TabularSoftmax, envs, exact
from tabularpg._validation import NumericalError
from tabularpg.testing.strategies import problems


def truncated_sum(P_pi, r, doublings=50):
    """``sum_{k < 2^doublings} P_pi^k r`` by doubling: ``S_2n = S_n + P^n S_n``."""
    Pn, s = P_pi.copy(), r.copy()
    for _ in range(doublings):
        s = s + Pn @ s
        Pn = Pn @ Pn
    return s


def chain(p, sparse=False):
    """State 0 stays with probability 1 - p (reward 1 per step), else enters terminal 1."""
    P = np.zeros((2, 1, 2))
    P[0, 0] = [1.0 - p, p]
    P[1, 0, 1] = 1.0
    if sparse:
        P = sp.csr_matrix(P.reshape(2, 2))
    return MDP(P, np.array([[1.0], [0.0]]), np.array([1.0, 0.0]), gamma=1.0,
               terminal=np.array([False, True]))


def chain_value(p):
    """Exact value of :func:`chain` as stored: ``1 / (1 - fl(1 - p))`` (the subtraction
    is exact by Sterbenz's lemma)."""
    exit_prob = 1.0 - (1.0 - p)
    return 1.0 / exit_prob if exit_prob > 0 else np.inf


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("p", [0.5, 1e-3, 1e-6, 1e-7])
def test_chain_slow_exit_is_correct(p, sparse):
    j = exact.objective(chain(p, sparse), np.ones((2, 1)))
    assert j == pytest.approx(chain_value(p), rel=1e-9)
    assert j == pytest.approx(truncated_sum(np.array([[1.0 - p]]), np.array([1.0]))[0], rel=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("p", [1e-9, 1e-12, 1e-15, 1e-16, 1e-17, 1e-100, 1e-300])
def test_chain_vanishing_exit_is_refused(p, sparse):
    with pytest.raises(ImproperPolicyError, match=r"nearly improper.*state") as info:
        exact.objective(chain(p, sparse), np.ones((2, 1)))
    assert "MAX_EXPECTED_STEPS" in str(info.value)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 300.0), st.booleans())
def test_chain_never_a_wrong_finite_number(u, sparse):
    p = 10.0 ** -u
    try:
        j = exact.objective(chain(p, sparse), np.ones((2, 1)))
    except ImproperPolicyError:
        assert chain_value(p) > exact.MAX_EXPECTED_STEPS or not np.isfinite(chain_value(p))
        return
    assert j == pytest.approx(chain_value(p), rel=1e-8)


def test_chain_policy_complex_step_near_improper():
    """The policy's exit probability p: J = 1/p', dJ/dp = -1/p'^2 (p' = 1 - fl(1 - p));
    the complex-step path goes through the same guard (complex LU)."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0  # action 0 stays
    P[0, 1, 1] = 1.0  # action 1 exits
    P[1, :, 1] = 1.0
    mdp = MDP(P, np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([1.0, 0.0]), gamma=1.0,
              terminal=np.array([False, True]))
    for p in [1e-2, 1e-4, 1e-7]:
        h = 1e-30
        pi = np.array([[1.0 - p - 1j * h, p + 1j * h], [0.5, 0.5]])
        j = exact.objective(mdp, pi)
        p_eff = 1.0 - (1.0 - p)
        assert j.real == pytest.approx(1.0 / p_eff, rel=1e-9)
        assert j.imag / h == pytest.approx(-1.0 / p_eff**2, rel=1e-9)
    with pytest.raises(ImproperPolicyError):
        exact.objective(mdp, np.array([[1.0 - 1e-12 - 1e-30j, 1e-12 + 1e-30j], [0.5, 0.5]]))


def cliff_policy(mdp, c):
    """Logit ``c`` on 'up' everywhere: the top row bumps into the wall, and the exit
    probability per step shrinks like exp(-c)."""
    theta = np.zeros((mdp.n_states, 4))
    theta[:, 0] = c
    return TabularSoftmax(mdp.n_states, 4).probs(theta)


@pytest.mark.parametrize("c", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
def test_cliff_walking_loop_values_match_truncated_sum(c):
    mdp = envs.cliff_walking()
    pi = cliff_policy(mdp, c)
    v = exact.evaluate(mdp, pi)[0]
    oracle = truncated_sum(mdp.transition_matrix(pi), mdp.expected_reward(pi))
    t = truncated_sum(mdp.transition_matrix(pi), mdp.nonterminal)  # expected lengths
    assert t.max() <= exact.MAX_EXPECTED_STEPS
    # both sides carry an error of about kappa * eps, kappa <= 2 max(t)
    np.testing.assert_allclose(v, oracle, rtol=max(1e-10, 1e3 * t.max() * np.finfo(float).eps))
    assert np.all(v[~mdp.terminal] <= -1.0 + 1e-9)  # at least one step of reward -1


@pytest.mark.parametrize("c", [6.0, 8.0, 10.0, 20.0, 40.0, 300.0])
def test_cliff_walking_near_loop_is_refused_with_states_and_lengths(c):
    mdp = envs.cliff_walking()
    pi = cliff_policy(mdp, c)
    for fn in (exact.objective, exact.evaluate, exact.occupancy):
        with pytest.raises(ImproperPolicyError, match=r"nearly improper.*(steps|trapped among states)"):
            fn(mdp, pi)
    pol = TabularSoftmax(mdp.n_states, 4)
    theta = np.zeros(pol.theta_shape)
    theta[:, 0] = c
    with pytest.raises(ImproperPolicyError):
        exact.policy_gradient(mdp, pol, theta)


def test_cliff_walking_refusal_names_worst_states():
    mdp = envs.cliff_walking()
    with pytest.raises(ImproperPolicyError) as info:
        exact.objective(mdp, cliff_policy(mdp, 6.0))
    msg = str(info.value)
    # the longest expected episodes start far from the goal: top-left corner region
    assert "state 0 (" in msg or "state 12 (" in msg or "state 24 (" in msg or "state 36 (" in msg
    assert "e+08 steps" in msg


def test_exactly_improper_still_named_by_graph_search():
    mdp = envs.cliff_walking()
    with pytest.raises(ImproperPolicyError, match="never terminates"):
        exact.objective(mdp, cliff_policy(mdp, 800.0))


def two_cycle(gamma):
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 0] = 1.0
    return MDP(P, np.array([[1.0], [0.0]]), np.array([1.0, 0.0]), gamma=gamma)


@pytest.mark.parametrize("sparse", [False, True])
def test_discounted_ill_conditioned_is_refused(sparse):
    mdp = two_cycle(1.0 - 1e-12)
    if sparse:
        mdp = mdp.replace(P=sp.csr_matrix(mdp.P_flat()))
    with pytest.raises(NumericalError, match="ill-conditioned.*MAX_CONDITION"):
        exact.objective(mdp, np.ones((2, 1)))


@pytest.mark.parametrize("gamma", [0.9, 1.0 - 1e-6, 1.0 - 1e-9])
def test_discounted_near_one_is_accurate(gamma):
    """Closed form of the two-cycle: V = (1, gamma) / (1 - gamma^2)."""
    v = exact.evaluate(two_cycle(gamma), np.ones((2, 1)))[0]
    one_minus_g2 = (1.0 - gamma) * (1.0 + gamma)
    np.testing.assert_allclose(v, np.array([1.0, gamma]) / one_minus_g2, rtol=1e-5)


def test_residual_check_catches_a_wrong_solve(monkeypatch):
    """A deliberately wrong dense solve (relative error 1e-8) is refused, not returned."""
    mdp = envs.garnet(30, 3, 4, rng=0, sparse=False)
    pi = np.full((30, 3), 1 / 3)
    exact.objective(mdp, pi)  # fine unperturbed
    real_lapack = exact._lapack

    def wrong_lapack(name, a):
        fn = real_lapack(name, a)
        if name != "getrs":
            return fn

        def getrs(*args, **kw):
            x, info = fn(*args, **kw)
            return x * (1 + 1e-8), info
        return getrs

    monkeypatch.setattr(exact, "_lapack", wrong_lapack)
    with pytest.raises(NumericalError, match="relative residual"):
        exact.objective(mdp, pi)


def test_convergence_error_is_a_numerical_error():
    assert issubclass(exact.ConvergenceError, NumericalError)


@given(problems(sparse=False, kinds=("discounted", "terminal")))
def test_condition_number_is_norm_times_longest_expected_length(problem):
    """kappa_inf(I - gamma P_pi) = ||I - gamma P_pi||_inf max_s t(s), t = expected_steps,
    because the inverse is entrywise non-negative (the identity behind the guard)."""
    mdp, pol, theta = problem
    pi = pol.probs(theta)
    M = np.eye(mdp.n_states) - mdp.gamma * mdp.transition_matrix(pi)
    t = exact.expected_steps(mdp, pi)
    kappa = np.linalg.norm(M, np.inf) * t.max()
    assert kappa == pytest.approx(np.linalg.cond(M, np.inf), rel=1e-8)
    assert np.all(np.linalg.solve(M, np.eye(mdp.n_states)) >= -1e-12)


@pytest.mark.parametrize("p", [0.5, 1e-4])
def test_expected_steps_of_the_chain(p):
    t = exact.expected_steps(chain(p), np.ones((2, 1)))
    np.testing.assert_allclose(t, [chain_value(p), 0.0], rtol=1e-12)
