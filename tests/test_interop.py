"""Gymnasium and pymdptoolbox interop.

Oracles:
* Gymnasium conversion: the Monte Carlo mean return of a fixed stochastic policy run
  through Gymnasium's own ``env.step`` (with its TimeLimit) against the exact ``J`` of the
  converted MDP, within 5 standard errors (fixed seeds). Power: at the same N the same
  test rejects two deliberately wrong conversions (FrozenLake read without its
  slipperiness; CliffWalking with its terminal state's own rows treated as ordinary).
* ``to_gymnasium``: Gymnasium's ``check_env``, the same Monte Carlo test, and the exact
  round trip ``from_gymnasium(to_gymnasium(m)) == m``.
* pymdptoolbox: its PolicyIteration / ValueIteration against ``tabularpg.solve``.
"""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse

gym = pytest.importorskip("gymnasium")

from tabularpg import MDP, TabularSoftmax, envs, exact
from tabularpg.interop import (
    GymnasiumConversionError,
    from_gymnasium,
    from_mdptoolbox,
    to_gymnasium,
    to_mdptoolbox,
)

TAXI = "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"  # Gymnasium 1.4 renamed Taxi-v3


def gym_returns(env, pi, gamma, n_episodes, seed):
    """Discounted returns of ``pi`` (S, A) through ``env.reset``/``env.step`` (a plain loop)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_episodes)
    for i in range(n_episodes):
        s, _ = env.reset(seed=int(rng.integers(2**31)))
        ret, disc, done = 0.0, 1.0, False
        while not done:
            a = int(rng.choice(pi.shape[1], p=pi[s]))
            s, r, term, trunc, _ = env.step(a)
            ret += disc * r
            disc *= gamma
            done = term or trunc
        out[i] = ret
    return out


def policy_for(mdp, seed):
    rng = np.random.default_rng(seed)
    return TabularSoftmax(mdp.n_states, mdp.n_actions).probs(rng.normal(size=(mdp.n_states, mdp.n_actions)))


def naive_conversion(env, gamma, horizon):
    """Deliberately wrong: sums duplicates but ignores ``terminated`` (terminal rows kept)."""
    u = env.unwrapped
    S, A = len(u.P), len(u.P[0])
    P, Rn = np.zeros((S, A, S)), np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            for p, s2, r, _ in u.P[s][a]:
                P[s, a, s2] += p
                Rn[s, a, s2] += p * r
    return MDP(P, np.divide(Rn, P, out=np.zeros_like(Rn), where=P > 0), u.initial_state_distrib,
               gamma=gamma, horizon=horizon)


def _near_greedy(mdp):
    from tabularpg import solve

    return 0.7 * solve.value_iteration(mdp).pi[0] + 0.3 / mdp.n_actions  # fixed, stochastic


@pytest.mark.parametrize("env_id,gamma,n", [("FrozenLake-v1", 0.95, 3000), ("CliffWalking-v1", 0.99, 1500)])
def test_exact_objective_matches_gymnasium_rollouts(env_id, gamma, n):
    env = gym.make(env_id, max_episode_steps=100)
    mdp = from_gymnasium(env, gamma=gamma)
    assert mdp.horizon == 100
    pi = _near_greedy(mdp)
    R = gym_returns(env, pi, gamma, n, seed=1)
    se = R.std(ddof=1) / np.sqrt(n)
    assert abs(R.mean() - exact.objective(mdp, pi)) <= 5 * se
    # power, at the same N and threshold (measured: |z| ~ 20 and ~ 60)
    if env_id == "FrozenLake-v1":
        wrong = from_gymnasium(gym.make(env_id, is_slippery=False, max_episode_steps=100), gamma=gamma)
    else:
        wrong = naive_conversion(env, gamma, 100)
    assert abs(R.mean() - exact.objective(wrong, pi)) > 5 * se


def test_frozenlake_structure():
    mdp = from_gymnasium(gym.make("FrozenLake-v1"), gamma=0.99)
    assert mdp.n_states == 16 and mdp.n_actions == 4
    np.testing.assert_array_equal(np.flatnonzero(mdp.terminal), [5, 7, 11, 12, 15])
    # slippery: from state 14 "right" reaches the goal with probability 1/3 and reward 1
    assert mdp.P[14, 2, 15] == pytest.approx(1 / 3) and mdp.R[14, 2, 15] == 1.0
    # Gymnasium lists three 1/3 entries per action; "left" in the corner 0 lists 0 twice
    assert [e[1] for e in gym.make("FrozenLake-v1").unwrapped.P[0][0]] == [0, 0, 4]
    assert mdp.P[0, 0, 0] == pytest.approx(2 / 3)


def test_cliffwalking_terminal_rows_are_ignored():
    env = gym.make("CliffWalking-v1")
    mdp = from_gymnasium(env, gamma=0.9)
    assert np.flatnonzero(mdp.terminal).tolist() == [47]  # the goal; the cliff resets to the start
    assert env.unwrapped.P[47][0][0][1] != 47  # Gymnasium lists an ordinary move out of the goal
    assert mdp.P[47, :, 47].tolist() == [1.0] * 4 and not mdp.R[47].any()
    assert mdp.R[36, 1, 36] == -100  # "right" from the start steps into the cliff: -100, back to 36


def test_taxi_converts_and_fickle_taxi_is_refused():
    from tabularpg import solve

    env = gym.make(TAXI)
    mdp = from_gymnasium(env, gamma=0.95)
    assert mdp.n_states == 500 and mdp.n_actions == 6 and mdp.horizon == 200
    # terminal: taxi at one of the 4 landmarks with the passenger delivered there
    assert mdp.terminal.sum() == 4
    assert np.all(np.isin(mdp.P[~mdp.terminal], [0.0, 1.0]))  # deterministic dynamics
    assert set(np.unique(mdp.r_sa)) <= {-1.0, -10.0, 20.0, 0.0}
    assert mdp.mu @ solve.value_iteration(mdp).v[0] > 0  # an optimal taxi delivers before the limit
    with pytest.raises(GymnasiumConversionError, match="fickle_passenger=True"):
        from_gymnasium(gym.make(TAXI, fickle_passenger=True))


def test_env_without_model_is_refused():
    with pytest.raises(GymnasiumConversionError, match="has no `P` table"):
        from_gymnasium(gym.make("CartPole-v1"))


class _TableEnv:
    """A minimal object with a toy-text ``P`` table (no Gymnasium involved)."""

    def __init__(self, P, isd):
        self.P, self.isd = P, isd


def test_mixed_termination_is_refused():
    # state 2 is entered with terminated=True from 0 and with terminated=False from 1
    P = {0: {0: [(1.0, 2, 1.0, True)], 1: [(1.0, 1, 0.0, False)]},
         1: {0: [(1.0, 2, 0.0, False)], 1: [(1.0, 0, 0.0, False)]},
         2: {0: [(1.0, 2, 0.0, False)], 1: [(1.0, 2, 0.0, False)]}}
    with pytest.raises(GymnasiumConversionError, match=r"states \[2\] are entered both"):
        from_gymnasium(_TableEnv(P, np.array([1.0, 0, 0])))
    # the same table where 1 is unreachable converts (Taxi's situation)
    P[0][1] = [(1.0, 0, 0.0, False)]
    assert from_gymnasium(_TableEnv(P, np.array([1.0, 0, 0]))).terminal.tolist() == [False, False, True]
    P[0][0] = [(0.5, 2, 1.0, True), (0.5, 2, 1.0, False)]
    with pytest.raises(GymnasiumConversionError, match="both with terminated=True and with False"):
        from_gymnasium(_TableEnv(P, np.array([1.0, 0, 0])))


def test_random_rewards_are_replaced_by_their_conditional_mean():
    # (0, 0, 1) listed twice with rewards 1 and 3: R = (0.2*1 + 0.2*3) / 0.4 = 2
    P = {0: {0: [(0.2, 1, 1.0, False), (0.2, 1, 3.0, False), (0.6, 0, 0.0, False)]},
         1: {0: [(1.0, 0, 5.0, False)]}}
    with pytest.warns(UserWarning, match="conditional mean"):
        mdp = from_gymnasium(_TableEnv(P, np.array([1.0, 0.0])), gamma=0.5, horizon=None)
    assert mdp.R[0, 0, 1] == pytest.approx(2.0) and mdp.r_sa[0, 0] == pytest.approx(0.8)
    # J by hand: V0 = 0.8 + 0.5 (0.4 V1 + 0.6 V0), V1 = 5 + 0.5 V0
    v0 = np.linalg.solve([[1 - 0.3 - 0.1, 0], [0, 1]], [0.8 + 0.2 * 5, 0])[0]
    assert exact.objective(mdp, np.ones((2, 1))) == pytest.approx(v0)


def test_malformed_tables_are_refused():
    with pytest.raises(GymnasiumConversionError, match="neither `initial_state_distrib` nor `isd`"):
        from_gymnasium(type("E", (), {"P": {0: {0: [(1.0, 0, 0.0, False)]}}})())
    with pytest.raises(GymnasiumConversionError, match=r"sum to 0.9"):
        from_gymnasium(_TableEnv({0: {0: [(0.9, 0, 0.0, False)]}}, np.array([1.0])))
    with pytest.raises(ValueError, match="`horizon` must be 'auto'"):
        from_gymnasium(gym.make("FrozenLake-v1"), horizon="inf")


def test_to_gymnasium_passes_the_env_checker_and_samples_the_mdp():
    from gymnasium.utils.env_checker import check_env

    mdp = envs.chain(4, gamma=0.9, horizon=20)
    env = to_gymnasium(mdp, seed=0)
    check_env(env, skip_render_check=True)
    pi = policy_for(mdp, 2)
    R = gym_returns(env, pi, 0.9, 4000, seed=3)
    assert abs(R.mean() - exact.objective(mdp, pi)) <= 5 * R.std(ddof=1) / np.sqrt(R.size)
    # truncation at the horizon, termination at terminal states
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(20)]
    assert flags == [False] * 19 + [True]


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", TAXI])
def test_round_trip_through_gymnasium(env_id):
    mdp = from_gymnasium(gym.make(env_id), gamma=0.9)
    env = to_gymnasium(mdp, seed=1)
    back = from_gymnasium(env, gamma=0.9)
    for name in ("P", "R", "mu", "terminal"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mdp, name))
    assert back.horizon == mdp.horizon
    if env_id == "FrozenLake-v1":  # and the env samples it (Monte Carlo, 5 standard errors)
        pi = policy_for(mdp, 4)
        R = gym_returns(env, pi, 0.9, 3000, seed=5)
        assert abs(R.mean() - exact.objective(mdp, pi)) <= 5 * R.std(ddof=1) / np.sqrt(R.size)


def test_to_gymnasium_seed_and_sparse():
    mdp = envs.garnet(30, 3, 2, rng=0)
    sparse = mdp.replace(P=scipy.sparse.csr_matrix(mdp.P_flat()))
    a, b = to_gymnasium(mdp, seed=7), to_gymnasium(sparse, seed=7)
    ta, tb = [a.reset()[0]], [b.reset()[0]]
    for act in [0, 1, 2, 1, 0, 2, 2, 1]:
        ta.append(a.step(act)[:2])
        tb.append(b.step(act)[:2])
    assert ta == tb
    assert from_gymnasium(b, gamma=mdp.gamma, horizon=None).r_sa == pytest.approx(mdp.r_sa)


def test_core_never_imports_gymnasium():
    code = ("import sys, tabularpg, tabularpg.interop, tabularpg.sweep; "
            "print(sorted(m for m in ('gymnasium', 'dask', 'joblib', 'pandas', 'mdptoolbox') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_gymnasium_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"tabularpg\[gym\]"):
        to_gymnasium(envs.chain(3))


def test_mdptoolbox_layout_round_trip():
    mdp = envs.garnet(5, 3, 2, rng=0)
    P, R = to_mdptoolbox(mdp)
    assert P.shape == (3, 5, 5) and R.shape == (5, 3)
    np.testing.assert_array_equal(P[1], mdp.P[:, 1, :])
    back = from_mdptoolbox(P, R, mdp.mu, gamma=mdp.gamma)
    np.testing.assert_array_equal(back.P, mdp.P)
    np.testing.assert_array_equal(back.r_sa, mdp.r_sa)
    # a list of A sparse matrices and R of shape (S,) are accepted too
    back2 = from_mdptoolbox([scipy.sparse.csr_matrix(p) for p in P], R[:, 0], gamma=0.5)
    np.testing.assert_array_equal(back2.P, mdp.P)
    assert back2.gamma == 0.5 and back2.mu == pytest.approx(np.full(5, 0.2))


def test_against_pymdptoolbox():
    mdptoolbox = pytest.importorskip("mdptoolbox.mdp")
    solve = pytest.importorskip("tabularpg.solve")
    mdp = envs.garnet(12, 3, 3, rng=4, gamma=0.9)
    P, R = to_mdptoolbox(mdp)
    pi_ = mdptoolbox.PolicyIteration(P, R, 0.9)
    pi_.run()
    ours = solve.policy_iteration(mdp)
    np.testing.assert_allclose(np.array(pi_.V), ours.v, atol=1e-8)
    assert tuple(pi_.policy) == tuple(ours.pi.argmax(axis=1))
    vi = mdptoolbox.ValueIteration(P, R, 0.9, epsilon=1e-8)
    vi.run()
    ours_vi = solve.value_iteration(mdp)
    assert tuple(vi.policy) == tuple(ours_vi.pi.argmax(axis=1))
    # pymdptoolbox stops on the span of V_{n+1} - V_n, so its V is V* up to a near-constant shift
    assert np.ptp(ours_vi.v - np.array(vi.V)) < 1e-7
