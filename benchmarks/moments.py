"""Exact second moments: seconds and peak memory of the recursion, and of enumeration.

Rows: ``reward_to_go`` and ``gae`` (exact time-indexed critic) by the backward recursion
(:func:`tabularpg.moments.exact_moments`) on Garnet(20, 4, 3) and Garnet(50, 4, 3) at
H = 100 (tabular softmax), and on Garnet(200, 4, 3) at H = 100 with a linear softmax
policy (d = 8; the recursion carries d-vectors), and on a sparse Garnet(5000, 4, 3) with
the same policy class; then trajectory enumeration
(``method="enumerate"``) on Garnet(20, 4, 3) at the largest horizon it reaches within
its default limit of 200 000 trajectories, with the recursion at the same horizon; and
the exact covariance of the RLOO batch mean (:func:`tabularpg.moments.exact_batch_moments`,
N = 100) at H = 100.
Targets: Garnet(20, 4, 3) H = 100 <= 0.2 s, Garnet(50, 4, 3) H = 100 <= 5 s.

Seconds are the median of ``--repeat`` runs; peak memory is tracemalloc's peak (NumPy
reports its allocations to it) in a separate run. BLAS runs single-threaded unless
``--blas-threads`` says otherwise (set before NumPy loads): the recursion's products
are small, and threaded BLAS loses time on a busy machine.

    python benchmarks/moments.py
    python benchmarks/moments.py --repeat 1 --blas-threads 2
"""
import argparse
import os
import sys
import tracemalloc

from _timing import timings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=1)
    args = ap.parse_args(argv)
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    import numpy as np

    import tabularpg as tpg
    from tabularpg import EnumerationTooLargeError, envs, exact
    from tabularpg.moments import exact_batch_moments, exact_moments

    def measure(fn):
        times = timings(fn, args.repeat)
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return float(np.median(times)), peak / 2**20

    def options(name, mdp, pol, theta, H):
        if name != "gae":
            return {}
        v = exact.analyze(mdp.replace(horizon=H), pol.probs(theta)).v
        return {"critic": np.vstack([v, np.zeros((1, mdp.n_states))]), "lam": 0.95}

    rows = []
    cases = [("Garnet(20,4,3) tabular", envs.garnet(20, 4, 3, gamma=0.99, rng=0), None),
             ("Garnet(50,4,3) tabular", envs.garnet(50, 4, 3, gamma=0.99, rng=0), None),
             ("Garnet(200,4,3) linear d=8", envs.garnet(200, 4, 3, gamma=0.99, rng=0), 8),
             ("Garnet(5000,4,3) sparse, linear d=8", envs.garnet(5000, 4, 3, gamma=0.99, rng=0, sparse=True), 8)]
    for label, mdp, d in cases:
        S, A = mdp.n_states, mdp.n_actions
        rng = np.random.default_rng(1)
        pol = tpg.TabularSoftmax(S, A) if d is None else tpg.LinearSoftmax(rng.normal(size=(S, A, d)))
        theta = rng.normal(size=pol.theta_shape)
        for name in ("reward_to_go", "gae"):
            opts = options(name, mdp, pol, theta, 100)
            sec, mb = measure(lambda m=mdp, p=pol, th=theta, n=name, o=opts: exact_moments(m, p, th, n, 100, **o))
            rows.append((label, name, "recursion", 100, sec, mb))
    for S in (20, 50):
        mdp = envs.garnet(S, 4, 3, gamma=0.99, rng=0)
        pol = tpg.TabularSoftmax(S, 4)
        theta = np.random.default_rng(1).normal(size=(S, 4))
        sec, mb = measure(lambda m=mdp, p=pol, th=theta: exact_batch_moments(
            m, p, th, "reward_to_go", 100, n_episodes=100, baseline="leave_one_out"))
        rows.append((f"Garnet({S},4,3) tabular", "reward_to_go RLOO N=100", "batch recursion", 100, sec, mb))
    mdp = envs.garnet(20, 4, 3, gamma=0.99, rng=0)
    pol = tpg.TabularSoftmax(20, 4)
    theta = np.random.default_rng(1).normal(size=(20, 4))
    for name in ("reward_to_go", "gae"):
        H = 1
        while True:
            try:
                exact_moments(mdp, pol, theta, name, H + 1, method="enumerate", **options(name, mdp, pol, theta, H + 1))
            except EnumerationTooLargeError:
                break
            H += 1
        opts = options(name, mdp, pol, theta, H)
        sec, mb = measure(lambda n=name, h=H, o=opts: exact_moments(mdp, pol, theta, n, h, method="enumerate", **o))
        rows.append(("Garnet(20,4,3) tabular", name, "enumeration (largest H)", H, sec, mb))
        sec, mb = measure(lambda n=name, h=H, o=opts: exact_moments(mdp, pol, theta, n, h, **o))
        rows.append(("Garnet(20,4,3) tabular", name, "recursion", H, sec, mb))
    head = ("MDP / policy", "estimator", "method", "H", "seconds", "peak MB")
    body = [(a, b, c, str(h), f"{s:.4f}", f"{m:.2f}") for a, b, c, h, s, m in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    print(f"# exact second moments; BLAS threads = {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"median of {args.repeat}")
    for r in [head, tuple("-" * w for w in widths)] + body:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
