"""The arena's algorithms as weights: exact expected updates by enumerating k-tuples,
checked against Monte Carlo (chi-square with the exact covariance, alpha = 1e-6, with a
power check per algorithm), against the exact gradient of J_beta, and against the
library's leave-one-out baseline."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tabularpg as tpg
from tabularpg import estimators, rlhf
from tabularpg._validation import TabularPGError
from tabularpg.rlhf import train as T
from tabularpg.testing import assert_unbiased, unbiased_test

ALPHA = 1e-6
_OPTS = {"reinforce": ({"baseline": 0.3}, 1), "ppo": ({"baseline": np.array([0.2, -0.1])}, 2),
         "rloo": ({}, 3), "rebel": ({"eta": 0.5}, 2), "grpo": ({}, 3), "dr_grpo": ({"max_length": 4.0}, 3)}


def _setup(kind="tabular", beta=0.4, X=2, Y=3, seed=0):
    w = rlhf.random_world(X, Y, n_features=2, max_length=5, rng=seed)
    pi_ref = np.random.default_rng(seed + 1).dirichlet(np.ones(Y) * 3, size=X)
    prob = rlhf.KLProblem(w.mu, w.reward, pi_ref, beta=beta, length=w.length)
    pol = tpg.TabularSoftmax(X, Y) if kind == "tabular" else tpg.LinearSoftmax(w.features)
    theta = np.random.default_rng(seed + 2).normal(size=pol.theta_shape)
    return w, prob, pol, theta


@pytest.mark.parametrize("kind", ["tabular", "linear"])
@pytest.mark.parametrize("algorithm, k", [("reinforce", 1), ("reinforce", 3), ("ppo", 2), ("rloo", 2), ("rloo", 4)])
def test_unbiased_algorithms_expect_the_gradient_of_j_beta(kind, algorithm, k):
    _, prob, pol, theta = _setup(kind)
    opts = {"baseline": 0.7} if algorithm != "rloo" else {}
    np.testing.assert_allclose(rlhf.expected_update(algorithm, prob, pol, theta, k=k, **opts),
                               prob.gradient(pol, theta), atol=1e-12)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_rebel_direction_is_two_over_eta_times_the_gradient(kind):
    _, prob, pol, theta = _setup(kind)
    for k in (2, 4):
        np.testing.assert_allclose(rlhf.expected_update("rebel", prob, pol, theta, k=k, eta=0.25),
                                   8.0 * prob.gradient(pol, theta), atol=1e-12)


def test_rebel_k2_weights_are_two_over_eta_times_rloo_k2_weights_sample_by_sample():
    rng = np.random.default_rng(0)
    r, lr = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    np.testing.assert_allclose(rlhf.group_weights("rebel", r, lr, beta=0.3, eta=0.5),
                               4.0 * rlhf.group_weights("rloo", r, lr, beta=0.3), atol=1e-15)


def test_rloo_is_the_leave_one_out_baseline_of_the_estimators():
    """One prompt, k responses drawn by tpg.sample: our sampled update equals
    estimate(batch, 'reinforce', baseline='leave_one_out').mean (beta = 0: the batch's reward)."""
    _, prob, pol, theta = _setup()
    for k in (2, 5):
        x, y, batch = rlhf.sample_groups(prob, pol, theta, 1, k, rng=k)
        ours = rlhf.sampled_update("rloo", prob, pol, theta, x, y, beta=0.0)
        ref = estimators.estimate(batch, pol, theta, "reinforce", baseline="leave_one_out").mean
        np.testing.assert_allclose(ours, ref, atol=1e-14)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_dr_grpo_removes_grpo_normalization_bias_up_to_scale(kind):
    _, prob, pol, theta = _setup(kind, X=3, Y=3, seed=3)
    for k in (2, 3, 4):
        dr = rlhf.normalization_bias("dr_grpo", prob, pol, theta, k=k, max_length=5.0)
        assert dr.cosine == pytest.approx(1.0, abs=1e-12)
        assert dr.norm_ratio == pytest.approx((1 - 1 / k) / 5.0, rel=1e-12)
        gr = rlhf.normalization_bias("grpo", prob, pol, theta, k=k)
        assert gr.cosine < 0.99
    # without lengths the bias is the std normalization alone (k = 2: sign advantages)
    flat = rlhf.KLProblem(prob.mu, prob.reward, prob.pi_ref, beta=prob.beta)
    assert rlhf.normalization_bias("grpo", flat, pol, theta, k=2).cosine < 0.999


def test_k3_term_expects_minus_beta_times_the_reverse_kl_gradient():
    _, prob, pol, theta = _setup()
    flat_reward = rlhf.KLProblem(prob.mu, np.zeros(prob.shape), prob.pi_ref, beta=prob.beta)
    e = rlhf.expected_update("dr_grpo", flat_reward, pol, theta, k=2)   # reward part is zero
    # -beta grad KL(pi_ref || pi_theta) = beta sum_x mu sum_y pi_ref grad log pi (k = 2: factor 1/k * k)
    target = prob.beta * pol.contract_table(theta, prob.mu[:, None] * prob.pi_ref)
    np.testing.assert_allclose(e, target, atol=1e-12)


@pytest.mark.parametrize("algorithm", list(_OPTS))
def test_monte_carlo_mean_of_sampled_updates_equals_the_exact_expected_update(algorithm):
    """N single-prompt draws (one tpg.sample call), per-draw updates by contract_episodes;
    chi-square with the exact covariance from update_moments at alpha = 1e-6. Power: the
    expected update at a doubled beta is rejected from the same samples."""
    opts, k = _OPTS[algorithm]
    _, prob, pol, theta = _setup()
    N = 20_000
    x, y, _ = rlhf.sample_groups(prob, pol, theta, N, k, rng=1)
    w_opts = dict(opts)
    if "baseline" in w_opts:
        b = np.asarray(w_opts["baseline"])
        w_opts["baseline"] = b[x][:, None] if b.ndim else b
    log_ratio = prob.log_ratio(pol.probs(theta))
    c = rlhf.group_weights(algorithm, prob.reward[x[:, None], y], log_ratio[x[:, None], y], beta=prob.beta,
                           length=prob.length[x[:, None], y] if algorithm == "grpo" else None, **w_opts)
    samples = pol.contract_episodes(theta, np.repeat(np.arange(N), k), N, np.repeat(x, k), c.ravel(),
                                    y.ravel()).reshape(N, -1)
    np.testing.assert_allclose(samples.mean(axis=0),
                               rlhf.sampled_update(algorithm, prob, pol, theta, x, y, **opts).ravel(), atol=1e-12)
    mean, cov = rlhf.update_moments(algorithm, prob, pol, theta, k=k, **opts)
    np.testing.assert_allclose(mean, rlhf.expected_update(algorithm, prob, pol, theta, k=k, **opts).ravel(),
                               atol=1e-13)
    assert_unbiased(samples, mean, cov=cov, alpha=ALPHA)
    wrong = rlhf.expected_update(algorithm, prob, pol, theta, k=k, beta=2 * prob.beta, **opts).ravel()
    assert not unbiased_test(samples, wrong, cov=cov, alpha=ALPHA).passed


@pytest.mark.parametrize("kind", ["tabular", "linear"])
@pytest.mark.parametrize("algorithm", list(_OPTS))
def test_update_moments_equal_the_moments_over_every_single_prompt_outcome(kind, algorithm):
    """Exact oracle for the covariance: sampled_update on each outcome (x, y_1..y_k), one at
    a time, weighted by mu(x) prod pi(y_i|x)."""
    import itertools
    opts, k = _OPTS[algorithm]
    _, prob, pol, theta = _setup(kind)
    X, Y = prob.shape
    pi = pol.probs(theta)
    outcomes = [(x, t) for x in range(X) for t in itertools.product(range(Y), repeat=k)]
    g = np.array([rlhf.sampled_update(algorithm, prob, pol, theta, np.array([x]), np.array([t]), **opts).ravel()
                  for x, t in outcomes])
    w = np.array([prob.mu[x] * np.prod(pi[x, list(t)]) for x, t in outcomes])
    mean = w @ g
    mean_u, cov_u = rlhf.update_moments(algorithm, prob, pol, theta, k=k, **opts)
    np.testing.assert_allclose(mean_u, mean, rtol=0, atol=1e-14 * np.abs(g).max())
    np.testing.assert_allclose(cov_u, (g - mean).T @ ((g - mean) * w[:, None]), rtol=0,
                               atol=1e-14 * np.abs(g).max() ** 2)


def test_grpo_samples_reject_every_multiple_of_the_true_gradient():
    """The bias is visible in samples: GRPO's Monte Carlo mean is not c * grad E[r] for the
    least-squares best c (beta = 0)."""
    _, prob, pol, theta = _setup(X=2, Y=3, seed=4)
    N, k = 20_000, 2
    x, y, _ = rlhf.sample_groups(prob, pol, theta, N, k, rng=2)
    c = rlhf.group_weights("grpo", prob.reward[x[:, None], y], np.zeros((N, k)), beta=0.0,
                           length=prob.length[x[:, None], y])
    samples = pol.contract_episodes(theta, np.repeat(np.arange(N), k), N, np.repeat(x, k), c.ravel(),
                                    y.ravel()).reshape(N, -1)
    _, cov = rlhf.update_moments("grpo", prob, pol, theta, k=k, beta=0.0)
    g = tpg.exact.policy_gradient(prob.mdp, pol, theta).ravel()
    best = samples.mean(axis=0) @ g / (g @ g)
    assert not unbiased_test(samples, best * g, cov=cov, alpha=ALPHA).passed
    assert_unbiased(samples, rlhf.expected_update("grpo", prob, pol, theta, k=k, beta=0.0).ravel(), cov=cov,
                    alpha=ALPHA)


def test_rebel_step_tabular_closed_form_and_normal_equations():
    _, prob, pol, theta = _setup(X=2, Y=4)
    x = np.array([0, 1])
    y = np.array([[0, 2], [3, 1]])
    new = rlhf.rebel_step(prob, pol, theta, x, y, eta=0.5)
    R = prob.reward - prob.beta * prob.log_ratio(pol.probs(theta))
    d = new - theta
    for j in range(2):   # min-norm: +-eta dR / 2 on the pair, 0 elsewhere
        dR = R[x[j], y[j, 0]] - R[x[j], y[j, 1]]
        assert d[x[j], y[j, 0]] == pytest.approx(0.25 * dR, abs=1e-10)
        assert d[x[j], y[j, 1]] == pytest.approx(-0.25 * dR, abs=1e-10)
    assert np.abs(d[0, [1, 3]]).max() < 1e-12 and np.abs(d[1, [0, 2]]).max() < 1e-12


def test_first_epoch_of_ppo_and_grpo_is_the_sampled_update():
    w = rlhf.random_world(4, 3, n_features=2, rng=0)
    pipe = T.prepare(w, n_demos=100, n_pairs=200, rng=0)
    prob, pol = pipe.problem, pipe.policy
    theta = pipe.theta_ref
    x, y, batch = rlhf.sample_groups(prob, pol, theta, 6, 3, rng=5)
    R = batch.rewards[:, 0].reshape(6, 3) - prob.beta * prob.log_ratio(pol.probs(theta))[x[:, None], y]
    critic = np.array([0.1, -0.2, 0.3, 0.0])
    new = T._surrogate_epochs(pipe, theta, batch, (R - critic[x][:, None]).reshape(-1, 1), lr=2.0, epochs=1,
                              clip=0.2)
    np.testing.assert_allclose(new, theta + 2.0 * rlhf.sampled_update("ppo", prob, pol, theta, x, y,
                                                                       baseline=critic), atol=1e-13)
    for name, k in (("reinforce", 1), ("rloo", 3), ("grpo", 4), ("dr_grpo", 4)):   # train's one-epoch step
        run = T.train(pipe, name, n_iter=1, n_prompts=6, rng=9, k=k, lr=3.0)
        xs, ys, _ = rlhf.sample_groups(prob, pol, theta, 6, k, rng=9)       # the same draws as train's
        np.testing.assert_allclose(run.theta, theta + 3.0 * rlhf.sampled_update(name, prob, pol, theta, xs, ys),
                                   atol=1e-12, err_msg=name)


def test_a_diverging_run_stops_with_a_numerical_error_naming_it():
    """Three GRPO epochs at lr = 100 here: the k3 weight beta (1 - pi_ref / pi) overflows as pi
    collapses. No RuntimeWarning (they are errors here), no "`theta` must be finite" from
    inside the loop: a NumericalError naming the run."""
    pipe = T.prepare(rlhf.random_world(5, 4, n_features=3, rng=2), n_demos=80, n_pairs=200, rng=0)
    with pytest.raises(tpg.NumericalError, match=r"^grpo: at iteration \d+ with lr = 100.0: theta has \d+ non-finite"):
        T.train(pipe, "grpo:epochs=3", n_iter=4, rng=1)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_every_algorithm_trains_and_records_exact_metrics(kind):
    w = rlhf.random_world(6, 4, n_features=3, rng=1)
    pipe = T.prepare(w, policy=kind, n_demos=60, n_pairs=200, rng=0)
    for spec in ("sft", "dpo", "reinforce", "ppo", "rloo:k=2", "rloo:k=4", "rebel", "grpo", "dr_grpo",
                 "grpo:epochs=2"):
        run = T.train(pipe, spec, n_iter=5, rng=0)
        hist = run.history
        assert set(hist) == {"win_rate", "win_rate_opponent", "reward", "rm_reward", "kl", "distance"}
        if spec != "sft":
            assert hist["kl"].shape == (6,) and hist["kl"][0] == 0.0 and np.all(np.isfinite(hist["win_rate"]))
            m = pipe.metrics(run.theta)
            assert m.win_rate == pytest.approx(hist["win_rate"][-1], abs=1e-15)
    run = T.train(pipe, "rloo", n_iter=3, rng=0, opponent=pipe.pi_star)      # win rate against any policy
    np.testing.assert_allclose(run.history["win_rate_opponent"][-1],
                               rlhf.win_rate(w, pipe.policy.probs(run.theta), pipe.pi_star), atol=1e-15)


_, _P, _POL, _TH = _setup()


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, _TH, k=1), "`k` must be >= 2", id="rloo-k1"),
    pytest.param(lambda: rlhf.expected_update("grpo", _P, _POL, _TH, k=1), "`k` must be >= 2", id="grpo-k1"),
    pytest.param(lambda: rlhf.expected_update("dr_grpo", _P, _POL, _TH, k=1), "`k` must be >= 2", id="drgrpo-k1"),
    pytest.param(lambda: rlhf.expected_update("rebel", _P, _POL, _TH, k=3), "`k` must be even", id="rebel-odd"),
    pytest.param(lambda: rlhf.expected_update("sac", _P, _POL, _TH, k=2), "`algorithm`", id="algorithm"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, tpg.TabularSoftmax(3, 3), np.zeros((3, 3)), k=2),
                 "`policy`", id="policy-shape"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, np.zeros((3, 2)), k=2), "`theta`",
                 id="theta-shape"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, _TH, k=20), "max_terms", id="too-large"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, _TH, k=2, beta=-1.0), "`beta`", id="beta"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, _TH, k=2, bogus=1), "unknown option",
                 id="option"),
    pytest.param(lambda: rlhf.expected_update("rloo", _P, _POL, _TH, k=2, baseline=1.0),
                 r"unknown option\(s\) \['baseline'\] for 'rloo'", id="option-not-used"),
    pytest.param(lambda: rlhf.sampled_update("grpo", _P, _POL, _TH, np.array([0]), np.array([[0, 1]]), eta=2.0),
                 "unknown option", id="option-not-used-sampled"),
    pytest.param(lambda: rlhf.group_weights("grpo", np.zeros((2, 3)), np.zeros((2, 3)), beta=0.1, length=np.ones(3)),
                 r"`length` must have the shape of `reward` \(2, 3\)", id="length-shape"),
    pytest.param(lambda: rlhf.group_weights("grpo", np.zeros((2, 3)), np.zeros((2, 3)), beta=0.1,
                                            length=np.zeros((2, 3))), "min 0", id="length-zero"),
    pytest.param(lambda: rlhf.group_weights("rloo", np.zeros((2, 3)), np.zeros((2, 2)), beta=0.1), "`log_ratio`",
                 id="weights-shape"),
    pytest.param(lambda: rlhf.group_weights("rebel", np.zeros((1, 2)), np.zeros((1, 2)), beta=0.1, eta=0.0),
                 "`eta`", id="eta"),
    pytest.param(lambda: rlhf.sampled_update("rloo", _P, _POL, _TH, np.array([0]), np.array([0, 1])), "`y`",
                 id="groups-shape"),
    pytest.param(lambda: rlhf.rebel_step(_P, _POL, _TH, np.array([0]), np.array([[0, 1, 2]]), eta=1.0), "`y`",
                 id="rebel-pairs"),
    pytest.param(lambda: T.train(T.prepare(rlhf.random_world(2, 3, rng=0), n_demos=10, n_pairs=10), "rloo:k=x"),
                 "k='x'", id="train-spec"),
    pytest.param(lambda: T.prepare(rlhf.random_world(2, 3, rng=0), beta=0.0), "`beta` must be > 0",
                 id="prepare-beta"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(TabularPGError, match=match):
        call()


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), X=st.integers(1, 3), Y=st.integers(2, 4), k=st.integers(2, 3),
       beta=st.floats(0.01, 5.0), eta=st.floats(0.1, 10.0))
def test_expected_update_identities_hold_for_every_problem(seed, X, Y, k, beta, eta):
    """For any world, reference, theta: RLOO and REINFORCE expect grad J_beta, REBEL expects
    (2/eta) grad J_beta, Dr. GRPO's reward part expects (1 - 1/k) grad E[r]."""
    rng = np.random.default_rng(seed)
    mu = rng.dirichlet(np.ones(X))
    prob = rlhf.KLProblem(mu, rng.normal(size=(X, Y)) * 2, rng.dirichlet(np.ones(Y), size=X), beta=beta)
    pol = tpg.TabularSoftmax(X, Y)
    theta = rng.normal(size=(X, Y))
    g = prob.gradient(pol, theta)
    scale = max(1.0, np.abs(g).max())
    np.testing.assert_allclose(rlhf.expected_update("rloo", prob, pol, theta, k=k), g, atol=1e-11 * scale)
    np.testing.assert_allclose(rlhf.expected_update("reinforce", prob, pol, theta, k=k, baseline=rng.normal()), g,
                               atol=1e-11 * scale)
    np.testing.assert_allclose(rlhf.expected_update("rebel", prob, pol, theta, k=2, eta=eta), 2 / eta * g,
                               atol=1e-11 * scale / eta)
    reward_part = rlhf.expected_update("dr_grpo", prob, pol, theta, k=k, beta=0.0)
    np.testing.assert_allclose(reward_part, (1 - 1 / k) * tpg.exact.policy_gradient(prob.mdp, pol, theta),
                               atol=1e-11 * scale)


def test_grpo_later_epochs_follow_the_gradient_of_the_clipped_surrogate_with_k3():
    """Second epoch of GRPO: (theta_2 - theta_1) / lr equals the central-difference gradient
    at theta_1 of (1/N) sum_i [min(rho A, clip(rho) A) - beta k3] / L_i, k3 = pi_ref/pi - log(pi_ref/pi) - 1."""
    w = rlhf.random_world(3, 4, n_features=2, rng=3)
    pipe = T.prepare(w, n_demos=80, n_pairs=100, rng=1)
    prob, pol, theta0 = pipe.problem, pipe.policy, pipe.theta_ref
    x, y, batch = rlhf.sample_groups(prob, pol, theta0, 5, 4, rng=2)
    r = batch.rewards[:, 0].reshape(5, 4)
    A = (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, ddof=1, keepdims=True) + 1e-4)
    L = prob.length[x[:, None], y].astype(float)
    s, a = np.repeat(x, 4), y.ravel()
    log_ref = np.log(prob.pi_ref)
    beta, clip, lr = prob.beta, 0.05, 5.0

    def kl_weight(th, s_, a_):
        return -beta * -np.expm1(-(pol.log_probs(th)[s_, a_] - log_ref[s_, a_])) / L.ravel()

    adv = (A / L).reshape(-1, 1)
    th1 = T._surrogate_epochs(pipe, theta0, batch, adv, lr=lr, epochs=1, clip=clip, kl_weight=kl_weight)
    th2 = T._surrogate_epochs(pipe, theta0, batch, adv, lr=lr, epochs=2, clip=clip, kl_weight=kl_weight)
    logp_old = pol.log_probs(theta0)[s, a]

    def objective(th):
        lp = pol.log_probs(th)[s, a]
        rho = np.exp(lp - logp_old)
        Af = A.ravel()
        sur = np.minimum(rho * Af, np.clip(rho, 1 - clip, 1 + clip) * Af)
        q = np.exp(log_ref[s, a] - lp)
        return np.mean((sur - beta * (q - np.log(q) - 1)) / L.ravel())

    h = 1e-6
    fd = np.zeros_like(th1)
    for i in np.ndindex(th1.shape):
        e = np.zeros_like(th1)
        e[i] = h
        fd[i] = (objective(th1 + e) - objective(th1 - e)) / (2 * h)
    rho1 = np.exp(pol.log_probs(th1)[s, a] - logp_old)
    assert np.min(np.abs(np.abs(rho1 - 1) - clip)) > 1e-4          # away from the kinks
    assert np.any(np.abs(rho1 - 1) > clip) and np.any(np.abs(rho1 - 1) < clip)   # both branches occur
    np.testing.assert_allclose((th2 - th1) / lr, fd, atol=1e-8)


def test_updates_at_a_near_deterministic_policy_are_finite():
    """log pi from log-probabilities: a response whose probability underflows to 0 gets a
    finite KL-penalized reward (log(probs) would give -inf and a RuntimeWarning, an error here)."""
    w = rlhf.random_world(2, 3, rng=0)
    prob = rlhf.KLProblem(w.mu, w.reward, np.full((2, 3), 1 / 3), beta=0.5)
    pol = tpg.TabularSoftmax(2, 3)
    theta = np.array([[800.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert pol.probs(theta)[0, 1] == 0.0
    x, y = np.array([0, 1]), np.array([[0, 1], [2, 1]])
    for g in (rlhf.sampled_update("rloo", prob, pol, theta, x, y),
              rlhf.rebel_step(prob, pol, theta, x, y, eta=0.5),
              rlhf.rebel_population_step(prob, pol, theta, eta=0.5)):
        assert np.all(np.isfinite(g))
