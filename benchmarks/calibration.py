"""False-alarm rate and power of the statistical assertions on real estimators.

For each law of :func:`tabularpg.testing._calibration.calibration_laws` (reinforce,
reward_to_go and gae on a Garnet and on a gamma = 1 problem with a terminal state; exact
per-episode laws by trajectory enumeration, exact targets from
``tabularpg.estimators.expected``), each N in {100, 400, 3000} and each assertion:

* false-alarm rate: the fraction of ``--sets`` null data sets (N i.i.d. draws from the
  law, tested against its exact mean / covariance) whose p-value is below alpha, for
  alpha in {0.01, 0.05};
* power: the fraction of ``--power-sets`` data sets rejected at alpha = 0.01 when the
  claim is wrong: the target shifted by 0.2 standard deviations of one episode along the
  leading eigenvector of the covariance (mean tests), or the claimed covariance 1.25x the
  truth (variance and covariance tests; for ``alternative="greater"`` the truth is 1.25x
  the claim).

Run from the repository root::

    python benchmarks/calibration.py            # 2000 null sets, 500 power sets (minutes)
    python benchmarks/calibration.py --quick    # 200 / 100 sets
    python benchmarks/calibration.py --only Hotelling   # one assertion
    python benchmarks/calibration.py --deep     # p below 1e-3 / 1e-4 / 1e-6, 4000 sets per cell

and it prints a Markdown table (the one in docs/calibration.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tabularpg.testing._calibration import calibration_laws
from tabularpg.testing.assertions import covariance_test, unbiased_test, variance_test

TESTS = {
    "unbiased (exact cov)": lambda X, mu, C: unbiased_test(X, mu, cov=C, alpha=0.5).p_value,
    "unbiased (Hotelling)": lambda X, mu, C: unbiased_test(X, mu, alpha=0.5).p_value,
    "variance": lambda X, mu, C: variance_test(X, C, alpha=0.5).p_value,
    "variance (greater)": lambda X, mu, C: variance_test(X, C, alpha=0.5, alternative="greater").p_value,
    "covariance": lambda X, mu, C: covariance_test(X, C, alpha=0.5).p_value,
}
ALPHAS = (0.01, 0.05)
NS = (100, 400, 3000)


def run_law(k, n_sets, n_power, seed, tests=tuple(TESTS)):
    law = calibration_laws()[k]
    w, U = np.linalg.eigh(law.cov)
    shift = 0.2 * np.sqrt(w[-1]) * U[:, -1]
    rows = []
    for N in NS:
        rng = np.random.default_rng([seed, k, N])
        chosen = {t: TESTS[t] for t in tests}
        null = {t: np.empty(n_sets) for t in chosen}
        power = {t: np.empty(n_power) for t in chosen}
        t0 = time.perf_counter()
        for s in range(n_sets):
            X = law.draw(N, rng)
            for t, f in chosen.items():
                null[t][s] = f(X, law.target, law.cov)
            if s < n_power:
                for t, f in chosen.items():
                    if t.startswith("unbiased"):
                        power[t][s] = f(X, law.target + shift, law.cov)
                    elif t.endswith("(greater)"):  # the variance is 25% above the claim
                        power[t][s] = f(X, law.target, law.cov / 1.25)
                    else:
                        power[t][s] = f(X, law.target, 1.25 * law.cov)
        for t in chosen:
            rows.append({"law": law.name, "kurtosis": law.kurtosis, "test": t, "N": N,
                         **{f"fa{a}": float(np.mean(null[t] < a)) for a in ALPHAS},
                         "power": float(np.mean(power[t] < 0.01)), "seconds": time.perf_counter() - t0})
    return rows


DEEP_ALPHAS = (1e-3, 1e-4, 1e-6)
DEEP_COLUMNS = ("unbiased (exact cov)", "unbiased (Hotelling)", "variance (greater)", "variance", "covariance")


def run_deep(k, n_sets, seed):
    """Deep-tail rows for law ``k``: counts of null sets with p below 1e-3 / 1e-4 / 1e-6,
    N in {100, 400}, every assertion on the same data set."""
    law = calibration_laws()[k]
    rows = []
    for N in (100, 400):
        rng = np.random.default_rng([seed + 11, k, N])
        P = np.empty((n_sets, len(DEEP_COLUMNS)))
        for s in range(n_sets):
            X = law.draw(N, rng)
            P[s] = [TESTS[t](X, law.target, law.cov) for t in DEEP_COLUMNS]
        cells = " | ".join("/".join(str(int(np.sum(P[:, j] < a))) for a in DEEP_ALPHAS)
                           for j in range(len(DEEP_COLUMNS)))
        rows.append(f"| {law.name} | {N} | {cells} |")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=2000)
    ap.add_argument("--power-sets", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="200 null sets, 100 power sets")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="run only the assertions whose name contains this")
    ap.add_argument("--deep", action="store_true",
                    help="instead: counts of p-values below 1e-3 / 1e-4 / 1e-6 over 4000 null sets "
                         "per law (--sets to change), N = 100 and 400")
    args = ap.parse_args(argv)
    if args.deep:
        n_deep = 4000 if args.sets == 2000 else args.sets
        ks = range(len(calibration_laws()))
        if args.jobs > 1:
            from joblib import Parallel, delayed
            parts = Parallel(n_jobs=args.jobs)(delayed(run_deep)(k, n_deep, args.seed) for k in ks)
        else:
            parts = [run_deep(k, n_deep, args.seed) for k in ks]
        print(f"Null sets (of {n_deep} per cell) with p below 1e-3 / 1e-4 / 1e-6\n")
        print("| law | N | " + " | ".join(DEEP_COLUMNS) + " |")
        print("|---|---:|" + "---|" * len(DEEP_COLUMNS))
        print("\n".join(r for p in parts for r in p))
        return
    n_sets, n_power = (200, 100) if args.quick else (args.sets, args.power_sets)
    n_laws = len(calibration_laws())
    tests = tuple(t for t in TESTS if args.only in t)
    t0 = time.perf_counter()
    if args.jobs > 1:
        from joblib import Parallel, delayed
        parts = Parallel(n_jobs=args.jobs)(delayed(run_law)(k, n_sets, n_power, args.seed, tests)
                                           for k in range(n_laws))
    else:
        parts = [run_law(k, n_sets, n_power, args.seed, tests) for k in range(n_laws)]
    rows = [r for p in parts for r in p]
    print(f"False-alarm rate over {n_sets} null data sets (nominal alpha in the header; in [0.5, 2]x nominal "
          f"marked ok) and power at alpha = 0.01 over {n_power} sets; {time.perf_counter() - t0:.0f} s.\n")
    for t in tests:
        print(f"\n### {t}\n")
        print("| law | max kurtosis | N | FA @ 0.01 | FA @ 0.05 | power @ 0.01 |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["test"] != t:
                continue
            cells = []
            for a in ALPHAS:
                x = r[f"fa{a}"]
                cells.append(f"{x:.4f}" + ("" if 0.5 * a <= x <= 2 * a else " (!)"))
            print(f"| {r['law']} | {r['kurtosis']:.1f} | {r['N']} | {cells[0]} | {cells[1]} | {r['power']:.3f} |")


if __name__ == "__main__":
    main()
