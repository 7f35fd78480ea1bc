"""Sparse exact solvers: the one-process primal-dual BiCG, its fallbacks, and the
true-residual check. Oracle: the dense LU solve of the same MDP."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given

from tabularpg import TabularSoftmax, envs, exact
from tabularpg.testing.strategies import problems


def as_sparse(mdp):
    return mdp.replace(P=sp.csr_matrix(mdp.P_flat()))


@given(problems(sparse=False, kinds=("discounted", "terminal")))
def test_sparse_gradient_equals_dense(problem):
    mdp, pol, theta = problem
    g_dense = exact.policy_gradient(mdp, pol, theta)
    g_sparse = exact.policy_gradient(as_sparse(mdp), pol, theta)
    np.testing.assert_allclose(g_sparse, g_dense, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(g_dense).max()))


def test_bicg_breakdown_falls_back_to_separate_solves():
    """mu . r_pi = 0 breaks BiCG down at its first step; the separate solves take over."""
    mdp = envs.garnet(50, 3, 4, rng=1, sparse=False)
    R = np.array(mdp.r_sa)
    R[0] = 0.0  # no reward where the episode starts
    mu = np.zeros(50)
    mu[0] = 1.0
    mdp = mdp.replace(R=R, mu=mu)
    pi = np.full((50, 3), 1 / 3)
    dense, sparse = exact.analyze(mdp, pi), exact.analyze(as_sparse(mdp), pi)
    np.testing.assert_allclose(sparse.v, dense.v, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sparse.d, dense.d, rtol=1e-9, atol=1e-11)


def test_sparse_residual_check_refuses_a_wrong_solve(monkeypatch):
    """A Krylov solver that is wrong by a fixed 1e-6 in every entry (so that the
    residual corrections cannot repair it) is caught by the true-residual check and
    nothing is returned."""
    mdp = envs.garnet(200, 3, 4, rng=0, sparse=True)
    pi = np.full((200, 3), 1 / 3)
    exact.objective(mdp, pi)
    real = exact._bicgstab

    def sloppy(matvec, b, tol_abs, maxiter):
        x, ok = real(matvec, b, tol_abs, maxiter)
        return x + 1e-6, ok

    monkeypatch.setattr(exact, "_bicgstab", sloppy)
    monkeypatch.setattr(exact.spla, "gmres", lambda op, b, x0=None, **kw: (x0, 1))
    with pytest.raises(exact.ConvergenceError, match="relative residual"):
        exact.objective(mdp, pi)


def test_sparse_rtol_is_met_on_the_true_residual():
    mdp = envs.garnet(2000, 4, 5, rng=3, sparse=True)
    pol = TabularSoftmax(2000, 4)
    pi = pol.probs(np.random.default_rng(0).normal(size=pol.theta_shape))
    for rtol in (1e-6, 1e-10, 1e-12):
        ev = exact.analyze(mdp, pi, rtol=rtol)
        M = np.eye(2000) - mdp.gamma * mdp.transition_matrix(pi).toarray()
        r_pi = mdp.expected_reward(pi)
        assert np.linalg.norm(r_pi - M @ ev.v) <= rtol * np.linalg.norm(r_pi)
        assert np.linalg.norm(mdp.mu - M.T @ ev.d) <= rtol * np.linalg.norm(mdp.mu)


def test_sparse_terminal_gamma_one_matches_dense():
    mdp = envs.cliff_walking()
    pol = TabularSoftmax(mdp.n_states, 4)
    theta = np.random.default_rng(2).normal(size=pol.theta_shape)
    g_dense = exact.policy_gradient(mdp, pol, theta)
    g_sparse = exact.policy_gradient(as_sparse(mdp), pol, theta)
    np.testing.assert_allclose(g_sparse, g_dense, rtol=1e-8, atol=1e-8 * np.abs(g_dense).max())


@pytest.mark.parametrize("kind", ["discounted", "terminal", "complex step"])
def test_two_thread_pair_equals_one_thread_and_dense(monkeypatch, kind):
    """Above ``PARALLEL_MIN_NNZ`` the adjoint products run on a second thread; the
    iterates are the same arithmetic, so ``V`` and ``d`` agree with the one-thread run to
    rounding and with the dense LU (the oracle) to the solve tolerance."""
    mdp = envs.garnet(300, 3, 4, rng=2, sparse=False)
    if kind == "terminal":
        mdp = envs.cliff_walking()
    S, A = mdp.n_states, mdp.n_actions
    pol = TabularSoftmax(S, A)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape).astype(complex)
    if kind == "complex step":
        theta[0, 0] += 1e-20j
    pi = pol.probs(theta) if kind == "complex step" else pol.probs(theta.real)
    threads = []
    real_pair = exact._bicg_pair

    def spy(*args, pool=None, **kw):
        threads.append(pool is not None)
        return real_pair(*args, pool=pool, **kw)

    monkeypatch.setattr(exact, "_bicg_pair", spy)
    monkeypatch.setattr(exact, "_n_cpus", lambda: 2)
    monkeypatch.setattr(exact, "PARALLEL_MIN_NNZ", 0)
    two = exact.analyze(as_sparse(mdp), pi)
    monkeypatch.setattr(exact, "PARALLEL_MIN_NNZ", 10**12)
    one = exact.analyze(as_sparse(mdp), pi)
    assert threads == [True, False]
    np.testing.assert_allclose(two.v, one.v, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(two.d, one.d, rtol=1e-13, atol=1e-13)
    dense = exact.analyze(mdp, pi)
    np.testing.assert_allclose(two.v, dense.v, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(two.d, dense.d, rtol=1e-9, atol=1e-10)
    if kind == "complex step":  # the imaginary parts (derivatives) agree too
        np.testing.assert_allclose(two.v.imag, dense.v.imag, rtol=1e-8, atol=1e-30)
