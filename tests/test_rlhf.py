"""The RLHF arena's world, exact metrics, KL-regularized problem, SFT and reward model.

Oracles: central finite differences for every hand-derived gradient; Monte Carlo with
Bernoulli labels for the win rate (z-test at alpha = 1e-6, with a power check);
closed forms (pi*_beta, soft value iteration) for the optima.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats

import tabularpg as tpg
from tabularpg import objectives, optim, rlhf
from tabularpg._validation import TabularPGError

ALPHA = 1e-6


def _world(X=3, Y=4, seed=0):
    return rlhf.random_world(X, Y, n_features=3, rng=seed)


def _ref(X, Y, seed=1):
    return np.random.default_rng(seed).dirichlet(np.ones(Y) * 2, size=X)


def _fd(f, x, h=1e-6):
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# ----------------------------------------------------------------------------- world
def test_world_is_a_horizon_one_mdp_and_generators_are_seeded():
    w = rlhf.make_world("random:X=4,Y=5,seed=3")
    assert w.shape == (4, 5) and w.mdp.horizon == 1 and w.mdp.n_states == 4
    np.testing.assert_array_equal(w.reward, rlhf.random_world(4, 5, rng=3).reward)
    np.testing.assert_allclose(tpg.exact.objective(w.mdp, np.full((4, 5), 0.2)), w.mu @ w.reward.mean(axis=1))
    with pytest.raises(ValueError):
        w.reward[0, 0] = 1.0  # read-only
    reward = np.array(w.reward)
    prob = rlhf.KLProblem(w.mu, reward, np.full((4, 5), 0.2), beta=0.5)
    reward[0, 0] = 1e3                       # the problem keeps its own copy
    assert prob.reward[0, 0] == w.reward[0, 0]
    with pytest.raises(ValueError):
        prob.pi_ref[0, 0] = 1.0


def test_length_bias_world_rewards_longer_responses():
    w = rlhf.length_bias_world(200, 8, bias=1.0, rng=0)
    slope = np.polyfit(w.length.ravel(), w.reward.ravel(), 1)[0]
    assert slope > 0.1
    flat = rlhf.length_bias_world(200, 8, bias=0.0, rng=0)
    assert abs(np.polyfit(flat.length.ravel(), flat.reward.ravel(), 1)[0]) < 0.02


# ----------------------------------------------------------------------------- metrics
def test_exact_win_rate_equals_monte_carlo_with_bernoulli_labels():
    """x ~ mu, y ~ pi, y' ~ pi_ref, label ~ Bernoulli(sigmoid(r - r')): the mean label has
    mean win(pi, pi_ref) and variance p(1-p)/N; two-sided z-test at alpha = 1e-6."""
    w = _world(5, 6, seed=4)
    rng = np.random.default_rng(0)
    pi, pi_ref = _ref(5, 6, seed=2), _ref(5, 6, seed=3)
    N = 200_000

    def draw(p, x):
        return (rng.random(x.size)[:, None] >= np.cumsum(p[x], axis=1)).sum(axis=1)
    x = rng.choice(5, size=N, p=w.mu)
    y, y2 = draw(pi, x), draw(pi_ref, x)
    labels = rng.random(N) < 1 / (1 + np.exp(-(w.reward[x, y] - w.reward[x, y2])))

    def p_value(p):
        z = (labels.mean() - p) / np.sqrt(p * (1 - p) / N)
        return 2 * stats.norm.sf(abs(z))
    exact = rlhf.win_rate(w, pi, pi_ref)
    assert p_value(exact) > ALPHA
    # power: a hard judge (1[r > r']) instead of the Bradley-Terry probability is caught
    hard = float(np.einsum("x,xy,xyz,xz->", w.mu, pi, (w.reward[:, :, None] > w.reward[:, None, :]) * 1.0, pi_ref))
    assert abs(hard - exact) > 0.01 and p_value(hard) < ALPHA


@given(st.integers(0, 10_000))
def test_win_rate_is_antisymmetric_and_kl_vanishes_at_the_reference(seed):
    w = _world(2, 3, seed=seed)
    a, b = _ref(2, 3, seed + 1), _ref(2, 3, seed + 2)
    assert rlhf.win_rate(w, a, b) + rlhf.win_rate(w, b, a) == pytest.approx(1.0, abs=1e-12)
    assert rlhf.kl_to_reference(w.mu, a, a) == pytest.approx(0.0, abs=1e-15)
    assert rlhf.kl_to_reference(w.mu, a, b) >= 0


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_kl_problem_gradient_matches_finite_differences(kind):
    w = _world(3, 4, seed=5)
    prob = rlhf.KLProblem(w.mu, w.reward, _ref(3, 4), beta=0.3)
    pol = tpg.TabularSoftmax(3, 4) if kind == "tabular" else tpg.LinearSoftmax(w.features)
    theta = np.random.default_rng(2).normal(size=pol.theta_shape)
    pi = pol.probs(theta)
    direct = w.mu @ np.sum(pi * w.reward, axis=1) - 0.3 * rlhf.kl_to_reference(w.mu, pi, prob.pi_ref)
    assert prob.objective(pi) == pytest.approx(direct, abs=1e-12)
    fd = _fd(lambda t: prob.objective(pol.probs(t)), theta)
    np.testing.assert_allclose(prob.gradient(pol, theta), fd, atol=1e-8)


def test_optimum_is_soft_value_iteration_of_the_shifted_mdp_and_maximizes_j_beta():
    w = _world(3, 4, seed=6)
    prob = rlhf.KLProblem(w.mu, w.reward, _ref(3, 4), beta=0.5)
    star = prob.optimum()
    np.testing.assert_allclose(objectives.soft_value_iteration(prob.soft_mdp, 0.5).pi[0], star, atol=1e-12)
    pol = tpg.TabularSoftmax(3, 4)
    np.testing.assert_allclose(prob.gradient(pol, np.log(star)), 0.0, atol=1e-12)
    others = [_ref(3, 4, s) for s in range(5)]
    assert all(prob.objective(star) > prob.objective(p) for p in others)


# ----------------------------------------------------------------------------- population convergence
def _small_problem(beta=0.5):
    w = _world(3, 4, seed=7)
    return w, rlhf.KLProblem(w.mu, w.reward, _ref(3, 4), beta=beta)


def test_population_dpo_converges_to_pi_star_beta():
    w, prob = _small_problem()
    pol = tpg.TabularSoftmax(3, 4)

    def fun(v):
        loss, g = optim.dpo_population_loss(pol, v.reshape(3, 4), prob.pi_ref, w.reward, w.mu, beta=prob.beta)
        return loss, g.ravel()
    res = optimize.minimize(fun, np.log(prob.pi_ref).ravel(), jac=True, method="L-BFGS-B",
                            options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 5000})
    np.testing.assert_allclose(pol.probs(res.x.reshape(3, 4)), prob.optimum(), atol=1e-6)


def test_population_rebel_converges_to_pi_star_beta_geometrically():
    _, prob = _small_problem()
    pol = tpg.TabularSoftmax(3, 4)
    theta = np.log(prob.pi_ref)
    errs = []
    for _ in range(40):
        theta = rlhf.rebel_population_step(prob, pol, theta, eta=1.0)   # rate |1 - eta beta| = 0.5
        errs.append(np.abs(pol.probs(theta) - prob.optimum()).max())
    assert errs[-1] < 1e-6
    assert errs[10] / errs[5] < 0.5 ** 5 * 1.5
    # eta * beta = 1: one step lands on the optimum
    one = rlhf.rebel_population_step(prob, pol, np.log(prob.pi_ref), eta=2.0)
    np.testing.assert_allclose(pol.probs(one), prob.optimum(), atol=1e-8)


def test_population_rebel_linear_policy_solves_the_weighted_regression():
    w, prob = _small_problem()
    pol = tpg.LinearSoftmax(w.features)
    theta = np.zeros(3)
    new = rlhf.rebel_population_step(prob, pol, theta, eta=0.7)
    # normal equations: the regression residual is orthogonal to every regressor
    pi = pol.probs(theta)
    R = prob.reward - prob.beta * prob.log_ratio(pi)
    dz = (new - theta) @ w.features.transpose(0, 2, 1)                     # (X, Y)
    wts = w.mu[:, None, None] * pi[:, :, None] * pi[:, None, :]
    resid = (dz[:, :, None] - dz[:, None, :]) / 0.7 - (R[:, :, None] - R[:, None, :])
    dphi = w.features[:, :, None, :] - w.features[:, None, :, :]
    np.testing.assert_allclose(np.einsum("xyz,xyz,xyzd->d", wts, resid, dphi), 0.0, atol=1e-10)


def test_population_kl_regularized_policy_gradient_converges_to_pi_star_beta():
    """KL-regularized PG = entropy-regularized PG on the MDP with reward r + beta log pi_ref.
    Vanilla ascent (a well-conditioned beta) and the natural gradient (any beta)."""
    _, prob = _small_problem(beta=2.0)
    pol = tpg.TabularSoftmax(3, 4)
    res = optim.policy_gradient_ascent(prob.soft_mdp, pol, np.log(prob.pi_ref), step_size=5.0, n_iter=400,
                                       tau=prob.beta)
    np.testing.assert_allclose(pol.probs(res.theta), prob.optimum(), atol=1e-6)
    np.testing.assert_allclose(res.extra["j_tau"][-1], prob.objective(prob.optimum()), atol=1e-10)
    _, prob = _small_problem(beta=0.5)
    res = optim.natural_policy_gradient(prob.soft_mdp, pol, np.log(prob.pi_ref), step_size=1.0, n_iter=40,
                                        tau=prob.beta, closed_form=False)
    np.testing.assert_allclose(pol.probs(res.theta), prob.optimum(), atol=1e-6)


# ----------------------------------------------------------------------------- SFT and reward model
@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_sft_and_reward_model_gradients_match_finite_differences(kind):
    w = _world(3, 4, seed=8)
    rng = np.random.default_rng(0)
    demos = rlhf.sample_demonstrations(w.mu, _ref(3, 4), 50, rng=rng)
    prefs = optim.sample_preferences(w.reward, _ref(3, 4), w.mu, 60, rng=rng)
    pol = tpg.TabularSoftmax(3, 4) if kind == "tabular" else tpg.LinearSoftmax(w.features)
    theta = rng.normal(size=pol.theta_shape)
    _, g = rlhf.sft_loss(pol, theta, demos, l2=0.1)
    np.testing.assert_allclose(g, _fd(lambda t: rlhf.sft_loss(pol, t, demos, l2=0.1)[0], theta), atol=1e-8)
    feats = None if kind == "tabular" else w.features
    params = rng.normal(size=(3, 4) if feats is None else (3,))
    g = rlhf.reward_model_loss(params, prefs, (3, 4), features=feats, l2=0.2)[1]
    np.testing.assert_allclose(g, _fd(lambda p: rlhf.reward_model_loss(p, prefs, (3, 4), features=feats, l2=0.2)[0],
                                      params), atol=1e-8)
    g = rlhf.reward_model_population_loss(params, w.mu, _ref(3, 4), w.reward, features=feats, l2=0.2)[1]
    np.testing.assert_allclose(g, _fd(lambda p: rlhf.reward_model_population_loss(
        p, w.mu, _ref(3, 4), w.reward, features=feats, l2=0.2)[0], params), atol=1e-8)


def test_population_reward_model_loss_is_the_expected_sample_loss():
    """Monte Carlo oracle for the population loss: per-pair losses -log sigma(u_i) of
    sample_preferences' pairs have mean reward_model_population_loss (l2 = 0) and the
    variance sum P(y_w, y_l) loss^2 - mean^2 of the same law; z-test at alpha = 1e-6.
    Power: the law with the winner and loser swapped (reward -r) is rejected."""
    w = _world(3, 4, seed=11)
    pi_ref = _ref(3, 4, seed=5)
    params = np.random.default_rng(4).normal(size=(3, 4))
    N = 100_000
    x, yw, yl = optim.sample_preferences(w.reward, pi_ref, w.mu, N, rng=6)
    losses = np.logaddexp(0.0, -(params[x, yw] - params[x, yl]))
    mean, _ = rlhf.reward_model_population_loss(params, w.mu, pi_ref, w.reward)
    P = 2 * w.mu[:, None, None] * pi_ref[:, :, None] * pi_ref[:, None, :] / (
        1 + np.exp(-(w.reward[:, :, None] - w.reward[:, None, :])))
    assert P.sum() == pytest.approx(1.0, abs=1e-12)
    sq = np.sum(P * np.logaddexp(0.0, -(params[:, :, None] - params[:, None, :])) ** 2)

    def p_value(m):
        return 2 * stats.norm.sf(abs(losses.mean() - m) / np.sqrt((sq - mean ** 2) / N))
    assert p_value(mean) > ALPHA
    swapped, _ = rlhf.reward_model_population_loss(params, w.mu, pi_ref, -w.reward)
    assert p_value(swapped) < ALPHA


def test_reward_model_recovers_r_up_to_a_per_prompt_constant():
    w = _world(3, 4, seed=9)
    pi_ref = _ref(3, 4)
    centered = w.reward - w.reward.mean(axis=1, keepdims=True)
    pop = rlhf.fit_reward_model_population(w.mu, pi_ref, w.reward)
    np.testing.assert_allclose(pop.table, centered, atol=1e-6)
    errs = []
    for n in (300, 30_000):
        prefs = optim.sample_preferences(w.reward, pi_ref, w.mu, n, rng=n)
        fit = rlhf.fit_reward_model(prefs, (3, 4), l2=0.0)
        t = fit.table - fit.table.mean(axis=1, keepdims=True)
        errs.append(np.abs(t - centered).max())
    assert errs[1] < errs[0] / 3 and errs[1] < 0.15


def test_sft_recovers_the_demonstrator_with_many_demonstrations():
    """Tabular SFT with l2 = 0 is the maximum-likelihood estimate, the empirical response
    frequencies of each prompt (exact oracle); the demonstrations follow (mu, pi_demo):
    Pearson's chi-square on the (x, y) counts at alpha = 1e-6, with a power check (the
    demonstrator at temperature 1.2 is rejected)."""
    w = _world(3, 4, seed=10)
    demo = rlhf.demonstrator(w, 1.0)
    x, y = rlhf.sample_demonstrations(w.mu, demo, 40_000, rng=0)
    fit = rlhf.sft(tpg.TabularSoftmax(3, 4), (x, y), l2=0.0)
    assert fit.converged
    counts = np.bincount(x * 4 + y, minlength=12).reshape(3, 4)
    np.testing.assert_allclose(tpg.TabularSoftmax(3, 4).probs(fit.theta), counts / counts.sum(1, keepdims=True),
                               atol=1e-6)

    def p_value(pi):
        e = x.size * w.mu[:, None] * pi
        return stats.chi2.sf(np.sum((counts - e) ** 2 / e), counts.size - 1)
    assert p_value(demo) > ALPHA
    assert p_value(rlhf.demonstrator(w, 1.2)) < ALPHA


# ----------------------------------------------------------------------------- bad input
_W = _world(2, 3, seed=0)
_R = np.full((2, 3), 1 / 3)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: rlhf.KLProblem(_W.mu, _W.reward, _R, beta=0.0), "`beta` must be > 0", id="beta-zero"),
    pytest.param(lambda: rlhf.KLProblem(_W.mu, _W.reward, _R, beta=-1.0), "`beta` must be > 0", id="beta-negative"),
    pytest.param(lambda: rlhf.KLProblem(_W.mu, _W.reward, np.array([[1.0, 0, 0], [0.5, 0.5, 0]]), beta=1.0),
                 "`pi_ref` must have full support", id="pi_ref-zeros"),
    pytest.param(lambda: rlhf.KLProblem(_W.mu, _W.reward, np.full((2, 4), 0.25), beta=1.0), "`pi_ref`",
                 id="pi_ref-shape"),
    pytest.param(lambda: rlhf.KLProblem(np.array([0.5, 0.6]), _W.reward, _R, beta=1.0), "`mu`", id="mu-sum"),
    pytest.param(lambda: rlhf.win_rate(_W, np.full((3, 3), 1 / 3), _R), "`pi`", id="win-shape"),
    pytest.param(lambda: rlhf.win_rate("world", _R, _R), "`world` must be a World", id="win-world"),
    pytest.param(lambda: rlhf.kl_to_reference(_W.mu, _R, np.array([[1.0, 0, 0], [0.5, 0.5, 0]])),
                 "the KL is infinite", id="kl-ref-zeros"),
    pytest.param(lambda: rlhf.kl_to_reference(_W.mu, _R, np.full((2, 4), 0.25)), "`pi_ref`", id="kl-shape"),
    pytest.param(lambda: rlhf.total_variation(np.ones(3) / 3, _R, _R), "`mu`", id="tv-mu"),
    pytest.param(lambda: rlhf.World(mu=_W.mu, reward=_W.reward, length=np.zeros((2, 3), int),
                                    features=_W.features), "`length`", id="world-length"),
    pytest.param(lambda: rlhf.World(mu=_W.mu, reward=_W.reward, length=_W.length,
                                    features=np.zeros((2, 4, 1))), "`features`", id="world-features"),
    pytest.param(lambda: rlhf.make_world("nope"), "unknown world", id="world-spec"),
    pytest.param(lambda: rlhf.make_world("random:X=two"), "X='two'", id="world-spec-value"),
    pytest.param(lambda: rlhf.random_world(0, 3), "`n_prompts`", id="n_prompts"),
    pytest.param(lambda: rlhf.reward_model_loss(np.zeros((2, 3)), ([0], [5], [1]), (2, 3)), "`prefs`",
                 id="prefs-range"),
    pytest.param(lambda: rlhf.reward_model_loss(np.zeros((2, 2)), ([0], [1], [0]), (2, 3)), "`params`",
                 id="rm-params-shape"),
    pytest.param(lambda: rlhf.reward_model_population_loss(np.zeros((2, 3)), _W.mu,
                                                           np.array([[1.0, 0, 0], [0.5, 0.5, 0]]), _W.reward),
                 "`pi_ref` must have full support", id="rm-pi_ref-zeros"),
    pytest.param(lambda: rlhf.sft_loss(tpg.TabularSoftmax(2, 3), np.zeros((2, 3)), ([0, 1], [0]),), "`demos`",
                 id="demos-shape"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(TabularPGError, match=match):
        call()
