"""Hypothesis strategies for finite MDPs, softmax policies and their parameters.

Public, for users' own property tests::

    from hypothesis import given
    from tabularpg.testing.strategies import mdps, policies, thetas, problems

    @given(problems())
    def test_my_estimator(problem):
        mdp, policy, theta = problem
        ...

All options are keyword-only; defaults keep examples small (S <= 4, A <= 3) so that
exact solvers, enumeration and finite differences stay cheap.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

from .._validation import (
    ArgumentTypeError,
    ValidationError,
    check_bool,
    check_float,
    check_int,
    check_policy,
    check_sequence,
)
from ..mdp import MDP
from ..policies import LinearSoftmax, TabularSoftmax

__all__ = ["KINDS", "mdps", "policies", "thetas", "problems", "distributions"]

#: MDP kinds understood by :func:`mdps`.
KINDS = ("discounted", "finite", "terminal")


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def _distributions(draw, n: int, *, min_prob: float = 0.0, sparsity: bool = True):
    """A probability vector of length ``n`` (some entries exactly zero if ``sparsity``)."""
    w = np.array(draw(st.lists(_floats(0.0, 1.0), min_size=n, max_size=n)))
    if sparsity:
        w = w * np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if w.sum() <= 1e-3:
        w = w + 1.0
    p = w / w.sum()
    if min_prob > 0:
        p = (p + min_prob) / (1 + n * min_prob)
    return p


@st.composite
def _mdps(draw, *, min_states: int = 1, max_states: int = 4, min_actions: int = 1,
         max_actions: int = 3, kinds=KINDS, gamma=None, max_horizon: int = 4,
         reward_transitions=None, sparse=False):
    """Small random MDPs of the requested ``kinds``.

    Parameters
    ----------
    min_states, max_states, min_actions, max_actions : int
        Size bounds (a ``terminal`` MDP gets one extra, terminal, state).
    kinds : sequence of {"discounted", "finite", "terminal"}
        ``discounted``: infinite horizon, gamma in [0, 0.95]; ``finite``: horizon in
        [1, max_horizon], gamma in [0, 1]; ``terminal``: infinite horizon with terminal
        states, gamma in [0.5, 1] and every (s, a) entering a terminal state with
        probability >= 0.1, so every policy is proper.
    gamma : float, optional
        Fix the discount instead of drawing it.
    reward_transitions : bool or None
        Use ``R[s, a, s']`` (True), ``R[s, a]`` (False), or draw (None).
    sparse : bool or None
        Pass ``P`` as scipy.sparse CSR (True), dense (False), or draw (None).
    """
    kind = draw(st.sampled_from(tuple(kinds)))
    S = draw(st.integers(min_states, max_states))
    A = draw(st.integers(min_actions, max_actions))
    n_total = S + 1 if kind == "terminal" else S
    rows = [draw(_distributions(S)) for _ in range(n_total * A)]
    P = np.zeros((n_total, A, n_total))
    P[:, :, :S] = np.array(rows).reshape(n_total, A, S)
    terminal = None
    horizon = None
    if kind == "discounted":
        g = draw(_floats(0.0, 0.95)) if gamma is None else gamma
    elif kind == "finite":
        g = draw(_floats(0.0, 1.0)) if gamma is None else gamma
        horizon = draw(st.integers(1, max_horizon))
    else:
        g = draw(_floats(0.5, 1.0)) if gamma is None else gamma
        terminal = np.zeros(n_total, dtype=bool)
        terminal[-1] = True
        exit_p = draw(_floats(0.1, 0.9))
        P = P * (1 - exit_p)
        P[:, :, -1] = exit_p
    if draw(st.booleans()) if reward_transitions is None else reward_transitions:
        R = np.array(draw(st.lists(_floats(-1, 1), min_size=n_total * A * n_total,
                                   max_size=n_total * A * n_total))).reshape(n_total, A, n_total)
    else:
        R = np.array(draw(st.lists(_floats(-1, 1), min_size=n_total * A,
                                   max_size=n_total * A))).reshape(n_total, A)
    mu = np.zeros(n_total)
    mu[:S] = draw(_distributions(S))
    use_sparse = draw(st.booleans()) if sparse is None else sparse
    if use_sparse:
        P = sp.csr_matrix(P.reshape(n_total * A, n_total))
    return MDP(P, R, mu, gamma=g, horizon=horizon, terminal=terminal)


@st.composite
def _policies(draw, n_states: int, n_actions: int, *, kinds=("tabular", "linear"),
             max_features: int = 3):
    """A :class:`TabularSoftmax` or a :class:`LinearSoftmax` with random features."""
    kind = draw(st.sampled_from(tuple(kinds)))
    if kind == "tabular":
        return TabularSoftmax(n_states, n_actions)
    d = draw(st.integers(1, max_features))
    n = n_states * n_actions * d
    phi = np.array(draw(st.lists(_floats(-1, 1), min_size=n, max_size=n)))
    return LinearSoftmax(phi.reshape(n_states, n_actions, d))


@st.composite
def _thetas(draw, policy, *, scale: float = 2.0):
    """Parameters of ``policy.theta_shape`` with entries in [-scale, scale]."""
    n = policy.n_params
    x = np.array(draw(st.lists(_floats(-scale, scale), min_size=n, max_size=n)))
    return x.reshape(policy.theta_shape)


@st.composite
def _problems(draw, *, policy_kinds=("tabular", "linear"), scale: float = 2.0, **mdp_options):
    """A triple ``(mdp, policy, theta)``; ``mdp_options`` go to :func:`mdps`."""
    mdp = draw(_mdps(**mdp_options))
    policy = draw(_policies(mdp.n_states, mdp.n_actions, kinds=policy_kinds))
    theta = draw(_thetas(policy, scale=scale))
    return mdp, policy, theta


# ----------------------------------------------------------------------------- public
# The public strategies check their arguments when called (not when an example is
# drawn), so a bad option fails at the line that wrote it.
def _check_kinds(kinds, name, valid):
    kinds = check_sequence(kinds, name, min_len=1)
    bad = [k for k in kinds if k not in valid]
    if bad:
        raise ValidationError(f"`{name}` must hold values from {valid}; got {bad}")
    return tuple(kinds)


def _check_bounds(lo, hi, lo_name, hi_name, minimum):
    lo = check_int(lo, lo_name, minimum=minimum)
    hi = check_int(hi, hi_name, minimum=minimum)
    if lo > hi:
        raise ValidationError(f"`{lo_name}`={lo} is larger than `{hi_name}`={hi}")
    return lo, hi


def _check_mdp_options(min_states=1, max_states=4, min_actions=1, max_actions=3, kinds=KINDS, gamma=None,
                       max_horizon=4, reward_transitions=None, sparse=False):
    _check_bounds(min_states, max_states, "min_states", "max_states", 1)
    _check_bounds(min_actions, max_actions, "min_actions", "max_actions", 1)
    kinds = _check_kinds(kinds, "kinds", KINDS)
    if gamma is not None:
        gamma = check_float(gamma, "gamma", low=0.0, high=1.0)
        if gamma == 1.0 and "discounted" in kinds:
            raise ValidationError("`gamma`=1 needs kinds without 'discounted' (an infinite horizon with no "
                                  "terminal state has no defined return)")
    check_int(max_horizon, "max_horizon", minimum=1)
    if reward_transitions is not None:
        check_bool(reward_transitions, "reward_transitions")
    if sparse is not None:
        check_bool(sparse, "sparse")
    return dict(min_states=min_states, max_states=max_states, min_actions=min_actions, max_actions=max_actions,
                kinds=kinds, gamma=gamma, max_horizon=max_horizon, reward_transitions=reward_transitions,
                sparse=sparse)


def distributions(n: int, *, min_prob: float = 0.0, sparsity: bool = True):
    check_int(n, "n", minimum=1)
    min_prob = check_float(min_prob, "min_prob", low=0.0, high=1.0 / n)
    check_bool(sparsity, "sparsity")
    return _distributions(n, min_prob=min_prob, sparsity=sparsity)


def mdps(*, min_states: int = 1, max_states: int = 4, min_actions: int = 1, max_actions: int = 3,
         kinds=KINDS, gamma=None, max_horizon: int = 4, reward_transitions=None, sparse=False):
    return _mdps(**_check_mdp_options(min_states, max_states, min_actions, max_actions, kinds, gamma,
                                      max_horizon, reward_transitions, sparse))


def policies(n_states: int, n_actions: int, *, kinds=("tabular", "linear"), max_features: int = 3):
    check_int(n_states, "n_states", minimum=1)
    check_int(n_actions, "n_actions", minimum=1)
    kinds = _check_kinds(kinds, "kinds", ("tabular", "linear"))
    check_int(max_features, "max_features", minimum=1)
    return _policies(n_states, n_actions, kinds=kinds, max_features=max_features)


def thetas(policy, *, scale: float = 2.0):
    check_policy(policy)
    scale = check_float(scale, "scale", low=0.0)
    return _thetas(policy, scale=scale)


def problems(*, policy_kinds=("tabular", "linear"), scale: float = 2.0, **mdp_options):
    policy_kinds = _check_kinds(policy_kinds, "policy_kinds", ("tabular", "linear"))
    scale = check_float(scale, "scale", low=0.0)
    unknown = set(mdp_options) - set(_check_mdp_options.__code__.co_varnames[:9])
    if unknown:
        raise ArgumentTypeError(f"`mdp_options` got unknown options {sorted(unknown)}; valid: the options of mdps()")
    return _problems(policy_kinds=policy_kinds, scale=scale, **_check_mdp_options(**mdp_options))


for _public, _private in ((distributions, _distributions), (mdps, _mdps), (policies, _policies),
                          (thetas, _thetas), (problems, _problems)):
    _public.__doc__ = _private.__doc__
