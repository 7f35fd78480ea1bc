"""Wall time of one sweep: sequential vs 2 joblib processes vs a 2-worker Dask LocalCluster.

Every row must be bit-identical across the three backends (each task's seed depends only on
its content, see ``sweep.cell_seed``): the table shows the sum of the rows' ``checksum`` column and a
SHA-256 of all rows. Start-up (spawning the joblib workers, starting the cluster) is timed
separately from the sweep itself.

    python benchmarks/sweep.py [--quick]
"""
import argparse
import hashlib
import json
import os
import time

import numpy as np

from tabularpg import sweep


def digest(rows):
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batches")
    args = ap.parse_args(argv)
    sizes = [500, 2000] if args.quick else [2000, 8000]
    mdps = ["garnet:S=30,A=4,b=3,seed=0", "cliff_walking:gamma=0.9"]
    ests = ["reinforce", "reward_to_go", "gae", "all_action"]
    tasks = sweep.grid(mdps, ests, sizes, repeats=2, horizon=30)
    out = []  # (backend, start-up seconds, sweep seconds, rows)

    t0 = time.perf_counter()
    rows = sweep.run_sweep(tasks, backend="sequential", seed=0)
    out.append(("sequential", 0.0, time.perf_counter() - t0, rows))

    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(4))  # spawn the loky workers
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = sweep.run_sweep(tasks, backend="joblib", n_jobs=2, seed=0)
    out.append(("joblib, 2 processes", t_start, time.perf_counter() - t0, rows))
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed not installed: skipping the Dask row")
    else:
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            rows = sweep.run_sweep(tasks, backend="dask", client=client, seed=0)
            out.append(("dask LocalCluster, 2 workers", t_start, time.perf_counter() - t0, rows))

    print(f"{len(tasks)} tasks: {len(mdps)} MDPs x {len(ests)} estimators x N in {sizes} x 2 repeats, T = 30; "
          f"{os.cpu_count()} CPUs")
    print(f"{'backend':30} {'start-up s':>10} {'sweep s':>8} {'speed-up':>8} {'sum of checksums':>22} "
          f"{'sha256(rows)':>17}")
    base = out[0][2]
    for name, t_start, secs, rows in out:
        cs = float(np.sum([r["checksum"] for r in rows]))
        print(f"{name:30} {t_start:10.2f} {secs:8.2f} {base / secs:8.2f} {cs!r:>22} {digest(rows):>17}")
    print("bit-identical rows across backends:", len({digest(r) for *_, r in out}) == 1)


if __name__ == "__main__":
    main()
