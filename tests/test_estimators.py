"""Every estimator against its exact expectation and exact covariance.

Oracles: trajectory enumeration (``moments.exact_moments``: exact mean and covariance of
the per-episode estimate) and the exact solvers (``estimators.expected``). Monte Carlo
checks use ``assert_unbiased`` with the exact covariance (chi-square, false-alarm rate
1e-6), ``assert_variance`` and ``assert_covariance`` (false-alarm rate 1e-6 each), fixed seeds, N = 6000 episodes.
The power test shows that a wrong estimator is rejected by the same test at the same N.
"""
import zlib

import numpy as np
import pytest

from tabularpg import LinearSoftmax, NeuralSoftmax, TabularSoftmax, ValidationError, envs, exact
from tabularpg import estimators as E
from tabularpg._verify_mc import _terminal_mdp
from tabularpg.moments import enumerate_trajectories, exact_moments
from tabularpg.sampling import sample
from tabularpg.testing import assert_unbiased, assert_variance, unbiased_test
from tabularpg.testing.assertions import assert_covariance, covariance_test

ALPHA = 1e-6
N_MC = 6000


terminal_mdp = _terminal_mdp  # shared with `tabularpg verify`'s Monte Carlo rows


CASES = {  # name: (mdp, sampling horizon)
    "finite": (envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9), None),
    "truncated": (envs.garnet(3, 2, 2, rng=2, gamma=0.8), 3),
    "terminal": (terminal_mdp(), 4),
}


def problem(case, kind):
    mdp, H = CASES[case]
    rng = np.random.default_rng(zlib.crc32(f"{case}/{kind}".encode()))
    if kind == "tabular":
        pol = TabularSoftmax(3, 2)
    elif kind == "linear":
        pol = LinearSoftmax(rng.normal(size=(3, 2, 2)))
    else:
        pol = NeuralSoftmax(rng.normal(size=(3, 2, 2)), hidden=(3,))
    theta = rng.normal(size=pol.theta_shape)
    return mdp, H, pol, theta


def options_for(name, mdp, H, pol, theta):
    m = mdp if H is None else mdp.replace(horizon=H)
    ev = exact.analyze(m, pol.probs(theta))
    wrong_v = np.linspace(-1, 1, mdp.n_states)
    wrong_q = ev.q + np.linspace(-1, 1, ev.q.size).reshape(ev.q.shape)  # a biased critic
    return {
        "reinforce": {}, "reward_to_go": {}, "reward_to_go_undiscounted": {},
        "reinforce+const": {"baseline": 0.7}, "reward_to_go+state": {"baseline": ev.v[0]},
        "reward_to_go+time": {"baseline": np.linspace(0, 1, H or mdp.horizon)[:, None]},
        "q": {"critic": ev.q}, "advantage": {"critic": ev.q}, "all_action": {"critic": ev.q},
        "q+wrong": {"critic": wrong_q}, "advantage+wrong": {"critic": wrong_q},
        "all_action+wrong": {"critic": wrong_q},
        "td_residual": {"critic": wrong_v}, "gae": {"critic": wrong_v, "lam": 0.6},
        "importance_trajectory": {}, "importance_per_decision": {},
    }[name]


NAMES = ["reinforce", "reward_to_go", "reward_to_go_undiscounted", "reinforce+const", "reward_to_go+state",
         "reward_to_go+time", "q", "advantage", "all_action", "q+wrong", "advantage+wrong", "all_action+wrong",
         "td_residual", "gae",
         "importance_trajectory", "importance_per_decision"]
BEHAVIOR = np.array([[0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])


@pytest.mark.parametrize("kind", ["tabular", "linear", "neural"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", NAMES)
def test_estimator_against_exact_moments(name, case, kind):
    mdp, H, pol, theta = problem(case, kind)
    est = name.split("+")[0]
    opts = options_for(name, mdp, H, pol, theta)
    behavior = BEHAVIOR if est.startswith("importance") else None
    mom = exact_moments(mdp, pol, theta, est, H, behavior=behavior, **opts)
    target = E.expected(est, mdp, pol, theta, horizon=H, **opts).ravel()
    # 1. enumeration mean = exact expectation from the solvers
    np.testing.assert_allclose(mom.mean, target, atol=1e-10 * max(1, np.abs(target).max()))
    if name.endswith("+wrong"):  # a wrong critic: `expected` is the biased limit, not grad J
        grad = exact.policy_gradient(mdp if H is None else mdp.replace(horizon=H), pol, theta).ravel()
        assert np.abs(target - grad).max() > 1e-3
    # 2. Monte Carlo mean and covariance against the exact ones
    batch = sample(mdp, pol, theta, N_MC, rng=7, horizon=H, behavior=behavior)
    samples = E.estimate(batch, pol, theta, est, **opts).samples
    assert_unbiased(samples, target, cov=mom.cov, alpha=ALPHA)
    assert_variance(samples, mom.cov, alpha=ALPHA)
    assert_covariance(samples, mom.cov, alpha=ALPHA)


def _next_action_estimator():
    """Deliberately wrong: the score of the *next* action at the current state."""
    def weights(batch, policy, theta):
        G = batch.rewards[:, ::-1].cumsum(axis=1)[:, ::-1]
        nxt = np.roll(batch.actions, -1, axis=1)
        w = np.zeros(batch.states.shape + (policy.n_actions,))
        n, t = np.nonzero(batch.alive)
        w[n, t, nxt[n, t]] = G[n, t]
        return E.StepWeights(w, all_actions=True)
    return E.Estimator("next_action", weights, None, unbiased=False, formula="wrong on purpose")


@pytest.mark.parametrize("case", sorted(CASES))
def test_power_wrong_estimator_is_rejected(case):
    mdp, H, pol, theta = problem(case, "tabular")
    wrong = _next_action_estimator()
    target = E.expected("reward_to_go_undiscounted", mdp, pol, theta, horizon=H).ravel()
    mom = exact_moments(mdp, pol, theta, wrong, H)
    assert np.abs(mom.mean - target).max() > 1e-3  # it is biased ...
    batch = sample(mdp, pol, theta, N_MC, rng=7, horizon=H)
    samples = E.estimate(batch, pol, theta, wrong).samples
    res = unbiased_test(samples, target, cov=mom.cov, alpha=ALPHA)
    assert not res.passed, res  # ... and the test at the same N catches it


@pytest.mark.parametrize("case", sorted(CASES))
def test_power_wrong_covariance_is_rejected(case):
    """Samples of reward_to_go without a baseline have the mean of reward_to_go with
    baseline b = -1 but not its exact covariance (same trace on "truncated", different
    structure): the covariance test rejects that covariance at the same N and alpha and
    accepts the samples' own."""
    mdp, H, pol, theta = problem(case, "tabular")
    own = exact_moments(mdp, pol, theta, "reward_to_go", H)
    other = exact_moments(mdp, pol, theta, "reward_to_go", H, baseline=-1.0)
    samples = E.estimate(sample(mdp, pol, theta, N_MC, rng=7, horizon=H), pol, theta, "reward_to_go").samples
    assert covariance_test(samples, own.cov, alpha=ALPHA).passed
    res = covariance_test(samples, other.cov, alpha=ALPHA)
    assert not res.passed, res


def test_dropping_gamma_t_bias_is_predicted_and_detected():
    """reward_to_go_undiscounted converges to `expected(...)`, not to grad J."""
    mdp, H, pol, theta = problem("truncated", "tabular")
    grad = exact.policy_gradient(mdp.replace(horizon=H), pol, theta).ravel()
    pred = E.expected("reward_to_go_undiscounted", mdp, pol, theta, horizon=H).ravel()
    assert np.abs(pred - grad).max() > 0.05
    mom = exact_moments(mdp, pol, theta, "reward_to_go_undiscounted", H)
    samples = E.estimate(sample(mdp, pol, theta, N_MC, rng=3, horizon=H), pol, theta,
                         "reward_to_go_undiscounted").samples
    assert_unbiased(samples, pred, cov=mom.cov, alpha=ALPHA)
    assert not unbiased_test(samples, grad, cov=mom.cov, alpha=ALPHA).passed


def _groups(case, n_groups, size, seed):
    mdp, H, pol, theta = problem(case, "tabular")
    batch = sample(mdp, pol, theta, n_groups * size, rng=seed, horizon=H)
    return mdp, H, pol, theta, [batch.select(slice(i * size, (i + 1) * size)) for i in range(n_groups)]


@pytest.mark.parametrize("baseline,factor", [("mean", "1-1/N"), ("leave_one_out", 1.0), ("optimal", 1.0)])
def test_batch_baselines(baseline, factor):
    """Batch means of the estimate over independent batches of N = 4 episodes:
    'mean' converges to (1 - 1/N) grad J, RLOO and leave-one-out optimal to grad J
    (Hotelling T^2 at alpha = 1e-6 over 2000 batches)."""
    size = 4
    mdp, _H, pol, theta, groups = _groups("finite", 2000, size, seed=11)
    means = np.array([E.estimate(b, pol, theta, "reinforce", baseline=baseline).mean.ravel() for b in groups])
    grad = exact.policy_gradient(mdp, pol, theta).ravel()
    target = (1 - 1 / size) * grad if factor == "1-1/N" else grad
    assert_unbiased(means, target, alpha=ALPHA)
    if baseline == "mean":
        np.testing.assert_allclose(E.expected_mean_baseline("reinforce", mdp, pol, theta, n_episodes=size).ravel(),
                                   target)


def test_random_horizon_estimator_is_unbiased_for_infinite_horizon_gradient():
    mdp = envs.garnet(3, 2, 2, rng=2, gamma=0.7)
    pol = TabularSoftmax(3, 2)
    theta = np.random.default_rng(0).normal(size=(3, 2))
    batch = sample(mdp, pol, theta, 60000, rng=5, horizon="geometric")
    samples = E.estimate(batch, pol, theta, "random_horizon").samples
    assert_unbiased(samples, exact.policy_gradient(mdp, pol, theta), alpha=ALPHA)
    # power: the truncated (H = 2) gradient is a different target and is rejected
    assert not unbiased_test(samples, exact.policy_gradient(mdp.replace(horizon=2), pol, theta), alpha=ALPHA).passed


# ----------------------------------------------------------------- score-function identities
def test_trajectory_score_is_sum_of_policy_scores():
    """grad log p(tau) (complex step of log mu + sum log pi + sum log P) = sum_t score_t:
    the transition terms drop out (Williams 1992)."""
    mdp, H, pol, theta = problem("terminal", "linear")
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), H)
    P = mdp.P_dense()

    def log_p(th):
        lp = pol.log_probs(th)
        out = np.log(mdp.mu[batch.states[:, 0]]).astype(complex)
        out = out + np.sum(np.where(batch.alive, lp[batch.states, batch.actions], 0), axis=1)
        return out + np.sum(np.where(batch.alive, np.log(P[batch.states, batch.actions, batch.next_states]), 0), axis=1)

    h = 1e-30
    cs = np.stack([log_p(theta + 1j * h * e).imag / h for e in np.eye(pol.n_params)], axis=1)
    e, t = np.nonzero(batch.alive)
    ones = np.ones(e.size)
    scores = pol.contract_episodes(theta, e, batch.n_episodes, batch.states[e, t], ones, batch.actions[e, t])
    np.testing.assert_allclose(scores, cs, atol=1e-12)
    # and it has zero mean: E[grad log p(tau)] = grad sum p = 0
    np.testing.assert_allclose(prob @ scores, 0.0, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_baseline_term_has_zero_mean(case):
    mdp, H, pol, theta = problem(case, "tabular")
    for est in ("reinforce", "reward_to_go"):
        a = exact_moments(mdp, pol, theta, est, H).mean
        b = exact_moments(mdp, pol, theta, est, H, baseline=3.0).mean
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_reward_to_go_equals_reinforce_in_expectation_with_lower_variance(case):
    """Equal means (exact); lower total variance on these instances (checked, not a theorem)."""
    mdp, H, pol, theta = problem(case, "tabular")
    r = exact_moments(mdp, pol, theta, "reinforce", H)
    g = exact_moments(mdp, pol, theta, "reward_to_go", H)
    np.testing.assert_allclose(r.mean, g.mean, atol=1e-12)
    assert np.trace(g.cov) < np.trace(r.cov)


@pytest.mark.parametrize("est", ["reinforce", "reward_to_go"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_optimal_constant_baseline_and_excess_variance(case, est):
    """With X_b = X - b Y: tr Var(X_b) = tr Var(X_b*) + E||Y||^2 (b - b*)^2 exactly, with
    b* = E[X.Y] / E||Y||^2 (Greensmith et al. 2004); per component likewise."""
    mdp, H, pol, theta = problem(case, "tabular")
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), H)
    X = E.estimate(batch, pol, theta, est).samples
    Y = X - E.estimate(batch, pol, theta, est, baseline=1.0).samples
    EY2 = prob @ np.sum(Y * Y, axis=1)
    b_star = (prob @ np.sum(X * Y, axis=1)) / EY2
    v_star = np.trace(exact_moments(mdp, pol, theta, est, H, baseline=b_star).cov)
    for b in (-2.0, 0.0, 0.5, b_star + 1.0, 4.0):
        v = np.trace(exact_moments(mdp, pol, theta, est, H, baseline=b).cov)
        assert v >= v_star - 1e-12
        assert v - v_star == pytest.approx(EY2 * (b - b_star) ** 2, rel=1e-9, abs=1e-12)
    # per-component optimum b_i* = E[X_i Y_i] / E[Y_i^2]
    EYi2 = prob @ (Y * Y)
    bi = np.divide(prob @ (X * Y), EYi2, out=np.zeros_like(EYi2), where=EYi2 > 0)
    var_i = prob @ ((X - bi * Y) ** 2) - (prob @ (X - bi * Y)) ** 2
    for b in (0.0, 1.0):
        assert np.all(prob @ ((X - b * Y) ** 2) - (prob @ (X - b * Y)) ** 2 >= var_i - 1e-12)


def test_gae_limits():
    """GAE(lambda=1) = Monte Carlo advantage (reward-to-go with baseline V); GAE(0) = TD residual;
    on every step of a sampled finite-horizon batch, exactly."""
    mdp, _H, pol, theta = problem("finite", "tabular")
    batch = sample(mdp, pol, theta, 500, rng=1)
    V = np.random.default_rng(0).normal(size=(mdp.horizon + 1, 3))
    V[-1] = 0.0
    w = lambda name, **o: E.step_weights(batch, pol, theta, name, **o).values
    np.testing.assert_allclose(w("gae", critic=V, lam=1.0), w("reward_to_go", baseline=V[:-1]), atol=1e-12)
    np.testing.assert_allclose(w("gae", critic=V, lam=0.0), w("td_residual", critic=V), atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_all_action_variance_not_above_single_action(case):
    mdp, H, pol, theta = problem(case, "linear")
    q = exact.analyze(mdp if H is None else mdp.replace(horizon=H), pol.probs(theta)).q
    single = exact_moments(mdp, pol, theta, "q", H, critic=q)
    allact = exact_moments(mdp, pol, theta, "all_action", H, critic=q)
    np.testing.assert_allclose(single.mean, allact.mean, atol=1e-12)
    assert np.trace(allact.cov) <= np.trace(single.cov) + 1e-12


def test_fitted_critics_converge():
    """MC regression and TD(0) recover V (finite-horizon time-indexed MC; TD on a
    discounted truncated MDP) within Monte Carlo error."""
    mdp, _H, pol, theta = problem("finite", "tabular")
    batch = sample(mdp, pol, theta, 40000, rng=2)
    v = exact.analyze(mdp, pol.probs(theta)).v
    np.testing.assert_allclose(E.fit_value_mc(batch, 3, time_indexed=True), v, atol=0.05)
    m2 = envs.garnet(3, 2, 2, rng=2, gamma=0.5)
    b2 = sample(m2, pol, theta, 4000, rng=3, horizon=40)
    v2 = exact.evaluate(m2, pol.probs(theta))[0]
    np.testing.assert_allclose(E.fit_value_td0(b2, 3, alpha=0.05, n_sweeps=30), v2, atol=0.1)


BAD = [
    ("unknown-estimator", lambda b, p, t: E.estimate(b, p, t, "nope"), ValidationError, "unknown estimator 'nope'"),
    ("unknown-option", lambda b, p, t: E.estimate(b, p, t, "reinforce", lam=1), ValidationError, "unknown options ['lam']"),
    ("bad-baseline", lambda b, p, t: E.estimate(b, p, t, "reinforce", baseline="median"), ValidationError, "`baseline` must be"),
    ("baseline-shape", lambda b, p, t: E.estimate(b, p, t, "reinforce", baseline=np.ones((2, 2, 2))), ValueError, "`baseline` must be"),
    ("missing-critic", lambda b, p, t: E.estimate(b, p, t, "q"), ValidationError, "needs `critic`"),
    ("off-policy", lambda b, p, t: E.estimate(b, p, t, "importance_trajectory"), ValidationError, "sampled with `behavior=`"),
    ("random-horizon", lambda b, p, t: E.estimate(b, p, t, "random_horizon"), ValidationError, "horizon='geometric'"),
    ("mean-needs-N", lambda b, p, t: E.expected("reinforce", CASES["finite"][0], p, t, baseline="mean"),
     ValidationError, "pass `n_episodes`"),
    ("N-without-mean", lambda b, p, t: E.expected("reinforce", CASES["finite"][0], p, t, n_episodes=3),
     ValidationError, "`n_episodes` is an option"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exc, match):
    mdp, _H, pol, theta = problem("finite", "tabular")
    batch = sample(mdp, pol, theta, 5, rng=0)
    with pytest.raises(exc, match=match.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        call(batch, pol, theta)


@pytest.mark.parametrize("kind", ["tabular", "linear", "neural"])
def test_mean_is_the_mean_of_the_per_episode_samples(kind):
    """`.mean` (one scatter-add over all steps) equals `.samples.mean(0)` (per episode)."""
    mdp, H, pol, theta = problem("terminal", kind)
    batch = sample(mdp, pol, theta, 300, rng=0, horizon=H, behavior=BEHAVIOR)
    for name in NAMES + ["reinforce+optimal", "reward_to_go+loo"]:
        est = name.split("+")[0]
        opts = ({"baseline": "optimal"} if name.endswith("optimal") else {"baseline": "leave_one_out"}
                if name.endswith("loo") else options_for(name, mdp, H, pol, theta))
        e = E.estimate(batch, pol, theta, est, **opts)
        np.testing.assert_allclose(e.mean.ravel(), e.samples.mean(axis=0), atol=1e-12)
