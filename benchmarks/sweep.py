"""Wall time of one sweep: sequential vs 2 joblib processes vs a 2-worker Dask LocalCluster.

The results' checksum (sum of every task's per-episode estimates) must be identical across
the three: each task's seed depends only on its position in the grid.

    python benchmarks/sweep.py [--quick]
"""
import argparse
import time

import numpy as np

from tabularpg import sweep


def checksum(rows):
    return float(np.sum([r["checksum"] for r in rows]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    sizes = [500, 2000] if args.quick else [2000, 8000]
    tasks = sweep.grid(["garnet:S=30,A=4,b=3,seed=0", "cliff_walking:gamma=0.9"],
                       ["reinforce", "reward_to_go", "gae", "all_action"], sizes, repeats=2, horizon=30)
    out = []
    t0 = time.perf_counter()
    seq = sweep.run_sweep(tasks, backend="sequential", seed=0)
    out.append(("sequential", time.perf_counter() - t0, checksum(seq)))
    t0 = time.perf_counter()
    par = sweep.run_sweep(tasks, backend="processes", n_jobs=2, seed=0)
    out.append(("joblib, 2 processes", time.perf_counter() - t0, checksum(par)))
    try:
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            t_start = time.perf_counter() - t0
            t1 = time.perf_counter()
            dsk = sweep.run_sweep(tasks, backend="dask", client=client, seed=0)
            out.append((f"dask LocalCluster, 2 workers (+{t_start:.1f} s start-up)", time.perf_counter() - t1,
                        checksum(dsk)))
    except ImportError:
        print("dask.distributed not installed: skipping the Dask row")
    print(f"{len(tasks)} tasks (2 MDPs x 4 estimators x {sizes} episodes x 2 repeats, T = 30)")
    print(f"{'backend':48} {'seconds':>8} {'speed-up':>8} {'checksum':>22}")
    for name, secs, cs in out:
        print(f"{name:48} {secs:8.2f} {out[0][1] / secs:8.2f} {cs!r:>22}")
    print("identical checksums:", len({cs for _, _, cs in out}) == 1)


if __name__ == "__main__":
    main()
