"""Learning curves of the optimizers on one Garnet MDP and the Mei et al. bandit.

Prints, per problem and algorithm, the iterations and seconds to close 99% of the gap
between J(theta_0) and J* (J* from policy iteration), and writes a PNG (J vs iteration,
and log-log sub-optimality) when matplotlib is installed.

    python benchmarks/convergence.py [--plot convergence.png] [--iters 300] [--bandit-iters 10000]

The bandit starts on Mei et al.'s plateau (0.01, 0.05, 0.94): exact softmax PG needs
thousands of iterations there, hence the longer default run.
"""
import argparse
import time

import numpy as np

import tabularpg as tpg
from tabularpg import envs, optim, solve


def problems():
    g = envs.garnet(20, 4, 3, rng=0, gamma=0.9)
    b = envs.bandit([1.0, 0.9, 0.1])
    return {"garnet(20,4,3)": (g, np.zeros((20, 4))),
            "bandit(1,.9,.1) from (.01,.05,.94)": (b, np.log([[0.01, 0.05, 0.94]]))}


def algorithms(mdp, iters):
    gamma = mdp.gamma if mdp.horizon is None else 0.0
    horizon = 60 if mdp.horizon is None else None
    return {
        "exact PG (eta=2/5 bandit, 5 garnet)": lambda p, t: optim.policy_gradient_ascent(
            mdp, p, t, step_size=0.4 if mdp.horizon else 5.0, n_iter=iters),
        "NPG (eta=0.5 in Agarwal units)": lambda p, t: optim.natural_policy_gradient(
            mdp, p, t, step_size=0.5 / (1 - gamma), n_iter=iters, closed_form=mdp.horizon is None),
        "entropy NPG (tau=0.01)": lambda p, t: optim.natural_policy_gradient(
            mdp, p, t, step_size=0.5 / (1 - gamma), n_iter=iters, tau=0.01, closed_form=mdp.horizon is None),
        "TRPO (delta=0.01)": lambda p, t: optim.trpo(mdp, p, t, delta=0.01, n_iter=iters),
        "PPO clip (exact surrogate)": lambda p, t: optim.ppo(mdp, p, t, n_iter=iters, epochs=5,
                                                            lr=0.4 if mdp.horizon else 5.0),
        "REINFORCE rtg (N=50)": lambda p, t: optim.policy_gradient_ascent(
            mdp, p, t, step_size=0.4 if mdp.horizon else 5.0, n_iter=iters, estimator="reward_to_go",
            n_episodes=50, horizon=horizon, rng=0),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", default=None, help="PNG file for the learning curves")
    ap.add_argument("--iters", type=int, default=300, help="iterations on the Garnet")
    ap.add_argument("--bandit-iters", type=int, default=10000, help="iterations on the bandit")
    args = ap.parse_args(argv)
    curves = {}
    print(f"{'problem':36} {'algorithm':38} {'J*':>9} {'final J':>9} {'iters to 99%':>12} {'seconds':>8} "
          f"{'it to .99J*':>11} {'s/iter':>8} {'vs PG':>6}")
    for pname, (mdp, theta0) in problems().items():
        pol = tpg.TabularSoftmax(mdp.n_states, mdp.n_actions)
        res = solve.policy_iteration(mdp)
        j_star = float(mdp.mu @ (res.v if res.v.ndim == 1 else res.v[0]))
        base = None  # seconds per iteration of exact PG, the baseline of this problem
        iters = args.iters if mdp.horizon is None else args.bandit_iters
        for aname, run in algorithms(mdp, iters).items():
            t0 = time.perf_counter()
            r = run(pol, theta0)
            secs = time.perf_counter() - t0
            goal = j_star - 0.01 * (j_star - r.j[0])
            hit = np.flatnonzero(r.j >= goal)
            it = int(hit[0]) if hit.size else None
            t_hit = secs * it / r.n_iter if it is not None else None
            hit_rel = np.flatnonzero(r.j >= 0.99 * j_star)  # the literal '99% of J*' (J* > 0 here)
            per_iter = secs / r.n_iter
            base = per_iter if base is None else base
            print(f"{pname:36} {aname:38} {j_star:9.4f} {r.j[-1]:9.4f} "
                  f"{(str(it) if it is not None else '>' + str(iters)):>12} "
                  f"{(f'{t_hit:.3f}' if t_hit is not None else '-'):>8} "
                  f"{(str(hit_rel[0]) if hit_rel.size else '>' + str(iters)):>11} "
                  f"{per_iter:8.1e} {per_iter / base:6.1f}")
            curves[(pname, aname)] = (r.j, j_star)
    print("iters to 99%: first iterate with J >= J* - 0.01 (J* - J_0) (99% of the gap closed); seconds "
          "pro-rated from the run's total; it to .99J*: first iterate with J >= 0.99 J*; s/iter includes "
          "the exact evaluation of J recorded in the history; vs PG: s/iter relative to exact PG")
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot (pip install 'tabularpg[plot]')")
            return
        names = list(problems())
        fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 8))
        for col, pname in enumerate(names):
            for (p, a), (j, js) in curves.items():
                if p != pname:
                    continue
                axes[0, col].plot(j, label=a)
                gap = np.maximum(js - j, 1e-16)
                axes[1, col].loglog(np.arange(1, j.size + 1), gap, label=a)
            axes[0, col].set_title(pname)
            axes[0, col].set_ylabel("J(theta_t)")
            axes[1, col].set_ylabel("J* - J(theta_t)")
            axes[1, col].set_xlabel("iteration")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
