r"""The results table of an RLHF comparison, computed exactly on a finite world.

:func:`run_arena` runs the pipeline (:func:`~tabularpg.rlhf.train.prepare`) once per seed
and every algorithm from the same :math:`\pi_{ref}` and reward model; the judge is the
true Bradley-Terry reward, so every win rate is an exact expectation (no evaluation
noise): the spread over seeds is the spread of training (demonstrations, preference
pairs, sampled responses). :func:`frontier` is the exact reward-KL frontier of
:math:`\pi^*_\beta` over :math:`\beta`. ``tabularpg arena`` prints the table and draws
the plot.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._validation import ArgumentTypeError, ValidationError, check_int
from .train import _LINEAR_LR, Pipeline, parse_algorithm, prepare, train
from .world import KLProblem, World, evaluate, kl_to_reference, make_world, win_rate

__all__ = ["DEFAULT_ALGORITHMS", "ArenaResult", "add_parser", "default_algorithms", "format_table", "frontier",
           "plot_arena", "run_arena", "run_command"]

#: The rows of the summarization table of Gao et al. (2024), plus GRPO and Dr. GRPO, with
#: step sizes tuned for the default world and budget (100 iterations of 10 prompts): for
#: each algorithm the grid value maximizing the exact J_beta of the *reward model* (never
#: the true reward) on a separate tuning pipeline (``benchmarks/arena.py --tune``).
DEFAULT_ALGORITHMS = ("sft", "dpo:lr=800", "reinforce:lr=20", "ppo:lr=20", "rloo:k=2,lr=20", "rloo:k=4,lr=80",
                      "rebel:eta=3", "grpo:lr=100", "dr_grpo:lr=40")


@dataclass(frozen=True, eq=False)
class ArenaResult:
    """``rows``: one dict per algorithm (means over seeds and the 95% interval of the win
    rate); ``finals``: label -> list of per-seed final metrics; ``histories``: label ->
    list of per-seed :class:`~tabularpg.rlhf.train.Run` histories; ``frontier``: dict of
    arrays from :func:`frontier` (first seed's pipeline); ``settings``: the run's options."""

    rows: list
    finals: dict
    histories: dict
    frontier: dict
    settings: dict

    def to_json(self) -> str:
        """Strict JSON: numpy values as Python ones, non-finite floats (the interval of a
        single seed) as ``null``."""
        def conv(x):
            if isinstance(x, dict):
                return {str(k): conv(v) for k, v in x.items()}
            if isinstance(x, (list, tuple, np.ndarray)):
                return [conv(v) for v in x]
            if isinstance(x, (np.floating, np.integer, np.bool_)):
                x = x.item()
            if isinstance(x, float) and not np.isfinite(x):
                return None
            return x
        return json.dumps(conv({"settings": self.settings, "rows": self.rows, "finals": self.finals,
                                "frontier": self.frontier}), indent=1, allow_nan=False)


def default_algorithms(policy: str = "tabular") -> tuple:
    """:data:`DEFAULT_ALGORITHMS`, with every ``lr`` scaled by ``0.02`` for linear policies
    (their gradients sum over all prompts and responses in ``d`` shared coordinates)."""
    if policy == "tabular":
        return DEFAULT_ALGORITHMS
    if policy != "linear":
        raise ValidationError(f"`policy` must be 'tabular' or 'linear'; got {policy!r}")
    out = []
    for spec in DEFAULT_ALGORITHMS:
        name, opts = parse_algorithm(spec)
        if "lr" in opts:
            opts["lr"] *= _LINEAR_LR
        out.append(name + (":" + ",".join(f"{k}={v:g}" for k, v in opts.items()) if opts else ""))
    return tuple(out)


def frontier(pipe: Pipeline, betas=None) -> dict:
    r"""Exact (KL, win rate) of :math:`\pi^*_\beta \propto \pi_{ref}e^{r/\beta}` over ``betas``,
    for the true reward (``"true"``) and the reward model (``"rm"``): dict of arrays
    ``beta``, ``kl_true``, ``win_true``, ``kl_rm``, ``win_rm`` (win rates against :math:`\pi_{ref}`)."""
    if not isinstance(pipe, Pipeline):
        raise ArgumentTypeError(f"`pipe` must be a Pipeline; got {type(pipe).__name__}")
    betas = np.geomspace(1e-2, 1e2, 61) if betas is None else np.asarray(betas, dtype=float)
    if betas.ndim != 1 or np.any(betas <= 0):
        raise ValidationError(f"`betas` must be a 1-d array of positive numbers; got {betas!r}")
    w = pipe.world
    out = {"beta": betas}
    for key, reward in (("true", w.reward), ("rm", pipe.problem.reward)):
        kl, win = [], []
        for b in betas:
            star = KLProblem(w.mu, reward, pipe.pi_ref, float(b)).optimum()
            kl.append(kl_to_reference(w.mu, star, pipe.pi_ref))
            win.append(win_rate(w, star, pipe.pi_ref))
        out[f"kl_{key}"], out[f"win_{key}"] = np.array(kl), np.array(win)
    return out


def _optima(pipe):
    """Exact metrics of pi*_beta for the reward model and for the true reward."""
    w, prob = pipe.world, pipe.problem
    true_star = KLProblem(w.mu, w.reward, pipe.pi_ref, prob.beta).optimum()
    return {"rm": _metrics_of(pipe, pipe.pi_star), "true": _metrics_of(pipe, true_star)}


def _metrics_of(pipe, pi):
    return evaluate(pipe.world, pipe.problem, pi, opponent=pipe.pi_demo, optimum=pipe.pi_star).as_dict()


def _interval(values, level=0.95):
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def run_arena(world, algorithms=None, *, seeds: int = 5, n_iter: int = 100, n_prompts: int = 10,
              policy: str = "tabular", beta: float = 0.1, seed: int = 0, prepare_options=None,
              progress=None) -> ArenaResult:
    """Run every algorithm on ``seeds`` independent pipelines of ``world``.

    Parameters
    ----------
    world : World or str
        A world or a :func:`~tabularpg.rlhf.world.make_world` spec.
    algorithms : sequence of str, optional
        Specs for :func:`~tabularpg.rlhf.train.train` (``"rloo:k=4,lr=80"``); default
        :func:`default_algorithms` of ``policy``.
    seeds : int
        Independent pipelines (children of ``numpy.random.SeedSequence(seed)``).
    n_iter, n_prompts : int
        Iterations and prompts per iteration of the RL algorithms (DPO: ``n_iter`` full-batch steps).
    policy : {"tabular", "linear"}
    beta : float
        KL coefficient (RL and DPO).
    prepare_options : dict, optional
        More keyword arguments of :func:`~tabularpg.rlhf.train.prepare`.
    progress : callable, optional
        Wraps the iterable of (seed, algorithm) tasks (e.g. ``tqdm``).

    Returns
    -------
    ArenaResult
    """
    if isinstance(world, str):
        world = make_world(world)
    if not isinstance(world, World):
        raise ArgumentTypeError(f"`world` must be a World or a spec string; got {type(world).__name__}")
    if algorithms is None:
        algorithms = default_algorithms(policy)
    if isinstance(algorithms, str) or not algorithms:
        raise ValidationError(f"`algorithms` must be a non-empty sequence of specs; got {algorithms!r}")
    for spec in algorithms:
        parse_algorithm(spec)
    seeds = check_int(seeds, "seeds", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    n_prompts = check_int(n_prompts, "n_prompts", minimum=1)
    children = np.random.SeedSequence(seed).spawn(seeds)
    tasks = [(i, j, spec) for i in range(seeds) for j, spec in enumerate(algorithms)]
    pipes: dict = {}
    fr: dict = {}
    refs: list = []
    finals: dict = {}
    histories: dict = {}
    times: dict = {}
    iters: dict = {}
    labels: dict = {}
    for i, j, spec in (tasks if progress is None else progress(tasks)):
        if i not in pipes:
            pipes = {i: prepare(world, policy=policy, beta=beta, rng=np.random.default_rng(children[i]),
                                **(prepare_options or {}))}
            if not fr:
                fr = frontier(pipes[i])
            refs.append(_optima(pipes[i]))
        t0 = time.perf_counter()
        run = train(pipes[i], spec, n_iter=n_iter, n_prompts=n_prompts,
                    rng=np.random.default_rng([seed, i, j]))
        labels[spec] = run.label
        finals.setdefault(spec, []).append(run.final)
        histories.setdefault(spec, []).append(run.history)
        times.setdefault(spec, []).append(time.perf_counter() - t0)
        iters[spec] = run.n_iter
    rows = []
    for spec in algorithms:
        f = finals[spec]
        mean, lo, hi = _interval([r["win_rate"] for r in f])
        rows.append({"algorithm": labels[spec], "spec": spec, "win_rate": mean, "win_rate_low": lo,
                     "win_rate_high": hi,
                     **{key: float(np.mean([r[key] for r in f]))
                        for key in ("win_rate_opponent", "kl", "reward", "rm_reward", "distance")},
                     "iterations": iters[spec], "seconds": float(np.mean(times[spec]))})
    settings = {"world": world.name, "shape": list(world.shape), "seeds": seeds, "n_iter": n_iter,
                "n_prompts": n_prompts, "policy": policy, "beta": beta, "seed": seed}
    for key, label in (("rm", "pi*_beta(RM)"), ("true", "pi*_beta(r)")):
        mean, lo, hi = _interval([r[key]["win_rate"] for r in refs])
        rows.append({"algorithm": label, "spec": None, "win_rate": mean, "win_rate_low": lo, "win_rate_high": hi,
                     **{m: float(np.mean([r[key][m] for r in refs]))
                        for m in ("win_rate_opponent", "kl", "reward", "rm_reward", "distance")},
                     "iterations": 0, "seconds": 0.0})
    return ArenaResult(rows=rows, finals={labels[s]: finals[s] for s in algorithms},
                       histories={labels[s]: histories[s] for s in algorithms}, frontier=fr, settings=settings)


def format_table(result: ArenaResult) -> str:
    """The table: algorithm, win rate against pi_ref (%, mean and 95% t-interval over
    seeds), win rate against the demonstrator (%), KL to pi_ref, true reward, iterations,
    seconds per run."""
    s = result.settings
    lines = [(f"world {s['world']} {s['shape'][0]}x{s['shape'][1]}, {s['policy']} policy, beta={s['beta']}, "
              f"{s['seeds']} seed(s); exact metrics (judge: true Bradley-Terry reward)"),
             (f"{'algorithm':12} {'win vs ref %':>12} {'(95% CI)':>15} {'vs demo %':>9} {'KL':>7} {'reward':>7} "
              f"{'iters':>6} {'seconds':>8}")]
    for i, r in enumerate(result.rows):
        if r["spec"] is None and result.rows[i - 1]["spec"] is not None:
            lines.append("-" * 16 + " exact optima of J_beta (no training) " + "-" * 16)
        ci = (f"[{100 * r['win_rate_low']:.1f}, {100 * r['win_rate_high']:.1f}]"
              if np.isfinite(r["win_rate_low"]) else "")
        lines.append(f"{r['algorithm']:12} {100 * r['win_rate']:12.1f} {ci:>15} {100 * r['win_rate_opponent']:9.1f} "
                     f"{r['kl']:7.3f} {r['reward']:7.3f} {r['iterations']:6d} {r['seconds']:8.3f}")
    return "\n".join(lines)


def plot_arena(result: ArenaResult, path: str) -> None:
    """Win rate against KL: each algorithm's trajectory (first seed) and per-seed final
    points, with the exact frontier of pi*_beta (true reward and reward model).
    Needs matplotlib (``pip install 'tabularpg[plot]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting the arena needs matplotlib; pip install 'tabularpg[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 5))
    fr = result.frontier
    ax.plot(fr["kl_true"], 100 * fr["win_true"], "k-", lw=2, label=r"$\pi^*_\beta$, true reward (exact)")
    ax.plot(fr["kl_rm"], 100 * fr["win_rm"], "k--", lw=1.5, label=r"$\pi^*_\beta$, reward model (exact)")
    for i, (label, hists) in enumerate(result.histories.items()):
        color = f"C{i % 10}"
        h = hists[0]
        ax.plot(h["kl"], 100 * h["win_rate"], "-", color=color, alpha=0.5, lw=1)
        f = result.finals[label]
        ax.plot([r["kl"] for r in f], [100 * r["win_rate"] for r in f], "o", color=color, label=label)
    kmax = max(max(r["kl"] for r in result.rows) * 1.5, 0.1)
    ax.set_xlim(0, kmax)
    ax.set_xlabel(r"KL($\pi\,\|\,\pi_{ref}$) (nats)")
    ax.set_ylabel(r"win rate against $\pi_{ref}$ (%)")
    st = result.settings
    ax.set_title(f"{st['world']} world, {st['policy']} policy, beta={st['beta']:g}: win rate vs KL\n"
                 f"dots: final policy of each of {st['seeds']} seed(s); thin lines: training path of the first seed",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line
def add_parser(sub) -> None:
    """Register ``tabularpg arena`` on an argparse sub-parser collection."""
    p = sub.add_parser("arena", help="RLHF arena: SFT, DPO, REINFORCE, PPO, RLOO, REBEL, GRPO on a finite world")
    p.add_argument("--world", default="random",
                   help="world spec: random[:X=50,Y=8,d=8,scale=1,rho=0.7,L=20,seed=0] or "
                        "length_bias[:X=50,Y=8,bias=0.5,seed=0] (default random)")
    p.add_argument("--algorithms", nargs="+", default=None, metavar="SPEC",
                   help="algorithm specs NAME[:key=value,...], e.g. sft dpo rloo:k=4,lr=80 "
                        f"(default: {' '.join(DEFAULT_ALGORITHMS)}; step sizes x{_LINEAR_LR:g} for --policy linear)")
    p.add_argument("--seeds", type=int, default=5, help="independent pipelines (default 5)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--iters", type=int, default=100, help="iterations per algorithm (default 100)")
    p.add_argument("--prompts", type=int, default=10, help="prompts per iteration (default 10)")
    p.add_argument("--policy", choices=("tabular", "linear"), default="tabular")
    p.add_argument("--beta", type=float, default=0.1, help="KL coefficient (default 0.1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="win rate vs KL with the exact pi*_beta frontier (needs matplotlib: tabularpg[plot])")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    """``tabularpg arena``: print the table (or JSON) and optionally write the plot."""
    from ..cli import UsageError

    algorithms = args.algorithms or default_algorithms(args.policy)
    if args.plot:  # fail before the work when matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise UsageError("--plot needs matplotlib; pip install 'tabularpg[plot]'") from exc
    if args.iters < 1:
        raise UsageError(f"--iters must be >= 1; got {args.iters}")
    try:
        world = make_world(args.world)
        result = run_arena(world, algorithms, seeds=args.seeds, n_iter=args.iters, n_prompts=args.prompts,
                           policy=args.policy, beta=args.beta, seed=args.seed)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        for name, flag in (("`seeds`", "--seeds"), ("`algorithm`", "--algorithms"), ("`n_iter`", "--iters"),
                           ("`n_prompts`", "--prompts"), ("`beta`", "--beta"), ("`seed`", "--seed"),
                           ("`policy`", "--policy"), ("`world`", "--world"), ("`spec`", "--world")):
            message = message.replace(name, flag)
        raise UsageError(message) from exc
    print(result.to_json() if args.json else format_table(result))
    if args.plot:
        plot_arena(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
