"""Exact second moments by recursion (tabularpg.moments.recursion).

Oracles: trajectory enumeration (``method="enumerate"``, an independent code path that
applies the estimators to every trajectory), long truncations for untruncated moments,
the projection identity Cov_linear = Phi^T Cov_tabular Phi, and Monte Carlo at a stated
false-alarm rate for a horizon (100) far beyond enumeration.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings

from tabularpg import LinearSoftmax, TabularSoftmax, ValidationError, envs, exact
from tabularpg.estimators import REGISTRY, estimate
from tabularpg.moments import exact_moments
from tabularpg.moments import recursion as rec
from tabularpg.moments.checks import _terminal_mdp
from tabularpg.sampling import sample
from tabularpg.testing import assert_covariance, covariance_test
from tabularpg.testing.strategies import problems

CASES = {
    "finite": (lambda: envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9), None),
    "terminal_gamma1": (_terminal_mdp, 4),
    "truncated_discounted": (lambda: envs.garnet(3, 2, 2, rng=2, gamma=0.8), 3),
}
BEHAVIOR = np.array([[0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])


def _option_sets(name, mdp, T, ev, rng):
    S, A = mdp.n_states, mdp.n_actions
    if name in ("reinforce", "reward_to_go", "reward_to_go_undiscounted"):
        return {"none": {}, "constant": {"baseline": 0.7}, "time": {"baseline": rng.normal(size=(T, 1))},
                "state": {"baseline": rng.normal(size=S)}, "time_state": {"baseline": rng.normal(size=(T, S))}}
    if name in ("q", "all_action"):
        return {"exact_q": {"critic": ev.q}, "wrong_q": {"critic": rng.normal(size=(S, A))}}
    if name == "advantage":
        return {"exact_q": {"critic": ev.q}, "wrong_q_value": {"critic": rng.normal(size=(S, A)),
                                                               "value": rng.normal(size=S)}}
    if name in ("td_residual", "gae"):
        out = {"state_critic": {"critic": rng.normal(size=S)}, "time_critic": {"critic": rng.normal(size=(T + 1, S))}}
        if name == "gae":
            out["lam0.3"] = {"critic": rng.normal(size=S), "lam": 0.3}
        return out
    return {"none": {}}


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("policy_kind", ["tabular", "linear"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n != "random_horizon"))
def test_recursion_equals_enumeration(name, case, policy_kind):
    """Every estimator x baseline/critic kind x horizon kind x policy class: mean and second
    moment by recursion equal trajectory enumeration to 1e-12 (relative)."""
    make, H = CASES[case]
    mdp = make()
    S, A = mdp.n_states, mdp.n_actions
    rng = np.random.default_rng(zlib.crc32(f"{name}{case}{policy_kind}".encode()))
    pol = TabularSoftmax(S, A) if policy_kind == "tabular" else LinearSoftmax(rng.normal(size=(S, A, 2)))
    theta = rng.normal(size=pol.theta_shape)
    T = H or mdp.horizon
    ev = exact.analyze(mdp.replace(horizon=T), pol.probs(theta))
    beh = BEHAVIOR if name.startswith("importance") else None
    for label, opts in _option_sets(name, mdp, T, ev, rng).items():
        r = exact_moments(mdp, pol, theta, name, H, behavior=beh, **opts)
        e = exact_moments(mdp, pol, theta, name, H, behavior=beh, method="enumerate", **opts)
        assert r.method == "recursion" and e.method == "enumerate"
        assert _rel(r.mean, e.mean) < 1e-12, label
        assert _rel(r.second, e.second) < 1e-12, label
        assert _rel(r.cov, e.cov) < 1e-10, label


@given(problems(max_states=3, max_actions=2, max_horizon=3, kinds=("finite", "terminal", "discounted"), sparse=None))
@settings(max_examples=15)
def test_recursion_equals_enumeration_on_random_mdps(problem):
    """Property: on any small MDP (dense or sparse P, R(s,a) or R(s,a,s')), reward-to-go
    with a state baseline, GAE with a random critic and REINFORCE agree with enumeration."""
    mdp, pol, theta = problem
    H = mdp.horizon or 3
    S = mdp.n_states
    rng = np.random.default_rng(0)
    for name, opts in [("reward_to_go", {"baseline": rng.normal(size=S)}),
                       ("gae", {"critic": rng.normal(size=S), "lam": 0.5}),
                       ("reinforce", {"baseline": 0.3})]:
        r = exact_moments(mdp, pol, theta, name, H, **opts)
        e = exact_moments(mdp, pol, theta, name, H, method="enumerate", **opts)
        scale = max(1.0, float(np.abs(e.second).max()))
        np.testing.assert_allclose(r.mean, e.mean, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(r.second, e.second, rtol=0, atol=1e-11 * scale)


@pytest.mark.parametrize("name", ["reward_to_go", "q", "advantage", "all_action", "td_residual", "gae",
                                  "importance_per_decision"])
def test_untruncated_equals_long_truncation(name):
    """horizon=None on an infinite-horizon MDP (stationary linear solves) equals the
    truncation at H = 400 (gamma = 0.8: the tail is below 0.8^400)."""
    mdp = envs.garnet(4, 3, 2, rng=3, gamma=0.8)
    pol = TabularSoftmax(4, 3)
    theta = np.random.default_rng(1).normal(size=(4, 3)) * 0.3
    rng = np.random.default_rng(2)
    ev = exact.analyze(mdp, pol.probs(theta))
    opts = {"q": {"critic": ev.q}, "advantage": {"critic": ev.q}, "all_action": {"critic": ev.q},
            "td_residual": {"critic": rng.normal(size=4)}, "gae": {"critic": rng.normal(size=4), "lam": 0.7},
            "reward_to_go": {"baseline": rng.normal(size=4)}}.get(name, {})
    beh = np.full((4, 3), 1 / 3) if name.startswith("importance") else None
    u = exact_moments(mdp, pol, theta, name, None, behavior=beh, **opts)
    t = exact_moments(mdp, pol, theta, name, 400, behavior=beh, **opts)
    assert _rel(u.mean, t.mean) < 1e-12
    assert _rel(u.second, t.second) < 1e-12


def test_untruncated_terminal_gamma1_and_refusals():
    """Proper termination with gamma = 1: untruncated = long truncation, also undiscounted;
    an infinite second moment (undiscounted, no termination) and REINFORCE are refused."""
    mdp = _terminal_mdp()
    pol = TabularSoftmax(3, 2)
    theta = np.random.default_rng(3).normal(size=(3, 2))
    for name in ("reward_to_go", "reward_to_go_undiscounted"):
        u = exact_moments(mdp, pol, theta, name, None)
        t = exact_moments(mdp, pol, theta, name, 300)
        assert _rel(u.second, t.second) < 1e-12
    inf = envs.garnet(3, 2, 2, rng=1, gamma=0.9)
    with pytest.raises(ValidationError, match="infinite"):
        exact_moments(inf, pol, theta, "reward_to_go_undiscounted", None)
    with pytest.raises(ValidationError, match="finite `horizon`"):
        exact_moments(inf, pol, theta, "reinforce", None)
    with pytest.raises(ValidationError, match="stationary"):
        exact_moments(inf, pol, theta, "reward_to_go", None, baseline=np.zeros((5, 3)))


@pytest.mark.parametrize("name", ["reinforce", "reward_to_go", "gae"])
def test_linear_covariance_is_projected_tabular(name):
    """Cov_linear = Phi^T Cov_tabular Phi at the same policy (theta_tab = phi @ theta),
    computed in d-space for the linear policy (d = 3 < S*A = 12)."""
    mdp = envs.garnet(4, 3, 2, rng=5, gamma=0.9)
    rng = np.random.default_rng(4)
    phi = rng.normal(size=(4, 3, 3))
    lin, tab = LinearSoftmax(phi), TabularSoftmax(4, 3)
    theta = rng.normal(size=3)
    opts = {"critic": rng.normal(size=4)} if name == "gae" else {}
    ml = exact_moments(mdp, lin, theta, name, 6, **opts)
    mt = exact_moments(mdp, tab, phi @ theta, name, 6, **opts)
    Phi = phi.reshape(12, 3)
    np.testing.assert_allclose(ml.cov, Phi.T @ mt.cov @ Phi, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ml.mean, Phi.T @ mt.mean, rtol=1e-11, atol=1e-12)


def test_random_horizon_against_monte_carlo():
    """random_horizon (geometric horizons): the exact mean is grad J and the covariance
    (diagonal in (s, a)) matches 40 000 sampled episodes (alpha = 1e-6)."""
    mdp = envs.garnet(4, 3, 2, rng=3, gamma=0.8)
    pol = TabularSoftmax(4, 3)
    theta = np.random.default_rng(6).normal(size=(4, 3))
    m = exact_moments(mdp, pol, theta, "random_horizon")
    np.testing.assert_allclose(m.mean, exact.policy_gradient(mdp, pol, theta).ravel(), atol=1e-12)
    X = estimate(sample(mdp, pol, theta, 40000, rng=7, horizon="geometric"), pol, theta, "random_horizon").samples
    assert_covariance(X, m.cov, alpha=1e-6)
    assert not covariance_test(X, 0.8 * m.cov, alpha=1e-6).passed  # a 20% error is seen


class _DropCross(rec.WSpace):
    """A deliberately broken recursion: drops the cross terms E[c_t Y_{t+1}^T]."""

    def finish(self, own_diag, own_blk, cross, cross_t=None):
        return super().finish(own_diag, own_blk, 0 * cross, None if cross_t is None else 0 * cross_t)


def test_horizon_100_against_monte_carlo(monkeypatch):
    """Garnet(20, 4, 3), H = 100, reward-to-go with a state baseline: the covariance of
    20 000 sampled episodes agrees with the exact one, tested on the span of the 4 leading
    eigenvectors and 4 fixed random directions (projected samples have covariance
    U^T Sigma U under the null; whitened-entry z test, Bonferroni, false-alarm rate 1e-6).
    The same test rejects a recursion that drops the cross terms."""
    mdp = envs.garnet(20, 4, 3, rng=0, gamma=0.95)
    pol = TabularSoftmax(20, 4)
    theta = np.random.default_rng(0).normal(size=(20, 4))
    b = np.random.default_rng(1).normal(size=20)
    m = exact_moments(mdp, pol, theta, "reward_to_go", 100, baseline=b)
    _, V = np.linalg.eigh(m.cov)
    U = np.hstack([V[:, -4:], np.linalg.qr(np.random.default_rng(2).normal(size=(80, 4)))[0]])
    X = estimate(sample(mdp, pol, theta, 20000, rng=3, horizon=100), pol, theta, "reward_to_go",
                 baseline=b).samples @ U
    assert_covariance(X, U.T @ m.cov @ U, alpha=1e-6)
    monkeypatch.setattr(rec, "WSpace", _DropCross)
    broken = exact_moments(mdp, pol, theta, "reward_to_go", 100, baseline=b)
    assert not np.allclose(broken.cov, m.cov)
    assert not covariance_test(X, U.T @ broken.cov @ U, alpha=1e-6).passed


def test_bad_arguments():
    mdp = envs.garnet(3, 2, 2, rng=1, horizon=3)
    pol = TabularSoftmax(3, 2)
    th = pol.zeros()
    with pytest.raises(ValidationError, match="method"):
        exact_moments(mdp, pol, th, "reinforce", method="fast")
    with pytest.raises(ValidationError, match="couples the episodes"):
        exact_moments(mdp, pol, th, "reinforce", baseline="leave_one_out")
    with pytest.raises(ValidationError, match="behavior"):
        exact_moments(mdp, pol, th, "importance_trajectory")
    with pytest.raises(ValidationError, match="unknown options"):
        exact_moments(mdp, pol, th, "reinforce", critic=np.zeros(3))
    with pytest.raises(ValidationError, match="horizon"):
        exact_moments(mdp, pol, th, "reinforce", 5)
    with pytest.raises(ValidationError, match="random_horizon"):
        exact_moments(mdp, pol, th, "random_horizon")


@pytest.mark.parametrize("name", ["importance_trajectory", "importance_per_decision"])
def test_importance_sampling_with_unsupported_actions(name):
    """A behavior policy that never takes an action the target takes: the estimator is
    biased, and the recursion (kernels restricted to b > 0) still equals enumeration."""
    mdp = envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9)
    pol = TabularSoftmax(3, 2)
    theta = np.random.default_rng(8).normal(size=(3, 2))
    beh = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    r = exact_moments(mdp, pol, theta, name, behavior=beh)
    e = exact_moments(mdp, pol, theta, name, behavior=beh, method="enumerate")
    assert _rel(r.mean, e.mean) < 1e-12 and _rel(r.second, e.second) < 1e-12
    assert not np.allclose(r.mean, exact.policy_gradient(mdp, pol, theta).ravel(), atol=1e-3)


class _GenericLinear(LinearSoftmax):
    """A linear policy through the generic path (its contraction is "overridden")."""

    def contract_table(self, theta, w_sa, *, pi=None):
        return super().contract_table(theta, w_sa, pi=pi)


def test_generic_policy_path_equals_linear_fast_path():
    """Policies are reached only through contract_table: the score table built from unit
    tables (in chunks) gives the moments of the closed-form linear score table; on a
    sparse MDP."""
    mdp = envs.garnet(30, 3, 2, rng=0, gamma=0.9, sparse=True)
    phi = np.random.default_rng(0).normal(size=(30, 3, 4))
    theta = np.random.default_rng(1).normal(size=4)
    for name, opts in [("reward_to_go", {"baseline": 0.2}), ("gae", {"critic": np.ones(30)})]:
        a = exact_moments(mdp, LinearSoftmax(phi), theta, name, 20, **opts)
        b = exact_moments(mdp, _GenericLinear(phi), theta, name, 20, **opts)
        np.testing.assert_allclose(b.cov, a.cov, rtol=1e-12, atol=1e-14 * np.abs(a.cov).max())
