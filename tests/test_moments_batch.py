"""Batch-coupled baselines (exact_batch_moments) and the exact optimal state baseline.

Oracles: every ordered tuple of enumerated trajectories weighted by its probability
(the N-episode estimate computed by ``estimate(...).mean`` on each tuple), Monte Carlo
over many batches at a stated false-alarm rate, and ``exact_moments`` at perturbed
baselines for the quadratic.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings

from tabularpg import LinearSoftmax, TabularSoftmax, ValidationError, envs, exact
from tabularpg.estimators import estimate
from tabularpg.moments import (
    baseline_quadratic,
    enumerate_trajectories,
    exact_batch_moments,
    exact_moments,
    optimal_baseline,
)
from tabularpg.sampling import sample
from tabularpg.testing import assert_covariance, assert_unbiased, covariance_test
from tabularpg.testing.strategies import problems

ESTIMATORS = ["reinforce", "reward_to_go", "reward_to_go_undiscounted"]


def _all_tuples(mdp, pol, theta, H, est, baseline, N):
    """Exact mean and covariance of the N-episode estimate over every ordered N-tuple."""
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), H)
    tot, sec = 0.0, 0.0
    for idx in itertools.product(range(prob.size), repeat=N):
        w = np.prod(prob[list(idx)])
        g = estimate(batch.select(list(idx)), pol, theta, est, baseline=baseline).mean.ravel()
        tot = tot + w * g
        sec = sec + w * np.outer(g, g)
    return tot, sec - np.outer(tot, tot)


@pytest.mark.parametrize("policy_kind", ["tabular", "linear"])
@pytest.mark.parametrize("est", ESTIMATORS)
def test_batch_moments_equal_all_tuples(est, policy_kind):
    """N = 3 (and N = 2) on MDPs with 8 and 32 trajectories: the U-statistic formula equals
    the probability-weighted average over every ordered tuple to 1e-12, for "mean" and
    "leave_one_out", on the truncated, finite and discounted cases."""
    for mdp, H, N in [(envs.garnet(2, 2, 1, rng=4, horizon=2, gamma=0.9), 2, 3),
                      (envs.garnet(2, 2, 2, rng=4, gamma=0.8), 2, 2)]:
        rng = np.random.default_rng(1)
        pol = TabularSoftmax(2, 2) if policy_kind == "tabular" else LinearSoftmax(rng.normal(size=(2, 2, 2)))
        theta = rng.normal(size=pol.theta_shape)
        for baseline in ("mean", "leave_one_out"):
            mean, cov = _all_tuples(mdp, pol, theta, H, est, baseline, N)
            m = exact_batch_moments(mdp, pol, theta, est, H, n_episodes=N, baseline=baseline)
            np.testing.assert_allclose(m.mean, mean, rtol=0, atol=1e-13)
            np.testing.assert_allclose(m.cov, cov, rtol=0, atol=1e-12 * np.abs(cov).max())
            assert np.abs(cov).max() > 1e-3


def test_batch_moments_against_monte_carlo():
    """RLOO with N = 5 on Garnet(5, 3, 2), H = 10: the covariance of 3000 independent batch
    means agrees with the exact one, and their mean with the exact mean (alpha = 1e-6);
    the per-episode covariance over N (which ignores the coupling) is rejected."""
    mdp = envs.garnet(5, 3, 2, rng=2, gamma=0.9)
    pol = TabularSoftmax(5, 3)
    theta = np.random.default_rng(0).normal(size=(5, 3))
    N, n_batches = 5, 3000
    m = exact_batch_moments(mdp, pol, theta, "reward_to_go", 10, n_episodes=N, baseline="leave_one_out")
    big = sample(mdp, pol, theta, N * n_batches, rng=1, horizon=10)
    G = np.array([estimate(big.select(slice(i * N, (i + 1) * N)), pol, theta, "reward_to_go",
                           baseline="leave_one_out").mean.ravel() for i in range(n_batches)])
    assert_unbiased(G, m.mean, cov=m.cov, alpha=1e-6)
    assert_covariance(G, m.cov, alpha=1e-6)
    naive = exact_moments(mdp, pol, theta, "reward_to_go", 10).cov / N
    assert not covariance_test(G, naive, alpha=1e-6).passed


def test_mean_baseline_is_a_scaled_rloo_and_tends_to_the_time_baseline():
    """Cov(mean baseline) = (1 - 1/N)^2 Cov(RLOO); N Cov(RLOO) -> Cov with the exact time
    baseline tau_t = E[G_t] as N grows (error O(1/N))."""
    mdp = envs.garnet(4, 2, 2, rng=0, horizon=6, gamma=0.9)
    pol = TabularSoftmax(4, 2)
    theta = np.random.default_rng(2).normal(size=(4, 2))
    for N in (2, 7):
        a = exact_batch_moments(mdp, pol, theta, "reward_to_go", n_episodes=N, baseline="mean")
        b = exact_batch_moments(mdp, pol, theta, "reward_to_go", n_episodes=N, baseline="leave_one_out")
        np.testing.assert_allclose(a.cov, (1 - 1 / N) ** 2 * b.cov, rtol=1e-12, atol=1e-15)
    pi = pol.probs(theta)
    ev = exact.analyze(mdp, pi)
    occ = exact.analyze(mdp.replace(gamma=1.0), pi).d            # Pr(s_t = s)
    tau = np.einsum("ts,ts->t", occ, ev.v)[:, None]
    limit = exact_moments(mdp, pol, theta, "reward_to_go", baseline=tau).cov
    errs = [np.abs(N * exact_batch_moments(mdp, pol, theta, "reward_to_go", n_episodes=N,
                                           baseline="leave_one_out").cov - limit).max() for N in (10, 100, 1000)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 2e-3 * np.abs(limit).max()
    assert errs[1] == pytest.approx(10 * errs[2], rel=0.05)


def test_batch_refusals():
    mdp = envs.garnet(3, 2, 2, rng=1, horizon=3)
    pol = TabularSoftmax(3, 2)
    with pytest.raises(ValidationError, match="not a polynomial"):
        exact_batch_moments(mdp, pol, pol.zeros(), "reinforce", n_episodes=4, baseline="optimal")
    with pytest.raises(ValidationError, match="n_episodes >= 2"):
        exact_batch_moments(mdp, pol, pol.zeros(), "reinforce", n_episodes=1, baseline="leave_one_out")
    with pytest.raises(ValidationError, match="estimator"):
        exact_batch_moments(mdp, pol, pol.zeros(), "gae", n_episodes=4, baseline="mean")
    z = exact_batch_moments(mdp, pol, pol.zeros(), "reinforce", n_episodes=1, baseline="mean")
    assert not z.cov.any() and not z.mean.any()   # the own return is the baseline: x = 0


@pytest.mark.parametrize("policy_kind", ["tabular", "linear"])
@pytest.mark.parametrize("est", ESTIMATORS)
def test_optimal_state_baseline(est, policy_kind):
    """The exact optimal state baseline: its trace is <= that of V^pi (at t = 0), of the
    best single constant and of no baseline; any perturbation d raises the trace by
    exactly d^T Q d >= 0 (checked against exact_moments at b* + d)."""
    mdp = envs.garnet(5, 3, 2, rng=3, horizon=6, gamma=0.9)
    rng = np.random.default_rng(5)
    pol = TabularSoftmax(5, 3) if policy_kind == "tabular" else LinearSoftmax(rng.normal(size=(5, 3, 4)))
    theta = rng.normal(size=pol.theta_shape)
    tr = lambda b: float(np.trace(exact_moments(mdp, pol, theta, est, baseline=b).cov))
    t0, c, Q = baseline_quadratic(mdp, pol, theta, est)
    b = optimal_baseline(mdp, pol, theta, est, kind="state")
    assert b.shape == (5,)
    v0 = exact.analyze(mdp, pol.probs(theta)).v[0]
    const = optimal_baseline(mdp, pol, theta, est, per_component=False)
    best = tr(b)
    assert best == pytest.approx(t0 - c @ b, rel=1e-10)
    assert best <= tr(v0) and best <= tr(const) and best <= tr(0.0) == pytest.approx(t0, rel=1e-12)
    assert best < tr(const) - 1e-6 * t0     # the state dependence buys something here
    for d in rng.normal(size=(4, 5)):
        assert tr(b + d) - best == pytest.approx(d @ Q @ d, rel=1e-8, abs=1e-12 * t0)
        assert d @ Q @ d > 0
    assert np.count_nonzero(Q - np.diag(np.diag(Q))) == 0      # diagonal for every policy class


@pytest.mark.parametrize("policy_kind", ["tabular", "linear"])
@pytest.mark.parametrize("est", ESTIMATORS)
def test_optimal_time_state_baseline(est, policy_kind):
    """Time-state baselines b[t, s] on a terminal MDP with gamma = 1 (truncated at 5): the
    quadratic is exact (exact_moments at random b), b* = c / diag(Q) beats the optimal
    state baseline and the time-indexed V_t^pi, and perturbations cost d^T Q d."""
    from tabularpg._verify_mc import _terminal_mdp

    mdp, H = _terminal_mdp(), 5
    rng = np.random.default_rng(7)
    pol = TabularSoftmax(3, 2) if policy_kind == "tabular" else LinearSoftmax(rng.normal(size=(3, 2, 2)))
    theta = rng.normal(size=pol.theta_shape)
    tr = lambda b: float(np.trace(exact_moments(mdp, pol, theta, est, H, baseline=b).cov))
    t0, c, Q = baseline_quadratic(mdp, pol, theta, est, H, kind="time_state")
    b = optimal_baseline(mdp, pol, theta, est, H, kind="time_state")
    assert b.shape == (H, 3) and Q.shape == (3 * H, 3 * H)
    for d in rng.normal(size=(3, H, 3)):
        x = (b + d).ravel()
        assert tr(b + d) == pytest.approx(t0 - 2 * c @ x + x @ Q @ x, rel=1e-10)
    v_t = exact.analyze(mdp.replace(horizon=H), pol.probs(theta)).v            # (H, S)
    best = tr(b)
    assert best <= tr(optimal_baseline(mdp, pol, theta, est, H, kind="state")) and best <= tr(v_t)


@given(problems(max_states=3, max_actions=2, max_horizon=3, kinds=("finite",)))
@settings(max_examples=10)
def test_baseline_quadratic_is_exact_on_random_mdps(problem):
    """Property: tr Cov X(b) = t0 - 2 c^T b + b^T Q b for a random state baseline."""
    mdp, pol, theta = problem
    t0, c, Q = baseline_quadratic(mdp, pol, theta, "reward_to_go")
    b = np.linspace(-1.0, 1.0, mdp.n_states)
    tr = np.trace(exact_moments(mdp, pol, theta, "reward_to_go", baseline=b).cov)
    assert tr == pytest.approx(t0 - 2 * c @ b + b @ Q @ b, rel=1e-9, abs=1e-10)
