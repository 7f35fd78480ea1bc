"""Exact solvers: seconds for ``evaluate`` and ``policy_gradient`` on Garnet MDPs.

Dense Garnet S in {100, 500, 2000} and sparse Garnet S in {1e4, 1e5} (A = 4,
branching 5, gamma = 0.9). The gradient shares one LU between V and d, so its time
should stay within ~1.3x of ``evaluate`` on dense MDPs; central finite differences
(2 * S * A objective evaluations) are timed at the small sizes as the baseline.

    python benchmarks/exact.py            # full table
    python benchmarks/exact.py --quick    # smaller sizes, FD extrapolated from a subset
"""
import argparse
import time

import numpy as np

import tabularpg as tpg
from tabularpg import envs, exact


def best_time(fn, repeat):
    """Median wall time over ``repeat`` runs (BLAS threads make single runs noisy)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fd_time(mdp, pol, theta, max_coords):
    """Seconds for a full central-difference gradient; measured on ``max_coords``
    coordinates and scaled to all of them when there are more (marked in the table)."""
    n = pol.n_params
    k = min(n, max_coords)
    h = 1e-5
    flat = theta.ravel()
    t0 = time.perf_counter()
    for i in range(k):
        e = np.zeros(n); e[i] = h
        exact.objective(mdp, pol.probs((flat + e).reshape(theta.shape)))
        exact.objective(mdp, pol.probs((flat - e).reshape(theta.shape)))
    return (time.perf_counter() - t0) * n / k, k < n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    dense = [100, 500] if args.quick else [100, 500, 2000]
    sparse = [10_000] if args.quick else [10_000, 100_000]
    rows = []
    for S, is_sparse in [(s, False) for s in dense] + [(s, True) for s in sparse]:
        mdp = envs.garnet(S, 4, 5, gamma=0.9, rng=0, sparse=is_sparse)
        pol = tpg.TabularSoftmax(S, 4)
        theta = np.random.default_rng(1).normal(size=pol.theta_shape)
        pi = pol.probs(theta)
        rep = 31 if S <= 500 else 7
        t_eval = best_time(lambda: exact.evaluate(mdp, pi), rep)
        t_grad = best_time(lambda: exact.policy_gradient(mdp, pol, theta), rep)
        fd = ""
        if not is_sparse and S <= 500:
            t_fd, extrapolated = fd_time(mdp, pol, theta, 200 if args.quick else (4 * S if S <= 100 else 400))
            fd = f"{t_fd:9.2f}{'*' if extrapolated else ' '} {t_fd / t_grad:8.0f}x"
        rows.append((f"{'sparse' if is_sparse else 'dense'}", S, t_eval, t_grad, t_grad / t_eval, fd))
    print(f"{'kind':6} {'S':>7} {'evaluate s':>11} {'gradient s':>11} {'grad/eval':>9}  {'central FD s':>12} {'FD/grad':>8}")
    for kind, S, te, tg, r, fd in rows:
        print(f"{kind:6} {S:7d} {te:11.4f} {tg:11.4f} {r:9.2f}  {fd}")
    print("A = 4, branching 5, gamma = 0.9; median of 7-31 runs; * = FD time scaled from a subset of coordinates")


if __name__ == "__main__":
    main()
