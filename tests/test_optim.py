"""Optimizers against published theory, on small instances.

* Mei, Xiao, Szepesvari, Schuurmans (2020), "On the global convergence rates of softmax
  policy gradient methods": exact softmax PG on the bandit r = (1, 0.9, 0.1), eta = 2/5,
  has sub-optimality Theta(1/t); from (0.05, 0.01, 0.94) it is near-optimal quickly, from
  (0.01, 0.05, 0.94) it plateaus for thousands of iterations.
* Agarwal, Kakade, Lee, Mahajan (2021), Theorem 5.3: NPG from theta = 0 with rewards in
  [0, 1] has V* - V_T <= log|A| / (eta T) + 1 / ((1 - gamma)^2 T).
* Cen, Cheng, Chen, Wei, Chi (2021), Theorem 1: entropy-regularized NPG has
  ||Q*_tau - Q_tau^(t)||_inf <= C1 gamma (1 - eta tau)^t.
"""
import numpy as np
import pytest

from tabularpg import LinearSoftmax, TabularSoftmax, envs, exact, optim, solve
from tabularpg import estimators as E
from tabularpg import objectives as O


def bandit_run(start, n_iter):
    mdp = envs.bandit([1.0, 0.9, 0.1])
    return optim.policy_gradient_ascent(mdp, TabularSoftmax(1, 3), np.log([start]), step_size=0.4, n_iter=n_iter)


def test_mei_rate_is_order_one_over_t():
    r = bandit_run((0.05, 0.01, 0.94), 10_000)
    t = np.array([1000, 3000, 10_000])
    scaled = (1.0 - r.j[t]) * t
    assert np.all((scaled > 0.5) & (scaled < 5.0)), scaled  # bounded, and not going to 0
    assert scaled[-1] / scaled[0] > 0.8


def test_mei_plateau_depends_on_the_start():
    fast = np.argmax(bandit_run((0.05, 0.01, 0.94), 1000).j >= 0.99)
    slow_run = bandit_run((0.01, 0.05, 0.94), 8000)
    assert 0 < fast < 500
    assert not np.any(slow_run.j[:2000] >= 0.99)  # still on the plateau after 2000 iterations
    assert np.any(slow_run.j >= 0.99)


@pytest.mark.parametrize("seed", [0, 1])
def test_agarwal_npg_bound(seed):
    mdp = envs.garnet(15, 4, 3, rng=seed, gamma=0.9)
    R = (mdp.r_sa - mdp.r_sa.min()) / np.ptp(mdp.r_sa)  # rewards in [0, 1]
    mdp = mdp.replace(R=R)
    j_star = mdp.mu @ solve.policy_iteration(mdp).v
    eta = 0.5
    r = optim.natural_policy_gradient(mdp, TabularSoftmax(15, 4), np.zeros((15, 4)), step_size=eta / (1 - 0.9),
                                      n_iter=40)
    T = np.arange(1, 41)
    assert np.all(j_star - r.j[1:] <= np.log(4) / (eta * T) + 1 / ((1 - 0.9) ** 2 * T))
    assert j_star - r.j[-1] < 1e-3


def test_npg_closed_form_equals_fisher_solve():
    mdp = envs.garnet(5, 3, 2, rng=2)
    pol = TabularSoftmax(5, 3)
    a = optim.natural_policy_gradient(mdp, pol, np.zeros((5, 3)), step_size=1.0, n_iter=3)
    b = optim.natural_policy_gradient(mdp, pol, np.zeros((5, 3)), step_size=1.0, n_iter=3, closed_form=False)
    np.testing.assert_allclose(a.j, b.j, rtol=1e-10)


def _cen_run(mdp, tau, step_size, n):
    """Entropy-NPG iterates theta_0..theta_n from 0, one step at a time."""
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    thetas = [np.zeros((mdp.n_states, mdp.n_actions))]
    for _ in range(n):
        thetas.append(optim.natural_policy_gradient(mdp, pol, thetas[-1], step_size=step_size, n_iter=1,
                                                    tau=tau).theta)
    return pol, thetas


def _cen_violations(mdp, tau, eta, pol, thetas, sol):
    """Cen et al. (2021) Theorem 1, for t >= 0 (rewards in [0, 1], 0 < eta <= (1 - gamma)/tau):
    ||Q*_tau - Q^(t+1)||_inf <= C1 gamma (1 - eta tau)^t,
    ||log pi*_tau - log pi^(t+1)||_inf <= 2 C1 / tau (1 - eta tau)^t,
    C1 = ||Q*_tau - Q^(0)||_inf + 2 tau (1 - eta tau / (1 - gamma)) ||log pi*_tau - log pi^(0)||_inf."""
    gamma = mdp.gamma
    pi0 = pol.probs(thetas[0])
    q0 = O.entropy_analyze(mdp, pi0, tau).q
    C1 = np.abs(sol.q - q0).max() + 2 * tau * (1 - eta * tau / (1 - gamma)) * np.abs(
        np.log(sol.pi) - np.log(pi0)).max()
    bad = 0
    for t, th in enumerate(thetas[1:]):
        pi = pol.probs(th)
        q = O.entropy_analyze(mdp, pi, tau).q
        bad += np.abs(sol.q - q).max() > C1 * gamma * (1 - eta * tau) ** t + 1e-10
        bad += np.abs(np.log(sol.pi) - np.log(pi)).max() > 2 * C1 / tau * (1 - eta * tau) ** t + 1e-10
    return bad


def test_cen_entropy_npg_linear_rate():
    """Oracle: soft value iteration (Q*_tau, pi*_tau) and Cen et al.'s Theorem 1 with their
    step eta; ours is step_size = eta / (1 - gamma) (unnormalized occupancy, see optim's docstring)."""
    gamma, tau = 0.9, 0.1
    mdp = envs.garnet(10, 3, 3, rng=0, gamma=gamma)
    mdp = mdp.replace(R=(mdp.R - mdp.r_sa.min()) / np.ptp(mdp.r_sa))  # rewards in [0, 1]
    sol = O.soft_value_iteration(mdp, tau)
    for eta in (0.5 * (1 - gamma) / tau, (1 - gamma) / tau):  # the second is soft policy iteration
        pol, thetas = _cen_run(mdp, tau, eta / (1 - gamma), 25)
        assert _cen_violations(mdp, tau, eta, pol, thetas, sol) == 0
    np.testing.assert_allclose(pol.probs(thetas[-1]), sol.pi, atol=1e-8)
    # Cen et al.'s update in their own form: pi+ ∝ pi^(1 - eta tau/(1-gamma)) exp(eta Q_tau/(1-gamma))
    eta = 0.5 * (1 - gamma) / tau
    pi = pol.probs(np.random.default_rng(0).normal(size=(10, 3)))
    q = O.entropy_analyze(mdp, pi, tau).q
    cen = pi ** (1 - eta * tau / (1 - gamma)) * np.exp(eta * q / (1 - gamma))
    ours = optim.natural_policy_gradient(mdp, pol, np.log(pi), step_size=eta / (1 - gamma), n_iter=1, tau=tau)
    np.testing.assert_allclose(pol.probs(ours.theta), cen / cen.sum(axis=1, keepdims=True), rtol=1e-10)
    # the mapping matters (the bound alone is too loose to see it): Cen's eta as our step is another update
    wrong = optim.natural_policy_gradient(mdp, pol, np.log(pi), step_size=eta, n_iter=1, tau=tau)
    assert np.abs(pol.probs(wrong.theta) - cen / cen.sum(axis=1, keepdims=True)).max() > 1e-2


def test_dropping_gamma_t_reverses_the_gradient():
    """Exact values: the undiscounted update and the gradient point in opposite directions;
    ascending the undiscounted update lowers J while the true gradient raises it."""
    mdp, pol, theta = envs.discount_counterexample()
    g = exact.policy_gradient(mdp, pol, theta)
    u = E.expected("reward_to_go_undiscounted", mdp, pol, theta)
    # own exact computation of the undiscounted update: sum_t Pr(s_t = s) pi(a|s) Q_t(s, a),
    # with Pr(s_t = .) propagated forward by P_pi (no terminal states here)
    pi = pol.probs(theta)
    ev = exact.analyze(mdp, pi)
    P_pi = np.asarray(mdp.transition_matrix(pi))
    p_s, W = mdp.mu.copy(), np.zeros_like(pi)
    for t in range(mdp.horizon):
        W += p_s[:, None] * pi * ev.q[t]
        p_s = p_s @ P_pi
    np.testing.assert_allclose(u, pol.contract_table(theta, W), rtol=1e-12)
    assert float(g @ u) < 0
    j0 = exact.objective(mdp, pol.probs(theta))
    th_u, th_g = theta.copy(), theta.copy()
    for _ in range(50):
        th_u = th_u + 0.5 * E.expected("reward_to_go_undiscounted", mdp, pol, th_u)
        th_g = th_g + 0.5 * exact.policy_gradient(mdp, pol, th_g)
    assert exact.objective(mdp, pol.probs(th_u)) < j0 < exact.objective(mdp, pol.probs(th_g))


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_trpo_accepted_steps_satisfy_the_kl_constraint(kind):
    mdp = envs.garnet(8, 3, 3, rng=3)
    pol = TabularSoftmax(8, 3) if kind == "tabular" else LinearSoftmax(np.random.default_rng(0).normal(size=(8, 3, 4)))
    delta = 0.02
    r = optim.trpo(mdp, pol, np.zeros(pol.theta_shape), delta=delta, n_iter=15)
    assert np.all(r.kl <= delta + 1e-12)
    np.testing.assert_allclose(r.kl, r.extra["kl_used"], atol=1e-12)  # exact KL recomputed independently
    assert np.all(np.diff(r.j) > -1e-12) and r.j[-1] > r.j[0]


def test_sampled_trpo_respects_the_empirical_kl_and_improves():
    """Sampled TRPO: every accepted step has KL <= delta under the batch's empirical
    occupancy (recorded), and J (exact) improves."""
    mdp = envs.garnet(6, 3, 2, rng=5)
    pol = TabularSoftmax(6, 3)
    delta = 0.02
    r = optim.trpo(mdp, pol, np.zeros((6, 3)), delta=delta, n_iter=10, estimator="reward_to_go",
                   baseline="mean", n_episodes=200, horizon=30, rng=0)
    used = r.extra["kl_used"]
    assert np.all(used <= delta) and np.sum(r.step > 0) >= 5
    assert np.all(used[r.step > 0] > 0)
    assert r.j[-1] > r.j[0] + 0.05


def test_conjugate_gradient_solves_spd_system():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    F = M @ M.T + 0.1 * np.eye(6)
    b = rng.normal(size=6)
    np.testing.assert_allclose(optim.conjugate_gradient(lambda v: F @ v, b, n_iter=50), np.linalg.solve(F, b),
                               atol=1e-8)


@pytest.mark.parametrize("variant", ["clip", "adaptive_kl"])
def test_ppo_improves(variant):
    mdp = envs.garnet(8, 3, 3, rng=4)
    pol = TabularSoftmax(8, 3)
    r = optim.ppo(mdp, pol, np.zeros((8, 3)), n_iter=10, lr=3.0, adaptive_kl=variant == "adaptive_kl")
    assert r.j[-1] > r.j[0]
    if variant == "adaptive_kl":  # the dual update, replayed from the recorded exact KLs (beta0 = 1)
        beta = np.concatenate([[1.0], r.extra["beta"]])
        factor = np.where(r.kl > 1.5 * 0.01, 2.0, np.where(r.kl < 0.01 / 1.5, 0.5, 1.0))
        np.testing.assert_array_equal(beta[1:], beta[:-1] * factor)


def test_ppo_adaptive_kl_beta_moves_toward_the_target():
    """Tiny steps (KL << target) halve beta every iteration; a huge first step doubles it."""
    mdp = envs.garnet(8, 3, 3, rng=4)
    pol = TabularSoftmax(8, 3)
    small = optim.ppo(mdp, pol, np.zeros((8, 3)), n_iter=4, lr=1e-3, adaptive_kl=True, kl_target=0.01)
    np.testing.assert_array_equal(small.extra["beta"], [0.5, 0.25, 0.125, 0.0625])
    big = optim.ppo(mdp, pol, np.zeros((8, 3)), n_iter=1, lr=30.0, adaptive_kl=True, kl_target=0.01)
    assert big.kl[0] > 0.015 and big.extra["beta"][0] == 2.0


def test_sampled_algorithms_improve():
    mdp = envs.garnet(6, 3, 2, rng=5)
    pol = TabularSoftmax(6, 3)
    th0 = np.zeros((6, 3))
    for run in (lambda: optim.policy_gradient_ascent(mdp, pol, th0, step_size=2.0, n_iter=15, estimator="reward_to_go",
                                                     n_episodes=200, horizon=30, rng=0),
                lambda: optim.rloo(mdp, pol, th0, k=4, n_iter=15, step_size=2.0, horizon=30, rng=0),
                lambda: optim.actor_critic(mdp, pol, th0, n_iter=15, step_size=2.0, horizon=30, rng=0),
                lambda: optim.ppo(mdp, pol, th0, n_iter=8, lr=2.0, n_episodes=200, horizon=30, rng=0)):
        r = run()
        assert r.j[-1] > r.j[0] + 0.05


def test_dpo_gradient_and_minimizer():
    """Gradient = complex-step of the population loss; its minimizer is
    softmax(log pi_ref + r / beta) up to per-prompt constants (Rafailov et al. 2023)."""
    rng = np.random.default_rng(0)
    X, Y, beta = 3, 4, 0.5
    reward = rng.normal(size=(X, Y))
    pi_ref = rng.dirichlet(np.ones(Y), size=X)
    mu = np.full(X, 1 / X)
    pol = TabularSoftmax(X, Y)
    theta = rng.normal(size=(X, Y))
    loss, g = optim.dpo_population_loss(pol, theta, pi_ref, reward, mu, beta=beta)

    def f(th):
        h = pol.log_probs(th) - np.log(pi_ref)
        u = beta * (h[:, :, None] - h[:, None, :])
        w = 2 * mu[:, None, None] * pi_ref[:, :, None] * pi_ref[:, None, :] / (1 + np.exp(-(reward[:, :, None] - reward[:, None, :])))
        return np.sum(w * np.log1p(np.exp(-u)))

    assert loss == pytest.approx(f(theta), rel=1e-12)
    np.testing.assert_allclose(g, np.array([f(theta + 1j * 1e-30 * e.reshape(X, Y)).imag / 1e-30
                                            for e in np.eye(X * Y)]).reshape(X, Y), atol=1e-12)
    r = optim.dpo(pol, np.zeros((X, Y)), pi_ref, beta=beta, n_iter=3000, lr=20.0, reward=reward, mu=mu)
    np.testing.assert_allclose(pol.probs(r.theta), optim.dpo_optimal_policy(pi_ref, reward, beta=beta), atol=1e-4)
    # sampled preferences: the loss gradient on pairs is unbiased for the population one
    from tabularpg.testing import assert_unbiased

    x, yw, yl = optim.sample_preferences(reward, pi_ref, mu, 20000, rng=1)
    per_pair = np.array([optim.dpo_loss(pol, theta, pi_ref, (x[i:i + 1], yw[i:i + 1], yl[i:i + 1]), beta=beta)[1].ravel()
                         for i in range(2000)])
    assert_unbiased(per_pair, g, alpha=1e-6)


_M = envs.garnet(3, 2, 2, rng=0)
_P = TabularSoftmax(3, 2)
_T0 = np.zeros((3, 2))
_REF = np.full((2, 2), 0.5)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: optim.trpo(_M, _P, _T0, delta=0.0, n_iter=1), "`delta` must be > 0", id="trpo-delta"),
    pytest.param(lambda: optim.trpo(_M, _P, _T0, n_iter=1, backtrack=1.5), "`backtrack`", id="trpo-backtrack"),
    pytest.param(lambda: optim.ppo(_M, _P, _T0, n_iter=1, clip=2.0), "`clip`", id="ppo-clip"),
    pytest.param(lambda: optim.ppo(_M, _P, _T0, n_iter=1, adaptive_kl=True, kl_target=0.0), "`kl_target`",
                 id="ppo-kl_target"),
    pytest.param(lambda: optim.policy_gradient_ascent(_M, _P, _T0, step_size=-1.0, n_iter=1), "`step_size`",
                 id="pg-step_size"),
    pytest.param(lambda: optim.policy_gradient_ascent(_M, _P, _T0, step_size=1.0, n_iter=-1), "`n_iter`",
                 id="pg-n_iter"),
    pytest.param(lambda: optim.policy_gradient_ascent(_M, _P, _T0, step_size=1.0, n_iter=1, tau=0.1,
                                                      estimator="reinforce", horizon=5), "`tau`",
                 id="pg-tau-with-estimator"),
    pytest.param(lambda: optim.rloo(_M, _P, _T0, k=1, n_iter=1, step_size=1.0, horizon=5), "`k`", id="rloo-k"),
    pytest.param(lambda: optim.natural_policy_gradient(_M, LinearSoftmax(np.ones((3, 2, 1))), np.zeros(1),
                                                       step_size=1.0, n_iter=1, closed_form=True), "closed_form",
                 id="npg-closed-form-linear"),
    pytest.param(lambda: O.soft_value_iteration(_M, 0.0), "`tau` must be > 0", id="soft-vi-tau"),
    pytest.param(lambda: optim.dpo_optimal_policy(np.array([[1.0, 0.0]] * 2), np.zeros((2, 2)), beta=1.0),
                 "`pi_ref` must have full support", id="dpo-ref-support"),
    pytest.param(lambda: optim.dpo_optimal_policy(_REF, np.zeros((2, 3)), beta=1.0), "`reward` must have the shape",
                 id="dpo-reward-shape"),
    pytest.param(lambda: optim.dpo_population_loss(TabularSoftmax(2, 2), np.zeros((2, 2)), _REF, np.zeros((2, 2)),
                                                   np.array([0.2, 0.2]), beta=1.0), "`mu`", id="dpo-mu"),
    pytest.param(lambda: optim.dpo_loss(TabularSoftmax(2, 2), np.zeros((2, 2)), _REF, ([0], [0], [1]), beta=0.0),
                 "`beta` must be > 0", id="dpo-beta"),
    pytest.param(lambda: optim.dpo(TabularSoftmax(2, 2), np.zeros((2, 2)), _REF, beta=1.0, n_iter=1, lr=1.0),
                 "needs `prefs`", id="dpo-no-data"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
