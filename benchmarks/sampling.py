"""Sampling and estimator throughput.

Transitions per second of ``tabularpg.sampling.sample`` on Garnet(100, 4, 5), T = 100,
for N in {1e3, 1e4, 1e5}, against, in the same run, (a) a plain per-episode Python loop
over the same MDP, (b) Gymnasium's FrozenLake-v1 ``env.step`` loop and (c) Gymnasium's
own vectorized form of it, ``gymnasium.vector.SyncVectorEnv`` over 64 FrozenLake-v1
copies with autoreset (FrozenLake has no native vector implementation, so the
synchronous vector env is the fastest vector form Gymnasium offers for it); (b) and (c)
only if Gymnasium is installed.
Also: peak memory per transition (memory linear in N*T), the rate by process CPU time
(on a machine shared with other jobs it approximates a quiet machine's wall-clock rate),
and estimator throughput (steps per second to turn a batch into a gradient).

    python benchmarks/sampling.py [--quick]
"""
import argparse
import time
import tracemalloc

import numpy as np
from _timing import timings

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


def gym_vector_loop(n_steps, n_envs, seed):
    """``n_steps`` transitions of ``SyncVectorEnv`` over ``n_envs`` FrozenLake-v1 copies."""
    import gymnasium as gym

    envs_ = gym.vector.SyncVectorEnv([lambda: gym.make("FrozenLake-v1") for _ in range(n_envs)])
    envs_.reset(seed=seed)
    envs_.action_space.seed(seed)
    for _ in range(n_steps // n_envs):
        envs_.step(envs_.action_space.sample())
    envs_.close()
    return (n_steps // n_envs) * n_envs


def best(fn, repeat):
    times = timings(fn, repeat)
    return min(times), times[0]


def best_cpu(fn, repeat):
    """Best process CPU time: on a shared machine it approximates the wall time of a quiet one."""
    return min(timings(fn, repeat, time.process_time))


def print_table(title, columns, rows):
    """Print ``rows`` (tuples of already formatted cells) under ``columns``.

    ``columns`` is a list of ``(name, width)``; the first column is left-aligned, the
    others right-aligned. Reused by the estimator-throughput section.
    """
    print(f"\n{title}")
    fmt = lambda cells: " ".join(
        f"{c!s:{'<' if i == 0 else '>'}{w}}" for i, (c, (_, w)) in enumerate(zip(cells, columns)))
    print(fmt([name for name, _ in columns]))
    for row in rows:
        print(fmt(row))


def sampling_rows(mdp, pol, theta, T, sizes, loop_rate, gym_rate, vec_rate, label):
    """Timing and peak-memory rows of ``sample`` for each N in ``sizes``."""
    rows = []
    for N in sizes:
        tb, tf = best(lambda N=N: sample(mdp, pol, theta, N, rng=0, horizon=T), 3)
        cpu = best_cpu(lambda N=N: sample(mdp, pol, theta, N, rng=0, horizon=T), 3)
        tracemalloc.start()
        b = sample(mdp, pol, theta, N, rng=0, horizon=T)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del b
        rate = N * T / tb
        rows.append((label, N, f"{tf:.3f}", f"{tb:.3f}", f"{rate:.3g}", f"{rate / loop_rate:.0f}x",
                     f"{rate / gym_rate:.0f}x" if gym_rate else "", f"{rate / vec_rate:.0f}x" if vec_rate else "",
                     f"{peak / (N * T):.1f}", f"{N * T / cpu:.3g}"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller N, fewer baseline steps")
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
        n_vec = 20480 if args.quick else 102400
        t_vec, _ = best(lambda: gym_vector_loop(n_vec, 64, 0), 1)
        vec_rate = n_vec / t_vec
    except ImportError:
        gym_rate = vec_rate = None

    columns = [("method", 34), ("N", 7), ("first call s", 12), ("best s", 8), ("rate (best)", 12),
               ("vs loop", 8), ("vs gym", 8), ("vs vec", 8), ("peak B/step", 11),
               ("rate (CPU)", 10)]
    rows = [("python per-episode loop", n_loop, f"{t_loop:.3f}", f"{t_loop:.3f}", f"{loop_rate:.3g}", "1x", "", "",
             "")]
    if gym_rate:
        rows.append(("gymnasium FrozenLake env.step", "", f"{n_gym / gym_rate:.3f}", f"{n_gym / gym_rate:.3f}",
                     f"{gym_rate:.3g}", f"{gym_rate / loop_rate:.1f}x", "1x", "", ""))
        rows.append(("gymnasium SyncVectorEnv x64", 64, f"{n_vec / vec_rate:.3f}", f"{n_vec / vec_rate:.3f}",
                     f"{vec_rate:.3g}", f"{vec_rate / loop_rate:.1f}x", f"{vec_rate / gym_rate:.1f}x", "1x", ""))
    rows += sampling_rows(mdp, pol, theta, T, sizes, loop_rate, gym_rate, vec_rate, "tabularpg.sample (dense P)")
    sparse_mdp = envs.garnet(100, 4, 5, rng=0, sparse=True)
    rows += sampling_rows(sparse_mdp, pol, theta, T, sizes[-1:], loop_rate, gym_rate, vec_rate,
                          "tabularpg.sample (CSR P)")
    print_table(f"Garnet(100, 4, 5), T = {T}; rates in transitions per second "
                "(peak B/step: tracemalloc peak / (N T))", columns, rows)

    b = sample(mdp, pol, theta, 10000, rng=0, horizon=T)
    ev = tpg.exact.analyze(mdp.replace(horizon=T), pi)
    rows = []
    for name, opts in [("reinforce", {}), ("reward_to_go", {}), ("reward_to_go", {"baseline": "leave_one_out"}),
                       ("q", {"critic": ev.q}), ("gae", {"critic": ev.v[0], "lam": 0.95}),
                       ("all_action", {"critic": ev.q})]:
        tm, _ = best(lambda name=name, opts=opts: estimate(b, pol, theta, name, **opts).mean, 2)
        ts, _ = best(lambda name=name, opts=opts: estimate(b, pol, theta, name, **opts).samples, 1)
        label = name + ("+" + str(opts["baseline"]) if "baseline" in opts else "")
        rows.append((label, f"{tm:.3f}", f"{b.n_steps / tm:.3g}", f"{ts:.3f}"))
    print_table(f"Estimator throughput (batch -> gradient mean), N = 10000, T = {T}",
                [("estimator", 28), ("mean s", 8), ("steps/s", 10), ("samples s", 10)], rows)


if __name__ == "__main__":
    main()
