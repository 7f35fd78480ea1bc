"""The fused sampler: one alias table for the joint law of (a_t, s_{t+1}) given s_t, one
uniform per transition.

Oracles: the exact cell probabilities of the alias table (no statistics), and Pearson's
chi-square at alpha = 1e-6 on the joint counts of (s_t, a_t, s_{t+1}) against
Pr(s_t = s) pi(a|s) P(s'|s, a), with a power check against a deliberately wrong drawer.
"""
import numpy as np
import pytest
from hypothesis import given
from scipy import sparse, stats

from tabularpg import MDP, TabularSoftmax, ValidationError, envs, sampling
from tabularpg._validation import ArgumentTypeError, ShapeError
from tabularpg.sampling import alias_table, sample
from tabularpg.testing.strategies import problems

ALPHA = 1e-6


def _joint_from_table(tab, S, A):
    """Exact law of (a, s') in each row s of a fused table: (S, A, S)."""
    W = tab.width
    out = np.zeros((S, A, S))
    cells = np.arange(S * W)
    rows = cells // W
    # a cell is drawn with probability q/W itself, and (1 - q)/W through every cell aliasing to it
    np.add.at(out, (rows, tab.action[cells], tab.next_state[cells]), tab.q / W)
    np.add.at(out, (rows, tab.action[tab.alias], tab.next_state[tab.alias]), (1 - tab.q) / W)
    return out


@pytest.mark.parametrize("kind", ["dense", "sparse_ragged"])
def test_fused_table_is_exactly_pi_times_P(kind):
    rng = np.random.default_rng(0)
    S, A = 7, 3
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < (0.5 if kind == "sparse_ragged" else 2))
    P[np.arange(S), 0, np.arange(S)] += 0.2
    P /= P.sum(-1, keepdims=True)
    Pm = sparse.csr_matrix(P.reshape(S * A, S)) if kind == "sparse_ragged" else P
    mdp = MDP(Pm, rng.normal(size=(S, A, S)), np.full(S, 1 / S), gamma=0.9)
    pi = TabularSoftmax(S, A).probs(rng.normal(size=(S, A)) * 2)
    pi[2] = [1.0, 0.0, 0.0]  # a zero-probability action is never drawn
    tab = sampling._step_table(mdp, pi, None)
    np.testing.assert_allclose(_joint_from_table(tab, S, A), pi[:, :, None] * P, rtol=0, atol=1e-14)
    # the reward carried by each cell is R(s, a, s')
    cells = np.arange(tab.q.size)
    np.testing.assert_array_equal(tab.reward, mdp.R[cells // tab.width, tab.action, tab.next_state])


def _joint_counts_p(b, mdp, pi, t):
    """Chi-square p-value of the counts of (s_t, a_t, s_{t+1}) against the exact joint law."""
    S, A = mdp.n_states, mdp.n_actions
    p_s = mdp.mu.copy()
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    for _ in range(t):
        p_s = p_s @ P_pi
    probs = (p_s[:, None, None] * pi[:, :, None] * mdp.P).ravel()
    idx = (b.states[:, t] * A + b.actions[:, t]) * S + b.next_states[:, t]
    counts = np.bincount(idx, minlength=S * A * S)
    keep = probs > 0
    assert counts[~keep].sum() == 0, "an impossible transition was drawn"
    e = counts.sum() * probs[keep]
    return stats.chi2.sf(np.sum((counts[keep] - e) ** 2 / e), keep.sum() - 1)


def test_joint_transition_chi_square_and_power(monkeypatch):
    mdp = envs.garnet(6, 3, 3, rng=4)
    pol = TabularSoftmax(6, 3)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape)
    pi = pol.probs(theta)
    b = sample(mdp, pol, theta, 30000, rng=11, horizon=3)
    for t in range(3):
        assert _joint_counts_p(b, mdp, pi, t) > ALPHA

    # A wrong drawer: the coin reuses the raw uniform instead of its fractional part after
    # scaling (so coin and column are dependent). The same test at the same N rejects it.
    def wrong_cells(self, s, rng):
        tab = self.table
        u = rng.random(s.size)
        k = np.minimum((u * tab.width).astype(tab.alias.dtype), tab.width - 1)
        f = s * tab.width + k
        return np.where(u < tab.q[f], f, tab.alias[f])

    monkeypatch.setattr(sampling._Drawer, "cells", wrong_cells)
    bad = sample(mdp, pol, theta, 30000, rng=11, horizon=3)
    assert _joint_counts_p(bad, mdp, pi, 0) < ALPHA


def test_one_uniform_per_transition_and_reproducible_stream():
    """N uniforms for the starts, then one per alive episode and step (documented stream)."""
    mdp = envs.garnet(5, 2, 2, rng=0)
    pol = TabularSoftmax(5, 2)
    b = sample(mdp, pol, pol.zeros(), 50, rng=3, horizon=4)
    rng = np.random.default_rng(3)
    rng.random(50 + 50 * 4)
    after = rng.random()
    rng2 = np.random.default_rng(3)
    sample(mdp, pol, pol.zeros(), 50, rng=rng2, horizon=4)
    assert rng2.random() == after
    b2 = sample(mdp, pol, pol.zeros(), 50, rng=3, horizon=4)
    for f in ("states", "actions", "rewards", "next_states"):
        np.testing.assert_array_equal(getattr(b, f), getattr(b2, f))


def test_buffers_written_in_place_are_consistent():
    """Fast path (no terminal states): every step written, next state of t is state of t+1."""
    mdp = envs.garnet(8, 3, 2, rng=1)
    pol = TabularSoftmax(8, 3)
    theta = np.random.default_rng(0).normal(size=pol.theta_shape)
    b = sample(mdp, pol, theta, 200, rng=0, horizon=6)
    assert b.alive.all() and not b.terminated.any()
    np.testing.assert_array_equal(b.states[:, 1:], b.next_states[:, :-1])
    np.testing.assert_array_equal(b.rewards, mdp.r_sa[b.states, b.actions])
    assert np.all(mdp.P[b.states, b.actions, b.next_states] > 0)


BAD_ALIAS = [
    ("not-normalized", np.array([[0.5, 0.4]]), None, ValidationError, "`probs` row 0 sums to 0.9"),
    ("negative", np.array([[1.5, -0.5]]), None, ValidationError, "`probs` entry (row=0, column=1)"),
    ("one-dimensional", np.array([0.5, 0.5]), None, ShapeError, "`probs` must have 2 dimensions"),
    ("nan", np.array([[np.nan, 1.0]]), None, ValidationError, "`probs` must be finite"),
    ("values-shape", np.array([[0.5, 0.5]]), np.array([[0, 1, 2]]), ShapeError, "`values` must have the shape"),
    ("values-float", np.array([[0.5, 0.5]]), np.array([[0.0, 1.0]]), ArgumentTypeError,
     "`values` must be an integer array"),
]


@pytest.mark.parametrize("probs,values,exc,match", [r[1:] for r in BAD_ALIAS], ids=[r[0] for r in BAD_ALIAS])
def test_alias_table_refuses_bad_rows(probs, values, exc, match):
    with pytest.raises(exc, match=match.replace("(", r"\(").replace(")", r"\)")):
        alias_table(probs, values)


def test_behavior_policy_of_the_wrong_size_is_refused():
    mdp = envs.two_state()
    pol = TabularSoftmax(2, 2)
    # refused at the boundary (check_problem), as a ShapeError naming `behavior` and both shapes
    with pytest.raises(ShapeError, match=r"`behavior` has \(S, A\) = \(3, 2\); the MDP has \(S, A\) = \(2, 2\)"):
        sample(mdp, pol, pol.zeros(), 3, rng=0, horizon=2, behavior=(TabularSoftmax(3, 2), np.zeros((3, 2))))


def test_column_never_reaches_the_width():
    """The drawer skips a clamp: floor(u * W) <= W - 1 for the largest uniform 1 - 2**-53
    (numpy's ``random`` never returns more), for every width up to 2**16 and a few huge ones."""
    u_max = 1.0 - 2.0**-53
    W = np.concatenate([np.arange(1, 2**16 + 1), [2**31 - 1, 2**40 + 3, 10**15]]).astype(np.float64)
    assert np.all(np.floor(u_max * W) == W - 1)


def test_thresholds_are_column_plus_q():
    mdp = envs.garnet(9, 3, 4, rng=2)
    pi = TabularSoftmax(9, 3).probs(np.random.default_rng(3).normal(size=(9, 3)))
    tab = sampling._step_table(mdp, pi, None)
    col = np.tile(np.arange(tab.width), 9)
    np.testing.assert_allclose(tab.threshold - col, tab.q, rtol=0, atol=tab.width * 2.0**-52)


@given(problems(sparse=None, reward_transitions=None))
def test_fused_table_property(problem):
    """For every MDP and policy the fused table is exactly the law pi(a|s) P(s'|s, a), and
    each cell carries the reward R(s, a, s') (or r(s, a)) of its outcome."""
    mdp, policy, theta = problem
    S, A = mdp.n_states, mdp.n_actions
    pi = policy.probs(theta)
    tab = sampling._step_table(mdp, pi, None)
    P = mdp.P_dense()
    np.testing.assert_allclose(_joint_from_table(tab, S, A), pi[:, :, None] * P, rtol=0, atol=1e-13)
    cells = np.arange(tab.q.size)
    s = cells // tab.width
    want = mdp.R[s, tab.action, tab.next_state] if mdp.R.ndim == 3 else mdp.r_sa[s, tab.action]
    np.testing.assert_array_equal(tab.reward, want)
