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

from ..mdp import MDP
from ..policies import LinearSoftmax, TabularSoftmax

__all__ = ["KINDS", "mdps", "policies", "thetas", "problems", "distributions"]

#: MDP kinds understood by :func:`mdps`.
KINDS = ("discounted", "finite", "terminal")


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def distributions(draw, n: int, *, min_prob: float = 0.0, sparsity: bool = True):
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
def mdps(draw, *, min_states: int = 1, max_states: int = 4, min_actions: int = 1,
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
    rows = [draw(distributions(S)) for _ in range(n_total * A)]
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
    mu[:S] = draw(distributions(S))
    use_sparse = draw(st.booleans()) if sparse is None else sparse
    if use_sparse:
        P = sp.csr_matrix(P.reshape(n_total * A, n_total))
    return MDP(P, R, mu, gamma=g, horizon=horizon, terminal=terminal)


@st.composite
def policies(draw, n_states: int, n_actions: int, *, kinds=("tabular", "linear"),
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
def thetas(draw, policy, *, scale: float = 2.0):
    """Parameters of ``policy.theta_shape`` with entries in [-scale, scale]."""
    n = policy.n_params
    x = np.array(draw(st.lists(_floats(-scale, scale), min_size=n, max_size=n)))
    return x.reshape(policy.theta_shape)


@st.composite
def problems(draw, *, policy_kinds=("tabular", "linear"), scale: float = 2.0, **mdp_options):
    """A triple ``(mdp, policy, theta)``; ``mdp_options`` go to :func:`mdps`."""
    mdp = draw(mdps(**mdp_options))
    policy = draw(policies(mdp.n_states, mdp.n_actions, kinds=policy_kinds))
    theta = draw(thetas(policy, scale=scale))
    return mdp, policy, theta
