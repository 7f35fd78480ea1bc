"""Optimizers at legal extremes: huge step sizes, near-deterministic starts, and cliff
walking with gamma = 1 (nearly improper policies).

Contract: with every RuntimeWarning turned into an error, each run either returns a
finite history (J, theta, KL >= 0) whose J values are consistent with the MDP, or stops
with a :class:`NumericalError` naming the algorithm, the iteration and the step size.
Ratios and logs go through log-probabilities, so near-deterministic policies never give
0/0 or log(0).
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tabularpg import LinearSoftmax, TabularSoftmax, envs, exact, optim
from tabularpg import objectives as O
from tabularpg._validation import NumericalError
from tabularpg.optim import _log_ratio_kl

# (id, algorithm name in messages, run(mdp, policy, theta0, step, n_iter, horizon))
OPTIMIZERS = [
    ("pga", "policy_gradient_ascent",
     lambda m, p, th, s, n, H: optim.policy_gradient_ascent(m, p, th, step_size=s, n_iter=n)),
    ("pga_entropy", "policy_gradient_ascent",
     lambda m, p, th, s, n, H: optim.policy_gradient_ascent(m, p, th, step_size=s, n_iter=n, tau=0.1)),
    ("pga_sampled", "policy_gradient_ascent",
     lambda m, p, th, s, n, H: optim.policy_gradient_ascent(m, p, th, step_size=s, n_iter=n, estimator="reinforce",
                                                            n_episodes=16, horizon=H, rng=1)),
    ("npg", "natural_policy_gradient",
     lambda m, p, th, s, n, H: optim.natural_policy_gradient(m, p, th, step_size=s, n_iter=n)),
    ("npg_entropy", "natural_policy_gradient",
     lambda m, p, th, s, n, H: optim.natural_policy_gradient(m, p, th, step_size=s, n_iter=n, tau=0.1)),
    ("npg_fisher", "natural_policy_gradient",
     lambda m, p, th, s, n, H: optim.natural_policy_gradient(m, p, th, step_size=s, n_iter=n, closed_form=False)),
    ("trpo", "trpo", lambda m, p, th, s, n, H: optim.trpo(m, p, th, delta=s, n_iter=n)),
    ("trpo_sampled", "trpo",
     lambda m, p, th, s, n, H: optim.trpo(m, p, th, delta=s, n_iter=n, estimator="reinforce", n_episodes=16,
                                          horizon=H, rng=1)),
    ("ppo", "ppo", lambda m, p, th, s, n, H: optim.ppo(m, p, th, n_iter=n, lr=s, epochs=3)),
    ("ppo_adaptive_kl", "ppo",
     lambda m, p, th, s, n, H: optim.ppo(m, p, th, n_iter=n, lr=s, epochs=3, adaptive_kl=True)),
    ("ppo_sampled", "ppo",
     lambda m, p, th, s, n, H: optim.ppo(m, p, th, n_iter=n, lr=s, epochs=3, n_episodes=16, horizon=H, rng=1)),
    ("rloo", "rloo", lambda m, p, th, s, n, H: optim.rloo(m, p, th, n_iter=n, step_size=s, horizon=H, rng=1)),
    ("actor_critic", "actor_critic",
     lambda m, p, th, s, n, H: optim.actor_critic(m, p, th, n_iter=n, step_size=s, n_episodes=8, horizon=H, rng=1)),
]
IDS = [o[0] for o in OPTIMIZERS]


def _run_strict(run, *args):
    """Run with every warning an error; return the result or the NumericalError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return run(*args)
        except NumericalError as exc:
            return exc


def _check_outcome(out, algorithm, step):
    if isinstance(out, NumericalError):
        msg = str(out)
        assert msg.startswith(f"{algorithm}: ")
        assert re.search(r"(iteration \d+|at the start)", msg), msg
        assert f"= {step:g}" in msg, msg
        assert out.algorithm == algorithm and out.step_size == step
        return None
    assert np.all(np.isfinite(out.theta))
    assert np.all(np.isfinite(out.j)) and np.all(np.isfinite(out.kl))
    assert np.all(out.kl >= 0.0)  # clamped at zero, see OptimResult
    return out


@pytest.mark.parametrize("step", [1e6, 1e300])
@pytest.mark.parametrize("name,algorithm,run", OPTIMIZERS, ids=IDS)
def test_huge_step_sizes(name, algorithm, run, step):
    mdp = envs.garnet(3, 2, 2, rng=0)
    pol = TabularSoftmax(3, 2)
    out = _check_outcome(_run_strict(run, mdp, pol, np.zeros((3, 2)), step, 4, 20), algorithm, step)
    if out is not None:
        # J of any policy lies between the extremes over deterministic policies
        dets = [exact.objective(mdp, np.eye(2)[[a, b, c]]) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        assert min(dets) - 1e-9 <= out.j.min() and out.j.max() <= max(dets) + 1e-9, out.j


@pytest.mark.parametrize("name,algorithm,run", OPTIMIZERS, ids=IDS)
def test_near_deterministic_start(name, algorithm, run):
    mdp = envs.garnet(4, 3, 2, rng=3)
    pol = TabularSoftmax(4, 3)
    theta0 = np.where(np.arange(3)[None, :] == (np.arange(4) % 3)[:, None], 400.0, -400.0)
    out = _check_outcome(_run_strict(run, mdp, pol, theta0, 1.0, 3, 20), algorithm, 1.0)
    assert out is not None  # nothing ill-conditioned here: the run must finish


@pytest.mark.parametrize("name,algorithm,run", OPTIMIZERS, ids=IDS)
def test_cliff_walking_gamma_one(name, algorithm, run):
    """Nearly improper iterates: a clear error, or J values the MDP allows (rewards are -1
    per step or -100, every episode takes at least one step, so J <= -1)."""
    mdp = envs.cliff_walking()
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    out = _check_outcome(_run_strict(run, mdp, pol, pol.zeros(), 1.0, 8, 100), algorithm, 1.0)
    if out is not None:
        assert np.all(out.j <= -1.0), out.j


def test_cliff_rloo_stops_instead_of_reporting_a_positive_return():
    """The run that reported J = 6.3e104 (rewards in [-100, -1]) now stops with the reason."""
    mdp = envs.cliff_walking()
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NumericalError, match=r"rloo: at iteration \d+ with step_size = 1:"):
            optim.rloo(mdp, pol, pol.zeros(), n_iter=20, step_size=1.0, horizon=100, rng=0)


def test_linear_policy_extremes():
    mdp = envs.garnet(4, 3, 2, rng=5)
    pol = LinearSoftmax(np.random.default_rng(0).normal(size=(4, 3, 2)))
    for step in (1e6, 1e300):
        _check_outcome(_run_strict(OPTIMIZERS[0][2], mdp, pol, np.zeros(2), step, 3, None),
                       "policy_gradient_ascent", step)
        _check_outcome(_run_strict(OPTIMIZERS[5][2], mdp, pol, np.zeros(2), step, 3, None),
                       "natural_policy_gradient", step)


@pytest.mark.parametrize("step", [1e6, 1e300])
@pytest.mark.parametrize("start", [0.0, 400.0])
def test_dpo_extremes(step, start):
    pi_ref = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    reward = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]])
    pol = TabularSoftmax(2, 3)
    theta0 = start * np.array([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])
    out = _run_strict(lambda: optim.dpo(pol, theta0, pi_ref, beta=0.5, n_iter=3, lr=step, reward=reward,
                                        mu=np.array([0.5, 0.5])))
    _check_outcome(out, "dpo", step)


def test_ppo_clip_at_a_near_deterministic_old_policy():
    """rho = pi / pi_old was 0/0 here; with log-probabilities the value is 0 at theta_old
    (the advantage has mean 0 under pi_old) and the gradient is grad J."""
    mdp = envs.garnet(4, 3, 2, rng=3)
    pol = TabularSoftmax(4, 3)
    theta_old = np.where(np.arange(3)[None, :] == (np.arange(4) % 3)[:, None], 400.0, -400.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sur = O.Surrogate.at(mdp, pol, theta_old)
        assert np.any(sur.pi_old == 0.0)  # the case that used to divide 0 by 0
        val, grad = O.ppo_clip(sur, pol, theta_old, clip=0.2)
        assert val == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(grad, exact.policy_gradient(mdp, pol, theta_old), atol=1e-12)
        moved = theta_old + np.random.default_rng(0).normal(size=theta_old.shape)
        val2, grad2 = O.ppo_clip(sur, pol, moved, clip=0.2)
        kl, _ = O.expected_kl(sur, pol, moved)
    assert np.isfinite(val2) and np.all(np.isfinite(grad2)) and np.isfinite(kl)


def test_ppo_clip_log_space_matches_the_ratio_formula():
    """Away from underflow the log-space form equals the textbook ratio formula."""
    mdp = envs.garnet(5, 3, 2, rng=1)
    pol = TabularSoftmax(5, 3)
    rng = np.random.default_rng(2)
    theta_old = rng.normal(size=(5, 3))
    theta = theta_old + 0.5 * rng.normal(size=(5, 3))
    sur = O.Surrogate.at(mdp, pol, theta_old)
    for clip in (0.1, 0.2, 1.0):
        rho = pol.probs(theta) / sur.pi_old
        A = sur.adv_old
        ref = np.sum(sur.d_old[:, None] * sur.pi_old * np.minimum(rho * A, np.clip(rho, 1 - clip, 1 + clip) * A))
        assert O.ppo_clip(sur, pol, theta, clip=clip)[0] == pytest.approx(ref, rel=1e-12, abs=1e-14)


def test_entropy_gradient_at_underflowed_probabilities():
    mdp = envs.garnet(4, 3, 2, rng=3)
    pol = TabularSoftmax(4, 3)
    theta = np.where(np.arange(3)[None, :] == (np.arange(4) % 3)[:, None], 400.0, -400.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = O.entropy_policy_gradient(mdp, pol, theta, 0.1)
    assert np.all(np.isfinite(g))


@given(st.lists(st.floats(-800, 800), min_size=6, max_size=6), st.lists(st.floats(-800, 800), min_size=6, max_size=6))
def test_kl_rounding_bound(z_old, z_new):
    """The per-state KL from log-probabilities is >= minus its stated rounding bound, so
    clamping at zero only removes rounding (a value below it raises NumericalError)."""
    from tabularpg.policies import log_softmax

    lo = log_softmax(np.array(z_old).reshape(2, 3))
    ln = log_softmax(np.array(z_new).reshape(2, 3))
    kl_s, bound = _log_ratio_kl(np.exp(lo), lo, ln)
    assert np.all(np.isfinite(kl_s))
    assert np.all(kl_s >= -bound), (kl_s, bound)


def test_negative_kl_beyond_rounding_is_refused():
    """A KL below minus its rounding bound cannot come from rounding: the run refuses it
    (here forced by an occupancy with a negative entry, as ill-conditioned solves give)."""
    mdp = envs.garnet(3, 2, 2, rng=0)
    pol = TabularSoftmax(3, 2)
    run = optim._Run("test", mdp, pol, np.zeros((3, 2)), step_name="step_size", step_value=1.0)
    run.ev = type(run.ev)(v=run.ev.v, q=run.ev.q, d=-run.ev.d, j=run.ev.j)
    with pytest.raises(NumericalError, match="KL.*negative beyond its rounding bound"):
        run.record(np.array([[1.0, -1.0], [0.0, 0.0], [2.0, 0.0]]), 1.0)


def test_refused_exact_evaluation_names_the_run(monkeypatch):
    """The exact solvers refuse near-singular systems (ImproperPolicyError / NumericalError):
    the optimizer reports which algorithm, iteration and step size met the refusal."""
    mdp = envs.garnet(3, 2, 2, rng=0)
    pol = TabularSoftmax(3, 2)
    real = exact.analyze
    calls = {"n": 0}

    def refusing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise NumericalError("I - gamma P_pi is numerically singular (rcond 1e-18)")
        return real(*args, **kwargs)

    monkeypatch.setattr(exact, "analyze", refusing)
    with pytest.raises(NumericalError, match=r"natural_policy_gradient: at iteration 2 with step_size = 0.5: "
                                             r"refused by NumericalError: I - gamma P_pi is numerically singular"):
        optim.natural_policy_gradient(mdp, pol, np.zeros((3, 2)), step_size=0.5, n_iter=5)


def test_improper_start_is_reported_at_the_start():
    mdp = envs.cliff_walking()
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta = np.zeros(pol.theta_shape)
    theta[:, 0] = 1e3   # "up" everywhere (probabilities of the others underflow to 0): never terminates
    with pytest.raises(NumericalError, match=r"policy_gradient_ascent: at the start \(theta0\) with step_size = 1: "
                                             r"refused by ImproperPolicyError"):
        optim.policy_gradient_ascent(mdp, pol, theta, step_size=1.0, n_iter=2)
