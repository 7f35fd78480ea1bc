"""Gymnasium and pymdptoolbox interop.

Oracle for the Gymnasium conversion: the Monte Carlo mean return of a fixed stochastic
policy run through Gymnasium's own ``env.step`` (with its TimeLimit), compared with the
exact ``J`` of the converted MDP within 5 standard errors (fixed seeds). A deliberately
wrong conversion (FrozenLake read without its slipperiness) is rejected at the same N.
"""
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from tabularpg import TabularSoftmax, envs, exact, solve  # noqa: E402
from tabularpg.interop import (GymnasiumConversionError, from_gymnasium, from_mdptoolbox,  # noqa: E402
                               to_gymnasium, to_mdptoolbox)


def gym_returns(env, pi, gamma, n_episodes, seed):
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
    return TabularSoftmax(mdp.n_states, mdp.n_actions).probs(np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions)))


@pytest.mark.parametrize("env_id,gamma,n", [("FrozenLake-v1", 0.95, 3000), ("CliffWalking-v1", 0.9, 1500)])
def test_exact_objective_matches_gymnasium_rollouts(env_id, gamma, n):
    env = gym.make(env_id, max_episode_steps=100)
    mdp = from_gymnasium(env, gamma=gamma)
    assert mdp.horizon == 100
    # mostly the optimal first-step action, 30% uniform exploration
    pi = 0.7 * solve.value_iteration(mdp).pi[0] + 0.3 / mdp.n_actions
    R = gym_returns(env, pi, gamma, n, seed=1)
    se = R.std(ddof=1) / np.sqrt(n)
    assert abs(R.mean() - exact.objective(mdp, pi)) <= 5 * se
    if env_id == "FrozenLake-v1":  # power: ignoring slipperiness is caught at the same N
        wrong = from_gymnasium(gym.make(env_id, is_slippery=False, max_episode_steps=100), gamma=gamma)
        assert abs(R.mean() - exact.objective(wrong, pi)) > 5 * se


def test_frozenlake_structure():
    mdp = from_gymnasium(gym.make("FrozenLake-v1"), gamma=0.99)
    assert mdp.n_states == 16 and mdp.n_actions == 4
    np.testing.assert_array_equal(np.flatnonzero(mdp.terminal), [5, 7, 11, 12, 15])
    # slippery: from state 14 "right" reaches the goal with probability 1/3 and reward 1
    assert mdp.P[14, 2, 15] == pytest.approx(1 / 3) and mdp.R[14, 2, 15] == 1.0


def test_taxi_converts_and_fickle_taxi_is_refused():
    mdp = from_gymnasium(gym.make("Taxi-v4"), gamma=0.95)
    assert mdp.n_states == 500 and mdp.n_actions == 6 and mdp.terminal.sum() == 4 and mdp.horizon == 200
    v = solve.value_iteration(mdp).v
    assert mdp.mu @ v[0] > 0  # an optimal taxi earns +20 before the time limit on average
    with pytest.raises(GymnasiumConversionError, match="fickle_passenger=True"):
        from_gymnasium(gym.make("Taxi-v4", fickle_passenger=True))


def test_env_without_model_is_refused():
    with pytest.raises(GymnasiumConversionError, match="has no `P` table"):
        from_gymnasium(gym.make("CartPole-v1"))


def test_to_gymnasium_passes_the_env_checker_and_samples_the_mdp():
    from gymnasium.utils.env_checker import check_env

    mdp = envs.chain(4, gamma=0.9, horizon=20)
    env = to_gymnasium(mdp)
    check_env(env, skip_render_check=True)
    pi = policy_for(mdp, 2)
    R = gym_returns(env, pi, 0.9, 4000, seed=3)
    assert abs(R.mean() - exact.objective(mdp, pi)) <= 5 * R.std(ddof=1) / np.sqrt(R.size)
    g = from_gymnasium(gym.make("FrozenLake-v1"), gamma=0.9)
    env2 = to_gymnasium(g)
    R2 = gym_returns(env2, policy_for(g, 4), 0.9, 3000, seed=5)
    assert abs(R2.mean() - exact.objective(g, policy_for(g, 4))) <= 5 * R2.std(ddof=1) / np.sqrt(R2.size)


def test_mdptoolbox_layout_round_trip():
    mdp = envs.garnet(5, 3, 2, rng=0)
    P, R = to_mdptoolbox(mdp)
    assert P.shape == (3, 5, 5) and R.shape == (5, 3)
    back = from_mdptoolbox(P, R, mdp.mu, gamma=mdp.gamma)
    np.testing.assert_array_equal(back.P, mdp.P)


def test_against_pymdptoolbox():
    mdptoolbox = pytest.importorskip("mdptoolbox.mdp")
    mdp = envs.garnet(12, 3, 3, rng=4, gamma=0.9)
    P, R = to_mdptoolbox(mdp)
    pi_ = mdptoolbox.PolicyIteration(P, R, 0.9)
    pi_.run()
    ours = solve.policy_iteration(mdp)
    np.testing.assert_allclose(np.array(pi_.V), ours.v, atol=1e-8)
    assert tuple(pi_.policy) == tuple(ours.pi.argmax(axis=1))
    vi = mdptoolbox.ValueIteration(P, R, 0.9, epsilon=1e-8)
    vi.run()
    assert tuple(vi.policy) == tuple(ours.pi.argmax(axis=1))
