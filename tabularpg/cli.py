"""The ``tabularpg`` command line.

* ``tabularpg verify`` checks every exact identity (and the Monte Carlo estimators
  against their exact expectations) on the built-in MDPs; exits 1 on any failure.
* ``tabularpg solve --mdp SPEC`` solves for ``V*`` three ways and reports agreement.
* ``tabularpg study --mdp SPEC`` measures estimators' bias and variance against their
  exact expectations.
* ``tabularpg train --mdp SPEC`` runs an optimizer and reports ``J`` per iteration.

``--mdp`` takes a built-in spec (``garnet:S=50,A=4,b=5,seed=0``; ``tabularpg solve
--mdp help`` lists them), a Gymnasium toy-text id (``gym:FrozenLake-v1``) or an ``.npz``
file written by :meth:`tabularpg.MDP.to_npz`. Usage errors exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A bad command-line argument: reported on stderr with exit code 2."""


def load_mdp(spec: str, *, gamma=None, horizon=None):
    """Build an MDP from a ``--mdp`` spec (built-in, ``gym:ID`` or ``.npz`` path)."""
    from . import envs
    from .mdp import MDP

    if spec.endswith(".npz"):
        try:
            mdp = MDP.from_npz(spec)
        except FileNotFoundError as exc:
            raise UsageError(f"--mdp: no such file {spec!r}") from exc
    elif spec.startswith("gym:"):
        from .interop import from_gymnasium

        try:
            import gymnasium
        except ImportError as exc:
            raise UsageError("--mdp gym:...: Gymnasium is not installed; pip install 'tabularpg[gym]'") from exc
        try:
            env = gymnasium.make(spec[4:])
        except Exception as exc:  # gymnasium raises several error types for bad ids
            raise UsageError(f"--mdp: Gymnasium cannot make {spec[4:]!r}: {exc}") from exc
        # default horizon: the env's TimeLimit, so J is what Gymnasium's episodes return
        mdp = from_gymnasium(env, gamma=0.99 if gamma is None else gamma,
                             horizon="auto" if horizon is None else horizon)
        gamma = horizon = None
    else:
        try:
            mdp = envs.make(spec)
        except ValueError as exc:
            raise UsageError(f"--mdp: {exc}") from exc
    changes = {}
    if gamma is not None:
        changes["gamma"] = gamma
    if horizon is not None:
        changes["horizon"] = horizon
    try:
        return mdp.replace(**changes) if changes else mdp
    except ValueError as exc:
        raise UsageError(f"--gamma/--horizon: {exc}") from exc


def progress(iterable, *, total=None, desc=None, quiet=False):
    """Wrap ``iterable`` in a tqdm bar when stderr is a terminal, tqdm is installed and
    ``quiet`` is False; otherwise return it unchanged."""
    if quiet or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, mininterval=1.0)


def _emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, indent=1, default=_json_default) if args.json else text)


def _json_default(x):
    import numpy as np

    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def _cmd_solve(args) -> int:
    import time

    import numpy as np

    from . import exact, solve

    mdp = load_mdp(args.mdp, gamma=args.gamma, horizon=args.horizon)
    results, seconds = {}, {}
    for name, fn in [("value_iteration", solve.value_iteration), ("policy_iteration", solve.policy_iteration),
                     ("linear_program", solve.linear_program)]:
        t0 = time.perf_counter()
        results[name] = fn(mdp)
        seconds[name] = time.perf_counter() - t0
    ref = results["policy_iteration"]
    v0 = ref.v if ref.v.ndim == 1 else ref.v[0]
    j_star = float(mdp.mu @ v0)
    pi_star = ref.pi if ref.pi.ndim == 2 else None
    j_pi = float(exact.objective(mdp, pi_star)) if pi_star is not None else j_star
    gaps = {k: float(np.max(np.abs(r.v - ref.v))) for k, r in results.items()}
    payload = {"mdp": args.mdp, "n_states": mdp.n_states, "n_actions": mdp.n_actions, "gamma": mdp.gamma,
               "horizon": mdp.horizon, "J_star": j_star, "J_of_greedy_policy": j_pi,
               "solvers": {k: {"seconds": seconds[k], "n_iter": r.n_iter, "converged": r.converged,
                               "max_abs_diff_v_vs_policy_iteration": gaps[k]} for k, r in results.items()},
               "v_star": v0, "greedy_actions": (ref.pi if ref.pi.ndim == 2 else ref.pi[0]).argmax(-1)}
    lines = [f"{args.mdp}: S={mdp.n_states} A={mdp.n_actions} gamma={mdp.gamma} horizon={mdp.horizon}",
             f"J* = mu^T V* = {j_star:.10g}   (exact J of the greedy policy: {j_pi:.10g})",
             f"{'solver':18} {'seconds':>9} {'iters':>6} {'converged':>9} {'max|V - V_PI|':>14}"]
    for k, r in results.items():
        lines.append(f"{k:18} {seconds[k]:9.4f} {r.n_iter:6d} {str(r.converged):>9} {gaps[k]:14.2e}")
    _emit(args, payload, "\n".join(lines))
    if args.plot:
        _plot_values(args.plot, v0, mdp, args.mdp)
    return 0 if all(r.converged for r in results.values()) and max(gaps.values()) < 1e-6 else 1


def _plot_values(path, v, mdp, title):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(mdp.n_states), v)
    ax.set_xlabel("state")
    ax.set_ylabel("V*(s)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib; pip install 'tabularpg[plot]'") from exc
    return plt


def _csv_list(text, name, conv=str):
    try:
        out = [conv(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from exc
    if not out:
        raise UsageError(f"{name}: expected a comma-separated list; got {text!r}")
    return out


def _cmd_study(args) -> int:
    import numpy as np

    from . import estimators, sweep

    names = _csv_list(args.estimators, "--estimators")
    unknown = [n for n in names if n not in estimators.REGISTRY]
    if unknown:
        raise UsageError(f"--estimators: unknown {unknown}; registered: {', '.join(sorted(estimators.REGISTRY))}")
    sizes = _csv_list(args.batch_sizes, "--batch-sizes", int)
    if min(sizes) < 2:
        raise UsageError("--batch-sizes: every batch size must be >= 2")
    load_mdp(args.mdp, gamma=args.gamma)  # validate the spec early (exit code 2)
    if args.gamma is not None or args.mdp.startswith("gym:") or args.mdp.endswith(".npz"):
        raise UsageError("study takes a built-in --mdp spec (tasks rebuild it from the string); "
                         "set gamma inside the spec, e.g. garnet:S=20,gamma=0.95")
    tasks = sweep.grid([args.mdp], names, sizes, repeats=args.repeats, horizon=args.horizon)
    bar = (lambda it: progress(it, total=len(tasks), desc="study", quiet=args.quiet))
    try:
        rows = sweep.run_sweep(tasks, seed=args.seed, progress=bar)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    agg = {}
    for r in rows:
        agg.setdefault((r["estimator"], r["n_episodes"]), []).append(r)
    lines = [f"{args.mdp}: {args.repeats} repeat(s) per cell, seed {args.seed}; means over repeats",
             f"{'estimator':26} {'N':>6} {'|E-grad J|':>10} {'bias p':>9} {'var/ep MC':>11} {'var/ep exact':>12} "
             f"{'MSE':>10} {'MSE exact':>10} {'cosine':>7}"]
    table = []
    for (name, n), rs in agg.items():
        m = {k: float(np.nanmean([r[k] for r in rs])) if not all(np.isnan(r[k]) for r in rs) else float("nan")
             for k in ("bias_exact_norm", "bias_p", "var_sampled", "var_exact", "var_mean_exact", "mse", "mse_exact",
                       "cosine")}
        table.append({"estimator": name, "n_episodes": n, **m})
        lines.append(f"{name:26} {n:6d} {m['bias_exact_norm']:10.3g} {m['bias_p']:9.3g} {m['var_sampled']:11.4g} "
                     f"{m['var_exact']:12.4g} {m['mse']:10.3g} {m['mse_exact']:10.3g} {m['cosine']:7.3f}")
    if args.out:
        sweep.write_table(rows, args.out)
    _emit(args, {"mdp": args.mdp, "rows": rows, "summary": table}, "\n".join(lines))
    if args.plot:
        _plot_study(args.plot, table, rows, args.mdp)
    return 0


def _plot_study(path, table, rows, title):
    """Left: variance of the batch mean vs N with its exact value (tr Cov / N, or the exact
    batch covariance for batch-coupled baselines). Right: squared error to grad J per repeat
    with its exact expectation ||bias||^2 + tr Cov(mean)."""
    import numpy as np

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, name in enumerate(sorted({t["estimator"] for t in table})):
        color = f"C{i}"
        pts = sorted((t["n_episodes"], t["var_sampled"], t["var_mean_exact"], t["mse_exact"])
                     for t in table if t["estimator"] == name)
        n = np.array([p[0] for p in pts], float)
        ax1.loglog(n, [p[1] / p[0] for p in pts], "o", color=color, label=f"{name} (Monte Carlo)")
        errs = [(r["n_episodes"], r["mse"]) for r in rows if r["estimator"] == name]
        ax2.loglog([e[0] for e in errs], [e[1] for e in errs], ".", color=color, label=f"{name} (per repeat)")
        if all(np.isfinite(p[2]) for p in pts):  # exact at every N (batch-coupled baselines too)
            ax1.loglog(n, [p[2] for p in pts], "-", color=color, alpha=0.6, label=f"{name}: exact tr Cov(mean)")
            ax2.loglog(n, [p[3] for p in pts], "-", color=color, alpha=0.6,
                       label=f"{name}: exact ||bias||^2 + tr Cov(mean)")
    ax1.set_xlabel("batch size N")
    ax1.set_ylabel("variance of the batch mean (trace)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("batch size N")
    ax2.set_ylabel("||mean - grad J||^2")
    ax2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_ALGORITHMS = ("pg", "npg", "entropy_npg", "trpo", "ppo", "reinforce", "rloo", "actor_critic")


def _cmd_train(args) -> int:

    from . import optim, solve
    from .policies import TabularSoftmax

    mdp = load_mdp(args.mdp, gamma=args.gamma, horizon=args.horizon)
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta0 = pol.zeros()
    H = args.sample_horizon if mdp.horizon is None else None
    it, lr = args.iters, args.step_size
    bar = (lambda r: progress(r, total=it, desc=args.algorithm, quiet=args.quiet))  # noqa: E731
    runs = {
        "pg": lambda: optim.policy_gradient_ascent(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar),
        "npg": lambda: optim.natural_policy_gradient(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar,
                                                     closed_form=mdp.horizon is None),
        "entropy_npg": lambda: optim.natural_policy_gradient(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar, tau=args.tau,
                                                             closed_form=mdp.horizon is None),
        "trpo": lambda: optim.trpo(mdp, pol, theta0, delta=args.delta, n_iter=it, progress=bar),
        "ppo": lambda: optim.ppo(mdp, pol, theta0, n_iter=it, progress=bar, lr=lr),
        "reinforce": lambda: optim.policy_gradient_ascent(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar,
                                                          estimator="reward_to_go", n_episodes=args.episodes,
                                                          horizon=H, rng=args.seed),
        "rloo": lambda: optim.rloo(mdp, pol, theta0, k=4, n_iter=it, progress=bar, step_size=lr, horizon=H, rng=args.seed),
        "actor_critic": lambda: optim.actor_critic(mdp, pol, theta0, n_iter=it, progress=bar, step_size=lr,
                                                   n_episodes=args.episodes, horizon=H, rng=args.seed),
    }
    try:
        res = runs[args.algorithm]()
        ref = solve.policy_iteration(mdp)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    j_star = float(mdp.mu @ (ref.v if ref.v.ndim == 1 else ref.v[0]))
    every = max(1, it // 10)
    lines = [f"{args.algorithm} on {args.mdp}: J* = {j_star:.6g}", f"{'iter':>6} {'J':>12} {'J* - J':>12} {'KL':>10}"]
    for k in list(range(0, it + 1, every)) + ([it] if it % every else []):
        kl = res.kl[k - 1] if k > 0 else float("nan")
        lines.append(f"{k:6d} {res.j[k]:12.6g} {j_star - res.j[k]:12.3g} {kl:10.3g}")
    _emit(args, {"algorithm": args.algorithm, "mdp": args.mdp, "J_star": j_star, "J": res.j, "KL": res.kl,
                 "step": res.step}, "\n".join(lines))
    if args.plot:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(res.j, label=f"J ({args.algorithm})")
        ax.axhline(j_star, color="k", ls="--", label="J*")
        ax.set_xlabel("iteration")
        ax.set_ylabel("J")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        plt.close(fig)
    return 0


def _cmd_verify(args) -> int:
    from . import verify

    mdps = None
    if args.mdp is not None:
        mdps = {args.mdp: load_mdp(args.mdp, gamma=args.gamma, horizon=args.horizon)}
    rows = verify.run(seed=args.seed, monte_carlo=not args.no_monte_carlo, quick=not args.full, mdps=mdps)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(verify.format_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each sub-command registers itself here."""
    p = argparse.ArgumentParser(prog="tabularpg", description="Exact and Monte Carlo policy gradients on finite MDPs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("verify", help="check every exact identity and estimator on the built-in MDPs")
    v.add_argument("--seed", type=int, default=0, help="seed of the random policies and batches (default 0)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.add_argument("--no-monte-carlo", action="store_true", help="exact identities only")
    v.add_argument("--full", action="store_true", help="larger Monte Carlo samples")
    v.add_argument("--mdp", default=None, help="check the exact identities on this MDP instead of the built-ins "
                                               "(same specs as the other commands)")
    v.add_argument("--gamma", type=float, default=None, help="override the discount of --mdp")
    v.add_argument("--horizon", type=int, default=None, help="override the horizon of --mdp")
    v.set_defaults(func=_cmd_verify)

    def common(q):
        q.add_argument("--mdp", required=True,
                       help="built-in spec (e.g. garnet:S=50,A=4,b=5,seed=0; 'help' lists them), "
                            "gym:ID (e.g. gym:FrozenLake-v1) or a .npz file")
        q.add_argument("--gamma", type=float, default=None, help="override the discount")
        q.add_argument("--horizon", type=int, default=None, help="override the horizon")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--plot", metavar="FILE.png", default=None, help="write a plot (needs matplotlib)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("solve", help="optimal values by value iteration, policy iteration and LP")
    common(s)
    s.set_defaults(func=_cmd_solve)

    st = sub.add_parser("study", help="bias and variance of estimators against their exact expectations")
    common(st)
    st.add_argument("--estimators", default="reinforce,reward_to_go,gae",
                    help="comma-separated registry names (default reinforce,reward_to_go,gae)")
    st.add_argument("--batch-sizes", default="10,100,1000", help="comma-separated batch sizes (default 10,100,1000)")
    st.add_argument("--repeats", type=int, default=3, help="independent batches per cell (default 3)")
    st.add_argument("--out", default=None, help="write the tidy per-repeat table (.csv or .parquet)")
    st.set_defaults(func=_cmd_study)

    tr = sub.add_parser("train", help="run an optimizer and report J per iteration against J*")
    common(tr)
    tr.add_argument("--algorithm", choices=_ALGORITHMS, default="npg")
    tr.add_argument("--iters", type=int, default=100)
    tr.add_argument("--step-size", type=float, default=1.0)
    tr.add_argument("--episodes", type=int, default=100, help="episodes per iteration (sampled algorithms)")
    tr.add_argument("--sample-horizon", type=int, default=100, help="truncation of sampled episodes")
    tr.add_argument("--tau", type=float, default=0.01, help="entropy weight (entropy_npg)")
    tr.add_argument("--delta", type=float, default=0.01, help="KL radius (trpo)")
    tr.set_defaults(func=_cmd_train)

    from .rlhf.arena import add_parser as add_arena_parser

    add_arena_parser(sub)  # the arena command's arguments and logic live in tabularpg.rlhf.arena
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"tabularpg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
