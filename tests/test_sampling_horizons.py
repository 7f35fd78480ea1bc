"""Sampling with gamma = 1 and terminal states: explicit truncation, runs to termination,
and the cap on undetermined lengths (improper or nearly improper policies).

Oracles: ``estimators.expected(..., horizon=batch.horizon)``, the exact expectation of
the same truncation, tested by Hotelling's T^2 at alpha = 1e-6 (fixed seeds), with a
power check: the same samples are rejected against the expectation of another
truncation. Every test runs with warnings turned into errors.
"""
import warnings

import numpy as np
import pytest

from tabularpg import (
    MDP,
    ImproperPolicyError,
    TabularSoftmax,
    ValidationError,
    envs,
    exact,
    sampling,
)
from tabularpg.estimators import estimate, expected
from tabularpg.sampling import sample
from tabularpg.testing.assertions import unbiased_test

ALPHA = 1e-6


@pytest.fixture(autouse=True)
def _strict_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def slow_exit_mdp(gamma=1.0):
    """Three decision states and a terminal one; action 1 exits w.p. 0.2, action 0 w.p. 0.05."""
    P = np.zeros((4, 2, 4))
    for s in range(3):
        P[s, 0, (s + 1) % 3] = 0.95
        P[s, 0, 3] = 0.05
        P[s, 1, s] = 0.8
        P[s, 1, 3] = 0.2
    P[3, :, 3] = 1.0
    R = np.array([[1.0, -0.5], [0.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    return MDP(P, R, np.array([0.6, 0.4, 0.0, 0.0]), gamma=gamma, terminal=np.array([0, 0, 0, 1], bool))


def test_truncated_batch_matches_the_expectation_of_its_recorded_horizon():
    mdp = slow_exit_mdp()
    pol = TabularSoftmax(4, 2)
    theta = np.random.default_rng(0).normal(size=(4, 2))
    b = sample(mdp, pol, theta, 20000, rng=1, horizon=6)
    assert b.horizon == 6 and 0.2 < b.truncated.mean() < 0.9   # truncation matters here
    X = estimate(b, pol, theta, "reinforce").samples
    assert unbiased_test(X, expected("reinforce", mdp, pol, theta, horizon=b.horizon)).passed
    # power: the untruncated expectation (what horizon=None would estimate) is rejected
    assert not unbiased_test(X, expected("reinforce", mdp, pol, theta, horizon=None)).passed


def test_horizon_none_runs_to_termination():
    mdp = slow_exit_mdp()
    pol = TabularSoftmax(4, 2)
    theta = np.random.default_rng(0).normal(size=(4, 2))
    b = sample(mdp, pol, theta, 20000, rng=2)
    assert b.horizon is None and not b.truncated.any() and b.terminated.sum() == b.n_episodes
    R = b.returns()
    assert abs(R.mean() - exact.objective(mdp, pol.probs(theta))) <= 5 * R.std(ddof=1) / np.sqrt(R.size)
    X = estimate(b, pol, theta, "reward_to_go").samples
    assert unbiased_test(X, expected("reward_to_go", mdp, pol, theta, horizon=b.horizon)).passed
    assert not unbiased_test(X, expected("reward_to_go", mdp, pol, theta, horizon=6)).passed


def test_horizon_none_is_still_refused_without_terminal_states():
    with pytest.raises(ValidationError, match="`horizon` is required for an infinite-horizon MDP without terminal"):
        sample(envs.two_state(), TabularSoftmax(2, 2), np.zeros((2, 2)), 3, rng=0)


def test_improper_policy_stops_at_the_cap(monkeypatch):
    monkeypatch.setattr(sampling, "STEP_CAP", 5000)
    mdp = envs.cliff_walking()
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta = np.zeros(pol.theta_shape)
    theta[:, 0] = 50.0   # always "up": never reaches the goal
    with pytest.raises(ImproperPolicyError, match=r"after 50 steps 100 of 100 episodes are still running.*"
                                                  r"STEP_CAP = 5000.*Pass a smaller `horizon` \(e\.g\. 50\)"):
        sample(mdp, pol, theta, 100, rng=0)
    with pytest.raises(ImproperPolicyError, match=r"`horizon`=1000000: after 50 steps"):
        sample(mdp, pol, theta, 100, rng=0, horizon=10**6)
    b = sample(mdp, pol, theta, 100, rng=0, horizon=50)   # an explicit horizon within the cap: truncation
    assert b.horizon == 50 and b.truncated.all()


def test_nearly_improper_two_state_chain(monkeypatch):
    """Exit probability 1e-300: sampling to termination is refused; gamma < 1 names `horizon`."""
    monkeypatch.setattr(sampling, "STEP_CAP", 4000)
    eps = 1e-300
    P = np.zeros((2, 1, 2))
    P[0, 0] = [1 - eps, eps]
    P[1, 0, 1] = 1.0
    mdp = MDP(P, np.array([[1.0], [0.0]]), np.array([1.0, 0.0]), gamma=1.0, terminal=np.array([False, True]))
    pol = TabularSoftmax(2, 1)
    with pytest.raises(ImproperPolicyError, match="nearly improper"):
        sample(mdp, pol, pol.zeros(), 40, rng=0)
    with pytest.raises(ValidationError, match=r"`horizon`=None \(run every episode to termination\): after 100 steps"):
        sample(mdp.replace(gamma=0.5), pol, pol.zeros(), 40, rng=0)


def test_cap_only_binds_when_episodes_are_still_running(monkeypatch):
    """N * horizon above the cap is fine when every episode ends before the cap."""
    monkeypatch.setattr(sampling, "STEP_CAP", 20000)
    mdp = slow_exit_mdp()
    pol = TabularSoftmax(4, 2)
    theta = np.tile([-5.0, 5.0], (4, 1))   # exits w.p. about 0.2 per step: length <= 100 w.p. 1 - 1e-9
    b = sample(mdp, pol, theta, 200, rng=0, horizon=10**6)
    assert b.horizon == 10**6 and not b.truncated.any() and b.width <= 100
