"""Sampling and estimator throughput.

Transitions per second of ``tabularpg.sampling.sample`` on Garnet(100, 4, 5), T = 100,
for N in {1e3, 1e4, 1e5}, against, in the same run, (a) a plain per-episode Python loop
over the same MDP and (b) Gymnasium's FrozenLake-v1 ``env.step`` loop (if installed).
Also: peak memory per transition (memory linear in N*T) and estimator throughput (steps
per second to turn a batch into a gradient).

    python benchmarks/sampling.py [--quick]
"""
import argparse
import time
import tracemalloc

import numpy as np

import tabularpg as tpg
from tabularpg import envs
from tabularpg.estimators import estimate
from tabularpg.sampling import sample


def python_loop(mdp, pi, n_episodes, T, rng):
    """The baseline a user would write: one episode at a time, one step at a time."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.P_dense()
    n = 0
    for _ in range(n_episodes):
        s = rng.choice(S, p=mdp.mu)
        for _ in range(T):
            a = rng.choice(A, p=pi[s])
            s = rng.choice(S, p=P[s, a])
            n += 1
    return n


def gym_loop(n_steps, seed):
    import gymnasium as gym

    env = gym.make("FrozenLake-v1")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(n_steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return n_steps


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    T = 100
    mdp = envs.garnet(100, 4, 5, rng=0, sparse=False)
    pol = tpg.TabularSoftmax(100, 4)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape)
    pi = pol.probs(theta)
    sizes = [1000, 10000] if args.quick else [1000, 10000, 100000]

    n_loop = 20 if args.quick else 100
    t_loop, _ = best(lambda: python_loop(mdp, pi, n_loop, T, np.random.default_rng(0)), 1)
    loop_rate = n_loop * T / t_loop
    try:
        n_gym = 20000 if args.quick else 100000
        t_gym, _ = best(lambda: gym_loop(n_gym, 0), 1)
        gym_rate = n_gym / t_gym
    except ImportError:
        gym_rate = None

    print(f"Garnet(100, 4, 5), T = {T}; rates in transitions per second")
    print(f"{'method':34} {'N':>7} {'first call s':>12} {'best s':>8} {'rate (best)':>12} "
          f"{'vs loop':>8} {'vs gym':>8} {'peak B/step':>11}")
    print(f"{'python per-episode loop':34} {n_loop:7d} {t_loop:12.3f} {t_loop:8.3f} {loop_rate:12.3g} {1:8.0f}x")
    if gym_rate:
        print(f"{'gymnasium FrozenLake env.step':34} {'':7} {n_gym / gym_rate:12.3f} {n_gym / gym_rate:8.3f} "
              f"{gym_rate:12.3g} {gym_rate / loop_rate:8.1f}x {1:8.0f}x")
    for N in sizes:
        tb, tf = best(lambda: sample(mdp, pol, theta, N, rng=0, horizon=T), 3)
        tracemalloc.start()
        b = sample(mdp, pol, theta, N, rng=0, horizon=T)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rate = N * T / tb
        g = f"{rate / gym_rate:7.0f}x" if gym_rate else ""
        print(f"{'tabularpg.sample':34} {N:7d} {tf:12.3f} {tb:8.3f} {rate:12.3g} {rate / loop_rate:7.0f}x {g:>8} "
              f"{peak / (N * T):11.1f}")
        del b
    print("\nEstimator throughput (batch -> gradient mean), N = 10000, T = 100")
    b = sample(mdp, pol, theta, 10000, rng=0, horizon=T)
    ev = tpg.exact.analyze(mdp.replace(horizon=T), pi)
    print(f"{'estimator':28} {'mean s':>8} {'steps/s':>10} {'samples s':>10}")
    for name, opts in [("reinforce", {}), ("reward_to_go", {}), ("reward_to_go", {"baseline": "leave_one_out"}),
                       ("q", {"critic": ev.q}), ("gae", {"critic": ev.v[0], "lam": 0.95}),
                       ("all_action", {"critic": ev.q})]:
        tm, _ = best(lambda: estimate(b, pol, theta, name, **opts).mean, 2)
        ts, _ = best(lambda: estimate(b, pol, theta, name, **opts).samples, 1)
        label = name + ("+" + str(opts["baseline"]) if "baseline" in opts else "")
        print(f"{label:28} {tm:8.3f} {b.n_steps / tm:10.3g} {ts:10.3f}")


if __name__ == "__main__":
    main()
