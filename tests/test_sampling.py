"""Sampling against exact distributions.

Oracles: exact state marginals ``Pr(s_t = s, alive) = (mu^T P_pi^t)_s`` (with transitions
into terminal states removed), ``pi(a|s)``, the exact objective ``J`` and the geometric
law of the random horizon. Goodness of fit by Pearson's chi-square at p = 1e-6 (false
alarm rate 1e-6 per test); means within 5 standard errors. Seeds are fixed.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import sparse, stats

from tabularpg import MDP, TabularSoftmax, ValidationError, envs, exact
from tabularpg.sampling import alias_table, sample

ALPHA = 1e-6


def chi_square_p(counts, probs):
    """Pearson chi-square p-value of ``counts`` against ``probs`` (cells with p > 0)."""
    counts, probs = np.ravel(counts), np.ravel(probs)
    n = counts.sum()
    keep = probs > 0
    assert counts[~keep].sum() == 0, "observed an impossible outcome"
    e = n * probs[keep] / probs[keep].sum()
    stat = np.sum((counts[keep] - e) ** 2 / e)
    return stats.chi2.sf(stat, keep.sum() - 1)


def small_terminal_mdp():
    rng = np.random.default_rng(0)
    P = rng.random((4, 2, 4))
    P[:, :, 3] += 0.3
    P /= P.sum(-1, keepdims=True)
    mu = np.array([0.5, 0.3, 0.2, 0.0])
    return MDP(P, rng.normal(size=(4, 2, 4)), mu, gamma=1.0, terminal=np.array([0, 0, 0, 1], bool))


def sparse_terminal_mdp():
    """CSR ``P`` whose rows have 1 to 4 successors (padded alias rows), R of shape (S, A, S)."""
    rng = np.random.default_rng(7)
    S, A = 6, 2
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < 0.5)
    P[np.arange(S), 0, np.arange(S)] += 0.1  # no empty row; some rows have a single successor
    P[0, 1] = 0.0
    P[0, 1, 5] = 1.0
    P /= P.sum(-1, keepdims=True)
    mu = np.array([0.3, 0.2, 0.2, 0.2, 0.1, 0.0])
    terminal = np.array([0, 0, 0, 0, 0, 1], bool)
    return MDP(sparse.csr_matrix(P.reshape(S * A, S)), rng.normal(size=(S, A, S)), mu, gamma=0.9,
               terminal=terminal)


def state_marginals(mdp, pi, T):
    P_pi = mdp.transition_matrix(pi)  # transitions into terminal states removed
    out, p = [], mdp.mu.copy()
    for _ in range(T):
        out.append(p)
        p = p @ P_pi
    return np.array(out)


@pytest.mark.parametrize("which", ["garnet", "terminal", "sparse_terminal"])
def test_state_marginals_chi_square(which):
    mdp = {"garnet": lambda: envs.garnet(6, 3, 3, rng=4), "terminal": small_terminal_mdp,
           "sparse_terminal": sparse_terminal_mdp}[which]()
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape)
    N, T = 20000, 6
    b = sample(mdp, pol, theta, N, rng=11, horizon=T)
    marg = state_marginals(mdp, pol.probs(theta), T)
    for t in range(T):
        alive = b.alive[:, t]
        counts = np.bincount(b.states[alive, t], minlength=mdp.n_states)
        # alive count itself is binomial(N, sum marg[t])
        assert abs(alive.sum() - N * marg[t].sum()) <= 5 * np.sqrt(N * marg[t].sum() * (1 - marg[t].sum()) + 1e-12)
        assert chi_square_p(counts, marg[t]) > ALPHA
    # actions given states
    counts = np.zeros((mdp.n_states, mdp.n_actions))
    np.add.at(counts, (b.states[b.alive], b.actions[b.alive]), 1)
    pi = pol.probs(theta)
    for s in range(mdp.n_states):
        if counts[s].sum() > 0:
            assert chi_square_p(counts[s], pi[s]) > ALPHA


def test_chi_square_has_power_against_a_wrong_transition():
    """The same test at the same N rejects a sampler whose transitions are off by one state."""
    mdp = envs.garnet(6, 3, 3, rng=4)
    pol = TabularSoftmax(6, 3)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape)
    wrong = mdp.replace(P=np.roll(mdp.P, 1, axis=2))
    b = sample(wrong, pol, theta, 20000, rng=11, horizon=3)
    marg = state_marginals(mdp, pol.probs(theta), 3)
    counts = np.bincount(b.states[:, 2], minlength=6)
    assert chi_square_p(counts + 0, np.where(marg[2] > 0, marg[2], 1e-12)) < ALPHA


@pytest.mark.parametrize("case", ["finite", "truncated", "terminal_gamma1", "transition_rewards",
                                  "sparse_terminal"])
def test_mean_return_within_5_standard_errors(case):
    if case == "finite":
        mdp = envs.garnet(10, 3, 3, rng=2, horizon=8, gamma=0.95)
        kw = {}
    elif case == "truncated":
        mdp = envs.chain(5, gamma=0.9)
        kw = {"horizon": 25}
    elif case == "terminal_gamma1":
        mdp = small_terminal_mdp()
        kw = {"horizon": 10_000}
    elif case == "sparse_terminal":  # CSR P, R of shape (S, A, S); truncation far beyond termination
        mdp = sparse_terminal_mdp().replace(gamma=1.0)
        kw = {"horizon": 10_000}
    else:
        mdp = small_terminal_mdp().replace(gamma=0.8, terminal=None, mu=np.full(4, 0.25))
        kw = {"horizon": 12}
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta = np.random.default_rng(3).normal(size=pol.theta_shape)
    b = sample(mdp, pol, theta, 40000, rng=5, **kw)
    target = exact.objective(mdp.replace(horizon=kw["horizon"]) if "horizon" in kw and mdp.horizon is None
                             and not mdp.terminal.any() else mdp, pol.probs(theta))
    R = b.returns()
    assert abs(R.mean() - target) <= 5 * R.std(ddof=1) / np.sqrt(R.size)
    if case in ("terminal_gamma1", "sparse_terminal"):
        assert not b.truncated.any() and b.terminated.sum() == b.n_episodes


def test_geometric_horizon():
    """split = T' ~ Geom(1-gamma) and T'' = length - T' - 1 ~ Geom(1-gamma^(1/2)) (chi-square);
    E[Qhat] = (1-gamma) sum_s d(s) V(s) (5 SE), with Qhat = sum_{k>=0} gamma^{k/2} r_{T'+k}
    (Zhang et al. 2020)."""
    mdp = envs.garnet(5, 2, 3, rng=1, gamma=0.8)
    pol = TabularSoftmax(5, 2)
    theta = np.random.default_rng(0).normal(size=pol.theta_shape)
    b = sample(mdp, pol, theta, 60000, rng=2, horizon="geometric")
    g = mdp.gamma
    kmax = 30
    counts = np.bincount(np.minimum(b.split, kmax), minlength=kmax + 1)
    probs = (1 - g) * g ** np.arange(kmax + 1)
    probs[-1] = g ** kmax
    assert chi_square_p(counts, probs) > ALPHA
    t = np.arange(b.width)[None, :]
    w = np.where(t >= b.split[:, None], np.sqrt(g) ** np.clip(t - b.split[:, None], 0, None), 0.0)
    qhat = np.sum(w * b.rewards, axis=1)
    ev = exact.analyze(mdp, pol.probs(theta))
    target = (1 - g) * ev.d @ ev.v
    assert abs(qhat.mean() - target) <= 5 * qhat.std(ddof=1) / np.sqrt(qhat.size)
    assert b.alive[np.arange(b.n_episodes), b.split].all() and not b.terminated.any()
    t2 = b.lengths - b.split - 1
    h = np.sqrt(g)
    probs2 = (1 - h) * h ** np.arange(kmax + 1)
    probs2[-1] = h ** kmax
    assert chi_square_p(np.bincount(np.minimum(t2, kmax), minlength=kmax + 1), probs2) > ALPHA
    # power: the same test rejects T'' drawn with gamma instead of gamma^(1/2)
    wrong = np.random.default_rng(0).geometric(1 - g, size=b.n_episodes) - 1
    assert chi_square_p(np.bincount(np.minimum(wrong, kmax), minlength=kmax + 1), probs2) < ALPHA


def test_alias_table_chi_square():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=3)
    probs[1, 2] = 0.0
    probs[1] /= probs[1].sum()
    tab = alias_table(probs)
    rows = np.repeat(np.arange(3), 50000)
    draws = tab.draw(rows, rng.random(rows.size))
    for r in range(3):
        assert chi_square_p(np.bincount(draws[rows == r], minlength=7), probs[r]) > ALPHA


def _alias_probabilities(tab):
    """Outcome probabilities implied by a table: (q_c + sum_{b: alias_b = c} (1 - q_b)) / K."""
    R, K = tab.q.shape
    p = tab.q / K
    np.add.at(p, (np.repeat(np.arange(R), K), tab.alias.ravel()), ((1 - tab.q) / K).ravel())
    return p


@given(st.integers(1, 9).flatmap(lambda K: st.lists(
    st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 1.0, 2.0, 3.0, 7.0]), min_size=K, max_size=K)
    .filter(lambda r: sum(r) > 0), min_size=1, max_size=6)))
def test_alias_table_is_exact(rows):
    """Oracle: the table's implied distribution equals the input to 1e-12 (zeros, ties, q = 1)."""
    probs = np.array(rows)
    probs /= probs.sum(axis=1, keepdims=True)
    tab = alias_table(probs)
    assert np.all((tab.q >= 0) & (tab.q <= 1))
    assert np.all((tab.alias >= 0) & (tab.alias < probs.shape[1]))
    np.testing.assert_allclose(_alias_probabilities(tab), probs, rtol=0, atol=1e-12)


def test_alias_table_is_exact_on_wide_rows():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(300, 0.2), size=40)
    probs[probs < 1e-3] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_alias_probabilities(alias_table(probs)), probs, rtol=0, atol=1e-12)


def test_batch_invariants_and_reproducibility():
    mdp = small_terminal_mdp()
    pol = TabularSoftmax(4, 2)
    theta = np.zeros((4, 2))
    b = sample(mdp, pol, theta, 500, rng=3, horizon=7)
    b2 = sample(mdp, pol, theta, 500, rng=np.random.default_rng(3), horizon=7)
    for f in ("states", "actions", "rewards", "next_states", "alive", "terminated", "lengths"):
        np.testing.assert_array_equal(getattr(b, f), getattr(b2, f))
    assert np.array_equal(b.alive, np.arange(b.width)[None, :] < b.lengths[:, None])
    assert np.all(b.rewards[~b.alive] == 0) and np.all(b.states[~b.alive] == 0)
    assert np.array_equal(b.terminated.any(axis=1), mdp.terminal[b.next_states[np.arange(500), b.lengths - 1]])
    np.testing.assert_array_equal(b.states[:, 1:][b.alive[:, 1:]], b.next_states[:, :-1][b.alive[:, 1:]])
    assert not np.any(b.truncated & b.terminated.any(axis=1))
    assert np.array_equal(b.truncated, ~b.terminated.any(axis=1))
    fixed = sample(mdp, pol, theta, 10, rng=0, horizon=3, start=2)
    assert np.all(fixed.states[:, 0] == 2)


def test_behavior_log_probs():
    mdp = envs.chain(4)
    pol = TabularSoftmax(4, 2)
    beh = np.tile([0.8, 0.2], (4, 1))
    b = sample(mdp, pol, pol.zeros(), 20000, rng=1, horizon=5, behavior=beh)
    np.testing.assert_allclose(b.behavior_logp, np.where(b.alive, np.log(beh[b.states, b.actions]), 0.0))
    assert chi_square_p(np.bincount(b.actions[b.alive], minlength=2), beh[0]) > ALPHA


M = envs.two_state()
P0 = TabularSoftmax(2, 2)
BAD = [
    ("horizon-missing", {}, ValidationError, "`horizon` is required for an infinite-horizon MDP"),
    ("horizon-string", {"horizon": "forever"}, ValidationError, "`horizon` must be an int, 'geometric' or None"),
    ("n-episodes", {"horizon": 3, "n_episodes": 0}, ValidationError, "`n_episodes` must be >= 1"),
    ("theta-shape", {"horizon": 3, "theta": np.zeros(3)}, ValueError, "`theta` must have shape"),
    ("start-range", {"horizon": 3, "start": 5}, ValidationError, "`start` must lie in [0, 2)"),
    ("behavior", {"horizon": 3, "behavior": np.ones((2, 2))}, ValidationError, "`behavior` row (s=0) sums to 2"),
    ("rng", {"horizon": 3, "rng": None}, TypeError, "`rng` must be a numpy.random.Generator or an int seed"),
    ("horizon-too-long", {"mdp": M.replace(horizon=4), "horizon": 5}, ValidationError,
     "`horizon` must be <= the MDP's horizon 4; got 5"),
    ("start-terminal", {"mdp": M.replace(terminal=np.array([False, True]), gamma=1.0), "horizon": 3, "start": 1},
     ValidationError, "`start` must not be a terminal state"),
    ("start-shape", {"horizon": 3, "start": [0, 1]}, ValidationError, "`start` must be an int or 3 ints"),
    ("behavior-negative", {"horizon": 3, "behavior": np.array([[1.5, -0.5], [0.5, 0.5]])}, ValidationError,
     "`behavior`"),
    ("policy-size", {"policy": TabularSoftmax(3, 2), "horizon": 3}, ValidationError, "`policy` has (S, A) = (3, 2)"),
    ("geometric-finite", {"mdp": M.replace(horizon=4), "horizon": "geometric"}, ValidationError,
     "`horizon`='geometric' is for infinite-horizon MDPs"),
]


@pytest.mark.parametrize("kw,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(kw, exc, match):
    args = {"mdp": M, "policy": P0, "theta": np.zeros((2, 2)), "n_episodes": 3, "rng": 0}
    args.update(kw)
    with pytest.raises(exc, match=match.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        sample(**args)


def test_geometric_refuses_gamma_one_and_finite_horizons():
    with pytest.raises(ValidationError, match="needs gamma < 1"):
        sample(small_terminal_mdp(), TabularSoftmax(4, 2), np.zeros((4, 2)), 3, rng=0, horizon="geometric")
    with pytest.raises(ValidationError, match="is for infinite-horizon MDPs"):
        sample(envs.bandit([1, 2]), TabularSoftmax(1, 2), np.zeros((1, 2)), 3, rng=0, horizon="geometric")
