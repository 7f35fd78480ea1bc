"""Built-in MDPs, checked against published values and hand-derived closed forms."""
import numpy as np
import pytest

from tabularpg import ValidationError, envs, exact


def test_sutton_barto_example_3_5_equiprobable_values():
    """Sutton & Barto (2018), Example 3.5, Figure 3.2 (values printed to one decimal)."""
    published = np.array([[3.3, 8.8, 4.4, 5.3, 1.5], [1.5, 3.0, 2.3, 1.9, 0.5], [0.1, 0.7, 0.7, 0.4, -0.4],
                          [-1.0, -0.4, -0.4, -0.6, -1.2], [-1.9, -1.3, -1.2, -1.4, -2.0]])
    V, _ = exact.evaluate(envs.sutton_barto_gridworld(), np.full((25, 4), 0.25))
    np.testing.assert_allclose(V.reshape(5, 5), published, atol=0.05 + 1e-12)


def test_two_state_closed_form():
    """Docstring closed form: uniform policy V = r_pi + gamma m with m = 3/4 / (1 - gamma)."""
    for gamma in (0.0, 0.5, 0.9):
        V, Q = exact.evaluate(envs.two_state(gamma=gamma), np.full((2, 2), 0.5))
        m = 0.75 / (1 - gamma)
        np.testing.assert_allclose(V, np.array([0.5, 1.0]) + gamma * m, rtol=1e-13)
        np.testing.assert_allclose(Q, [[1 + gamma * V[0], gamma * V[1]], [2 + gamma * V[1], gamma * V[0]]], rtol=1e-13)


@pytest.mark.parametrize("S,A,b", [(10, 3, 1), (10, 3, 4), (10, 2, 10), (3000, 2, 5)])
def test_garnet_branching_and_determinism(S, A, b):
    m = envs.garnet(S, A, b, rng=7)
    nnz = np.diff(m.P_flat().tocsr().indptr) if m.is_sparse else (m.P > 0).sum(axis=2).ravel()
    assert np.all(nnz == b)
    m2 = envs.garnet(S, A, b, rng=7)
    assert (m.P_flat() != m2.P_flat()).nnz == 0 if m.is_sparse else np.array_equal(m.P, m2.P)
    assert m.is_sparse == (S > 2000)


def test_garnet_sparse_and_dense_are_the_same_mdp():
    d = envs.garnet(40, 3, 4, rng=3, sparse=False)
    s = envs.garnet(40, 3, 4, rng=3, sparse=True)
    np.testing.assert_array_equal(s.P_dense(), d.P)
    pi = np.full((40, 3), 1 / 3)
    assert exact.objective(s, pi) == pytest.approx(exact.objective(d, pi), rel=1e-10)


def test_garnet_successors_uniform():
    """Successor sets are uniform: each state is a successor with probability b/S
    (binomial count over S*A rows, 5 standard errors)."""
    S, A, b = 50, 40, 5
    m = envs.garnet(S, A, b, rng=0)
    counts = (m.P > 0).sum(axis=(0, 1))
    n, p = S * A, b / S
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)))


def test_chain_myopic_versus_optimal():
    from tabularpg import solve

    m = envs.chain(5, slip=0.0, gamma=0.9)
    res = solve.value_iteration(m)
    assert res.pi[0, 0] == 1.0  # walk forward
    assert res.v[4] == pytest.approx(10 / (1 - 0.9), rel=1e-8)


def test_cliff_walking_optimal_return():
    from tabularpg import solve

    m = envs.cliff_walking()
    assert m.n_states == 48 and m.terminal.sum() == 1
    assert m.mu @ solve.policy_iteration(m).v == pytest.approx(-13.0)


def test_bandit():
    m = envs.bandit([1.0, 0.9, 0.1])
    assert exact.objective(m, np.array([[0.2, 0.3, 0.5]])) == pytest.approx(0.2 + 0.27 + 0.05)


def test_make_and_zoo():
    assert envs.make("garnet:S=6,A=2,b=2,seed=3").n_states == 6
    assert envs.make("bandit:means=1;2;3").n_actions == 3
    assert envs.make("cliff_walking:gamma=0.9").gamma == 0.9
    for name, factory in envs.ZOO.items():
        m = factory()
        assert m.n_states >= 1 and m.n_actions >= 1, name


def test_gridworld_teleport():
    """Hand-computed: from the teleport cell every action jumps to the target with its reward."""
    m = envs.gridworld(["S..", "..G"], teleports={(0, 1): ((1, 0), 3.0)})
    assert np.all(m.P[1, :, 3] == 1.0) and np.all(m.r_sa[1] == 3.0)
    assert m.terminal.tolist() == [False] * 5 + [True]


BAD = [
    ("unknown-name", lambda: envs.make("nope"), ValidationError, "unknown MDP 'nope'; valid names: bandit, chain"),
    ("unknown-key", lambda: envs.make("garnet:Q=1"), ValidationError, "bad option 'Q=1' for garnet; valid keys"),
    ("bad-value", lambda: envs.make("chain:S=x"), ValidationError, "bad value for chain option 'S'"),
    ("spec-not-str", lambda: envs.make(3), TypeError, "`spec` must be a string; got int"),
    ("branching>S", lambda: envs.garnet(3, 2, 4), ValidationError, "`branching` must be <= n_states = 3"),
    ("branching<1", lambda: envs.garnet(3, 2, 0), ValidationError, "branching"),
    ("neg-reward-scale", lambda: envs.garnet(3, 2, 2, reward_scale=-1.0), ValidationError, "reward_scale"),
    ("chain-slip>1", lambda: envs.chain(4, slip=1.5), ValidationError, "slip"),
    ("grid-char", lambda: envs.gridworld("S.x"), ValidationError, "unknown cell characters"),
    ("grid-ragged", lambda: envs.gridworld(["S.", "."]), ValidationError, "non-empty rectangle"),
    ("grid-no-start", lambda: envs.gridworld(["..G"]), ValidationError, "start cell 'S'"),
    ("grid-teleport-wall", lambda: envs.gridworld(["S#"], teleports={(0, 0): ((0, 1), 1.0)}),
     ValidationError, r"`teleports` target \(0, 1\) must be a non-wall cell"),
    ("bandit-empty", lambda: envs.bandit([]), ValidationError, "at least one arm"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
