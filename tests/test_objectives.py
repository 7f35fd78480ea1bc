"""Entropy regularization and the TRPO/PPO surrogates against independent oracles.

Oracles: complex-step derivatives of the regularized objective and of the surrogates,
central differences of their gradients (KL Hessian-vector products), the exact policy
gradient (surrogate gradient at theta_old), and soft value iteration (stationarity).
"""
import numpy as np
import pytest
from hypothesis import given

from tabularpg import LinearSoftmax, TabularSoftmax, envs, exact
from tabularpg import objectives as O
from tabularpg.testing.strategies import problems

H = 1e-30


def cs_grad(f, theta):
    return np.array([f(theta + 1j * H * e.reshape(theta.shape)).imag / H for e in np.eye(theta.size)]).reshape(theta.shape)


@given(problems(sparse=False))
def test_entropy_gradient_matches_complex_step(problem):
    mdp, pol, theta = problem
    tau = 0.37
    g = O.entropy_policy_gradient(mdp, pol, theta, tau)
    oracle = cs_grad(lambda th: O.entropy_objective(mdp, pol.probs(th), tau), theta)
    assert np.max(np.abs(g - oracle)) <= 1e-9 * max(1.0, np.abs(oracle).max())


def test_entropy_objective_adds_discounted_entropy():
    """J_tau - J = tau sum_s d(s) H(pi(.|s)) (occupancy-weighted entropy)."""
    mdp = envs.garnet(5, 3, 2, rng=0)
    pi = TabularSoftmax(5, 3).probs(np.random.default_rng(0).normal(size=(5, 3)))
    ent = -np.sum(pi * np.log(pi), axis=1)
    d = exact.occupancy(mdp, pi)
    assert O.entropy_objective(mdp, pi, 0.2) - exact.objective(mdp, pi) == pytest.approx(0.2 * d @ ent, rel=1e-12)


@pytest.mark.parametrize("horizon", [None, 4])
def test_soft_value_iteration_is_stationary_and_optimal(horizon):
    mdp = envs.garnet(6, 3, 3, rng=1, horizon=horizon)
    tau = 0.3
    sol = O.soft_value_iteration(mdp, tau)
    pol = TabularSoftmax(6, 3)
    if horizon is None:
        theta = np.log(sol.pi)
        assert np.abs(O.entropy_policy_gradient(mdp, pol, theta, tau)).max() < 1e-9
        j_star = O.entropy_objective(mdp, sol.pi, tau)
        assert j_star == pytest.approx(mdp.mu @ sol.v, rel=1e-10)
        rng = np.random.default_rng(0)
        for _ in range(20):  # no random policy does better
            assert O.entropy_objective(mdp, pol.probs(rng.normal(size=(6, 3))), tau) <= j_star + 1e-10
    else:
        assert sol.v.shape == (4, 6)


@given(problems(sparse=False, kinds=("discounted", "terminal")))
def test_surrogate_gradient_equals_policy_gradient_at_old(problem):
    mdp, pol, theta = problem
    sur = O.Surrogate.at(mdp, pol, theta)
    val, g = O.surrogate(sur, pol, theta)
    assert abs(val) < 1e-10 * max(1, np.abs(sur.adv_old).max() * sur.d_old.sum())  # sum_a pi A = 0
    np.testing.assert_allclose(g, exact.policy_gradient(mdp, pol, theta), atol=1e-10)
    # the surrogate's own gradient away from theta_old, by complex step
    th2 = theta + 0.3
    oracle = cs_grad(lambda th: np.sum(sur.d_old[:, None] * pol.probs(th) * sur.adv_old), th2)
    np.testing.assert_allclose(O.surrogate(sur, pol, th2)[1], oracle, atol=1e-10)


@given(problems(sparse=False, kinds=("discounted",)))
def test_kl_gradient_and_hessian_vector_product(problem):
    mdp, pol, theta = problem
    sur = O.Surrogate.at(mdp, pol, theta)
    th2 = theta + np.linspace(-0.5, 0.5, theta.size).reshape(theta.shape)
    kl, g = O.expected_kl(sur, pol, th2)
    assert kl >= -1e-15 and O.expected_kl(sur, pol, theta)[0] == pytest.approx(0.0, abs=1e-14)

    def kl_c(th):
        lp = pol.log_probs(th)
        return np.sum(sur.d_old[:, None] * sur.pi_old * (np.log(sur.pi_old) - lp))

    np.testing.assert_allclose(g, cs_grad(kl_c, th2), atol=1e-10)
    v = np.cos(np.arange(theta.size)).reshape(theta.shape)
    h = 1e-6
    fd = (O.expected_kl(sur, pol, th2 + h * v)[1] - O.expected_kl(sur, pol, th2 - h * v)[1]) / (2 * h)
    np.testing.assert_allclose(O.kl_hvp(sur, pol, th2, v), fd, atol=1e-7 * max(1, np.abs(fd).max()))
    # at theta_old the Hessian is the Fisher matrix
    np.testing.assert_allclose(O.kl_hvp(sur, pol, theta, v), exact.fisher_vector_product(mdp, pol, theta, v),
                               atol=1e-10)


def test_ppo_clipped_gradient_is_zero_where_clipped_against_the_advantage():
    mdp = envs.garnet(4, 3, 2, rng=3)
    pol = TabularSoftmax(4, 3)
    theta_old = np.random.default_rng(0).normal(size=(4, 3))
    sur = O.Surrogate.at(mdp, pol, theta_old)
    theta = theta_old + 2.0 * np.sign(sur.adv_old)  # push every ratio out of [1-eps, 1+eps] along A
    rho = pol.probs(theta) / sur.pi_old
    clipped = ((rho >= 1.2) & (sur.adv_old > 0)) | ((rho <= 0.8) & (sur.adv_old < 0))
    assert clipped.sum() >= 6
    val, g = O.ppo_clip(sur, pol, theta, clip=0.2)
    assert val == pytest.approx(np.sum(sur.d_old[:, None] * sur.pi_old * np.minimum(
        rho * sur.adv_old, np.clip(rho, 0.8, 1.2) * sur.adv_old)), rel=1e-12)
    W = sur.d_old[:, None] * pol.probs(theta) * sur.adv_old * ~clipped
    np.testing.assert_allclose(g, pol.contract_table(theta, W), atol=1e-14)
    # complex-step oracle of L_clip where no ratio sits on a kink
    f = lambda th: np.sum(sur.d_old[:, None] * sur.pi_old * np.where(
        clipped, np.clip(rho, 0.8, 1.2) * sur.adv_old, pol.probs(th) / sur.pi_old * sur.adv_old))
    np.testing.assert_allclose(g, cs_grad(f, theta), atol=1e-10)
    # all clipped: the gradient vanishes entirely
    all_clipped = theta_old + 50.0 * np.sign(sur.adv_old)
    rho = pol.probs(all_clipped) / sur.pi_old
    assert np.all(((rho >= 1.2) & (sur.adv_old > 0)) | ((rho <= 0.8) & (sur.adv_old < 0)) | (sur.adv_old == 0))
    assert np.abs(O.ppo_clip(sur, pol, all_clipped)[1]).max() == 0.0


def test_sampled_surrogate_weights_are_unbiased():
    """Sampled clipped-surrogate gradient with A_t = A_old(s_t, a_t) (finite horizon)
    matches the exact one within the Hotelling test at alpha = 1e-6."""
    from tabularpg.sampling import sample
    from tabularpg.testing import assert_unbiased

    mdp = envs.garnet(3, 2, 2, rng=4, horizon=4)
    pol = LinearSoftmax(np.random.default_rng(1).normal(size=(3, 2, 2)))
    theta_old = np.zeros(2)
    theta = np.array([0.4, -0.3])
    pi_old = pol.probs(theta_old)
    ev = exact.analyze(mdp, pi_old)
    batch = sample(mdp, pol, theta_old, 20000, rng=2)
    t_idx = np.broadcast_to(np.arange(batch.width), batch.states.shape)
    adv = ev.advantage[t_idx, batch.states, batch.actions]
    w = O.sample_surrogate_weights(batch, pol, theta, pi_old, adv, clip=0.2)
    e, t = np.nonzero(batch.alive)
    samples = pol.contract_episodes(theta, e, batch.n_episodes, batch.states[e, t], w[e, t], batch.actions[e, t])
    # exact: sum_t d_t pi_theta A_t 1[unclipped]
    rho = pol.probs(theta) / pi_old
    active = ~(((rho >= 1.2) & (ev.advantage > 0)) | ((rho <= 0.8) & (ev.advantage < 0)))
    W = np.einsum("ts,sa,tsa->sa", ev.d, pol.probs(theta), ev.advantage * active)
    assert not active.all()  # some ratios are clipped against the advantage
    assert_unbiased(samples, pol.contract_table(theta, W), alpha=1e-6)
    # the sample size detects deliberately wrong variants: no clipping indicator, no gamma^t
    for wrong in ({"clip": None}, {"clip": 0.2, "discount": False}):
        w = O.sample_surrogate_weights(batch, pol, theta, pi_old, adv, **wrong)
        bad = pol.contract_episodes(theta, e, batch.n_episodes, batch.states[e, t], w[e, t], batch.actions[e, t])
        with pytest.raises(AssertionError):
            assert_unbiased(bad, pol.contract_table(theta, W), alpha=1e-6)
