"""Exact solvers: seconds for ``evaluate`` and ``policy_gradient``, against jax.grad.

Dense rows: S in {100, 500, 1000, 2000, 4000}, A = 4, every row of ``P`` drawn from a
Dirichlet(0.1) distribution over all S successors (a dense matrix), gamma = 0.9, normal
rewards. The jax column (only when jax is importable; jax is not a dependency) times
``jax.jit(jax.grad(J))`` in float64 on the same MDP with

    J(theta) = mu^T solve(I - gamma einsum('sat,sa->st', P, softmax(theta)),
                          sum_a softmax(theta) R)

and checks that its gradient agrees with ours. Sparse rows: Garnet S in {1e4, 1e5, 1e6}
(A = 4, branching 5, gamma = 0.9). Central finite differences (2 * S * A objective
evaluations) are timed at the small sizes as the naive baseline.

Every time is the best of ``repeat`` calls after one warm-up call (best-of is the
statistic least disturbed by other processes on a shared machine; jax: best of 5); calls
under 2 ms are timed in batches of about 10 ms.

    PYTHONPATH=. python benchmarks/exact.py            # full table
    PYTHONPATH=. python benchmarks/exact.py --quick    # smaller sizes, FD extrapolated
"""
import argparse
import time

import numpy as np

import tabularpg as tpg
from tabularpg import MDP, envs, exact


def best_time(fn, repeat):
    """Best wall time per call over ``repeat`` measurements, after one warm-up call.

    Calls under 2 ms are timed in batches of about 10 ms (the batch's mean per call), so
    that the clock's resolution and one-off interruptions do not decide a 100-state row;
    jax and tabularpg are timed the same way."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    loops = max(1, int(0.01 / once)) if once < 2e-3 else 1
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - t0) / loops)
    return float(np.min(times))


def dense_dirichlet(S, A, gamma=0.9, alpha=0.1, seed=0):
    """MDP whose every ``P[s, a, :]`` is a Dirichlet(alpha) draw over all S states."""
    rng = np.random.default_rng(seed)
    P = rng.gamma(alpha, size=(S, A, S))
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    return MDP(P, R, np.full(S, 1.0 / S), gamma=gamma)


def jax_gradient(mdp):
    """``jax.jit(jax.grad(J))`` on ``mdp`` (float64), or None without jax."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    P = jnp.asarray(mdp.P)
    R = jnp.asarray(mdp.r_sa)
    mu = jnp.asarray(mdp.mu)
    gamma = mdp.gamma
    eye = jnp.eye(mdp.n_states)

    def J(theta):
        pi = jax.nn.softmax(theta, axis=1)
        M = eye - gamma * jnp.einsum("sat,sa->st", P, pi)
        return mu @ jnp.linalg.solve(M, jnp.sum(pi * R, axis=1))

    g = jax.jit(jax.grad(J))
    return lambda theta: g(theta).block_until_ready()


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


def measure(S, is_sparse, args):
    """One table row: (kind, S, evaluate s, gradient s, jax s or None, FD column)."""
    mdp = envs.garnet(S, 4, 5, gamma=0.9, rng=0, sparse=True) if is_sparse else dense_dirichlet(S, 4)
    pol = tpg.TabularSoftmax(S, 4)
    theta = np.random.default_rng(1).normal(size=pol.theta_shape)
    pi = pol.probs(theta)
    rep = 15 if S <= 500 else (5 if S <= 100_000 else 2)
    t_eval = best_time(lambda: exact.evaluate(mdp, pi), rep)
    t_grad = best_time(lambda: exact.policy_gradient(mdp, pol, theta), rep)
    t_jax = None
    if not is_sparse and not args.no_jax:
        gj = jax_gradient(mdp)
        if gj is not None:
            t_jax = best_time(lambda: gj(theta), 5)
            g_ours = exact.policy_gradient(mdp, pol, theta)
            err = np.max(np.abs(np.asarray(gj(theta)) - g_ours)) / np.max(np.abs(g_ours))
            if err > 1e-8:
                raise SystemExit(f"jax and tabularpg gradients differ at S={S}: rel. {err:.3g}")
    fd = ""
    if not is_sparse and S <= 500 and not args.no_fd:
        t_fd, extrapolated = fd_time(mdp, pol, theta, 200 if args.quick else (4 * S if S <= 100 else 400))
        fd = f"{t_fd:9.2f}{'*' if extrapolated else ' '} {t_fd / t_grad:8.0f}x"
    return ("sparse" if is_sparse else "dense", S, t_eval, t_grad, t_jax, fd)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-jax", action="store_true", help="skip the jax column")
    ap.add_argument("--no-fd", action="store_true", help="skip the finite-difference column")
    args = ap.parse_args(argv)
    dense = [100, 500] if args.quick else [100, 500, 1000, 2000, 4000]
    sparse = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = [measure(S, is_sparse, args)
            for S, is_sparse in [(s, False) for s in dense] + [(s, True) for s in sparse]]
    print(f"{'kind':6} {'S':>7} {'evaluate s':>11} {'gradient s':>11} {'jax.grad s':>11} "
          f"{'grad/eval':>9} {'grad/jax':>8}  {'central FD s':>12} {'FD/grad':>8}")
    for kind, S, te, tg, tj, fd in rows:
        jcol = f"{tj:11.3g}" if tj is not None else f"{'-':>11}"
        rcol = f"{tg / tj:8.2f}" if tj is not None else f"{'-':>8}"
        print(f"{kind:6} {S:7d} {te:11.3g} {tg:11.3g} {jcol} {tg / te:9.2f} {rcol}  {fd}")
    print("dense: Dirichlet(0.1) rows; sparse: Garnet branching 5; A = 4, gamma = 0.9; "
          "best of 2-15 calls after a warm-up (jax: best of 5); * = FD time scaled from a subset")


if __name__ == "__main__":
    main()
