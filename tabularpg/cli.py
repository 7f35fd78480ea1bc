"""The ``tabularpg`` command line.

* ``tabularpg verify`` checks every exact identity (and the Monte Carlo estimators
  against their exact expectations) on the built-in MDPs; exits 1 on any failure.
* ``tabularpg solve --mdp SPEC`` solves for ``V*`` three ways and reports agreement.
* ``tabularpg study --mdp SPEC`` measures estimators' bias and variance against their
  exact expectations.
* ``tabularpg train --mdp SPEC`` runs an optimizer and reports ``J`` per iteration.

``--mdp`` takes a built-in spec (``garnet:S=50,A=4,b=5,seed=0``; ``tabularpg solve
--mdp help`` lists them), a Gymnasium toy-text id (``gym:FrozenLake-v1``) or an ``.npz``
file written by :meth:`tabularpg.MDP.to_npz`. Exit codes: 0 success, 1 a failed check or a
numerical failure, 2 a usage or input error; errors are one line ``tabularpg CMD: error: ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .mdp import MDP

T = TypeVar("T")

__all__ = ["DEFAULT_STEP_SIZES", "build_parser", "load_mdp", "main"]


class UsageError(Exception):
    """A bad command-line argument or input file: ``error:`` on stderr, exit code 2."""


class NumericalFailure(Exception):
    """A computation refused to return an untrustworthy number: exit code 1."""


#: library parameter names as the command line spells them (for messages)
_FLAG_NAMES = {"n_iter": "--iters", "step_size": "--step-size", "lr": "--step-size", "n_episodes": "--episodes",
               "k": "--episodes", "repeats": "--repeats", "seed": "--seed", "rng": "--seed", "tau": "--tau",
               "delta": "--delta", "beta": "--beta", "gamma": "--gamma", "batch size": "--batch-sizes"}


def _flagged(message: str, extra: dict | None = None) -> str:
    """Replace the backticked library parameter names in ``message`` by their flags."""
    names = {**_FLAG_NAMES, **(extra or {})}
    for name, flag in names.items():
        message = message.replace(f"`{name}`", flag)
    return message


#: the builders' parameter names as ``--mdp NAME:key=value`` spells them
_SPEC_KEYS = {"n_states": "S", "n_actions": "A", "branching": "b", "rng": "seed"}


def _spec_words(message: str) -> str:
    """A library message about an MDP spec in the spec's own words: ``S`` for ``n_states``
    (and so on), no backticks, no ``spec`` argument name."""
    import re

    message = message.replace("`spec`: ", "")
    for name, key in _SPEC_KEYS.items():
        message = re.sub(rf"`{name}`|\b{name}\b(?= =)", key, message)
    return re.sub(r"`(\w+)`", r"\1", message)


def load_mdp(spec: str, *, gamma: float | None = None, horizon: int | None = None) -> MDP:
    """Build an MDP from a ``--mdp`` spec (built-in, ``gym:ID[:key=value,...]`` or ``.npz``
    path; see :func:`tabularpg.envs.make`), refusing bad specs and files with a
    :class:`UsageError` that names ``--mdp`` (or ``--gamma``/``--horizon``)."""
    import zipfile

    from . import envs
    from ._validation import TabularPGError

    if spec.endswith(".npz"):
        import os

        if not os.path.isfile(spec):
            raise UsageError(f"--mdp: no such file {spec!r}")
        try:
            mdp = envs.make(spec)
        except (TabularPGError, ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"--mdp: {spec!r} is not a valid MDP file (written by MDP.to_npz): {exc}") from None
    else:
        try:
            mdp = envs.make(spec)
        except envs.MissingDependencyError as exc:
            raise UsageError(f"--mdp: {exc}") from None
        except TabularPGError as exc:
            raise UsageError(f"--mdp: {_spec_words(str(exc))}") from None
    changes = {}
    if gamma is not None:
        changes["gamma"] = gamma
    if horizon is not None:
        changes["horizon"] = horizon
    try:
        return mdp.replace(**changes) if changes else mdp
    except TabularPGError as exc:
        raise UsageError(f"--gamma/--horizon: {exc}") from None


def _first_sentence(func) -> str:
    """The first sentence of ``func``'s docstring on one line, without reST markup."""
    import inspect
    import re

    para = " ".join((inspect.getdoc(func) or "").split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s+(?=[A-Z])", para)[0].replace("``", "").replace("*", "").rstrip(".")


def _mdp_help() -> str:
    from . import envs

    lines = ["Built-in MDPs (--mdp NAME or NAME:key=value,...):"]
    for name, info in envs.catalog().items():
        alias = f" (alias: {', '.join(info['aliases'])})" if info["aliases"] else ""
        defaults = ", ".join(f"{k}={v}" for k, v in info["defaults"].items())
        lines.append(textwrap.fill(f"{name}{alias}: {_first_sentence(getattr(envs, name))}", width=100,
                                   initial_indent="  ", subsequent_indent="      "))
        lines.append(f"      keys: {', '.join(info['keys'])}" + (f"; defaults: {defaults}" if defaults else ""))
    lines += ["Also: gym:ID[:key=value,...] (a Gymnasium toy-text env, e.g. gym:FrozenLake-v1:is_slippery=False;",
              "      gamma = 1 and the env's time limit as horizon unless --gamma/--horizon; needs tabularpg[gym])",
              "      and PATH.npz (an MDP written by MDP.to_npz)."]
    return "\n".join(lines)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str | None = None,
             quiet: bool = False) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when stderr is a terminal, tqdm is installed and
    ``quiet`` is False; otherwise return it unchanged."""
    if quiet or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, mininterval=1.0)


def _strict(x):
    """``x`` with numpy values as Python ones and non-finite floats as None (strict JSON)."""
    import math

    import numpy as np

    if isinstance(x, dict):
        return {str(k): _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    if isinstance(x, np.ndarray):
        return _strict(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _dumps(payload) -> str:
    return json.dumps(_strict(payload), indent=1, allow_nan=False)


def _emit(args, payload: dict, text: str) -> None:
    print(_dumps(payload) if args.json else text)


def _describe(mdp, spec: str) -> str:
    """``spec (gamma=.., horizon=..)``: the MDP as plot titles name it."""
    h = "inf" if mdp.horizon is None else mdp.horizon
    return f"{spec} (S={mdp.n_states}, A={mdp.n_actions}, gamma={mdp.gamma:g}, horizon={h})"


# ----------------------------------------------------------------------------- checks before computing
_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _check_output_path(path: str, flag: str, suffixes) -> None:
    import os

    if not path.lower().endswith(tuple(suffixes)):
        raise UsageError(f"{flag}: {path!r} must end in one of {', '.join(suffixes)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag}: directory {parent!r} is not writable")
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path!r} is a directory")


def _require(module: str, extra: str, what: str) -> None:
    """Refuse (exit 2, with the pip line) when an optional dependency is missing."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{what} needs {module}, which is not installed; "
                         f"run: pip install 'tabularpg[{extra}]'") from None


def _preflight(args) -> None:
    """Everything that can be refused without computing: output paths and formats, and
    the optional dependencies they need."""
    if getattr(args, "plot", None):
        _check_output_path(args.plot, "--plot", _PLOT_SUFFIXES)
        _require("matplotlib", "plot", "--plot")
    if getattr(args, "out", None):
        _check_output_path(args.out, "--out", (".csv", ".parquet"))
        if args.out.lower().endswith(".parquet"):
            _require("pandas", "parallel", "--out FILE.parquet")
            _require("pyarrow", "parallel", "--out FILE.parquet")
    mdp = getattr(args, "mdp", None)
    if isinstance(mdp, str) and mdp.startswith("gym:"):
        _require("gymnasium", "gym", f"--mdp {mdp}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    print(f"wrote {path}", file=sys.stderr)


# ----------------------------------------------------------------------------- solve
#: screen direction (dx, dy) of each action: tabularpg's gridworlds and Gymnasium's
#: CliffWalking use up, right, down, left; FrozenLake uses left, down, right, up
_MOVES_URDL = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}
_MOVES_LDRU = {0: (-1, 0), 1: (0, -1), 2: (1, 0), 3: (0, 1)}


def _grid_layout(spec: str, mdp):
    """``(rows, cols, moves)`` of the gridworld MDPs: the cell of every state and the
    direction of every action (None for other MDPs)."""
    import numpy as np

    from . import envs

    name = spec.partition(":")[0]
    name = envs.ALIASES.get(name, name)
    if name == "sutton_barto_gridworld" and mdp.n_states == 25:
        return (*np.divmod(np.arange(25), 5), _MOVES_URDL)
    if (name == "cliff_walking" or spec.startswith("gym:CliffWalking")) and mdp.n_states == 48:
        return (*np.divmod(np.arange(48), 12), _MOVES_URDL)
    side = {16: 4, 64: 8}.get(mdp.n_states)
    if spec.startswith("gym:FrozenLake") and side is not None:
        return (*np.divmod(np.arange(mdp.n_states), side), _MOVES_LDRU)
    return None


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
    greedy = (ref.pi if ref.pi.ndim == 2 else ref.pi[0]).argmax(-1)
    payload = {"mdp": args.mdp, "n_states": mdp.n_states, "n_actions": mdp.n_actions, "gamma": mdp.gamma,
               "horizon": mdp.horizon, "J_star": j_star, "J_of_greedy_policy": j_pi,
               "solvers": {k: {"seconds": seconds[k], "n_iter": r.n_iter, "converged": r.converged,
                               "max_abs_diff_v_vs_policy_iteration": gaps[k]} for k, r in results.items()},
               "v_star": v0, "greedy_actions": greedy}
    lines = [_describe(mdp, args.mdp),
             f"J* = mu^T V* = {j_star:.10g}   (exact J of the greedy policy: {j_pi:.10g})",
             f"{'solver':18} {'seconds':>9} {'iters':>6} {'converged':>9} {'max|V - V_PI|':>14}"]
    for k, r in results.items():
        lines.append(f"{k:18} {seconds[k]:9.4f} {r.n_iter:6d} {r.converged!s:>9} {gaps[k]:14.2e}")
    _emit(args, payload, "\n".join(lines))
    if args.plot:
        _plot_values(args.plot, v0, greedy, mdp, args.mdp)
    return 0 if all(r.converged for r in results.values()) and max(gaps.values()) < 1e-6 else 1


def _plot_values(path, v, greedy, mdp, spec):
    """Gridworlds: V* as a heat map with the greedy action as an arrow in every decision
    cell; other MDPs: V* as bars with the greedy action written above each bar."""
    import numpy as np

    plt = _pyplot()
    layout = _grid_layout(spec, mdp)
    title = f"V* and the greedy policy\n{_describe(mdp, spec)}"
    if layout is not None and mdp.n_actions == 4:
        r, c, moves = layout
        P = np.asarray(mdp.P.toarray() if hasattr(mdp.P, "toarray") else mdp.P).reshape(
            mdp.n_states, mdp.n_actions, mdp.n_states)
        reached = np.asarray(mdp.mu) > 0  # cells reachable from a start state (cliff cells are not)
        while True:
            grown = reached | (P[reached].sum(axis=(0, 1)) > 0)
            if np.array_equal(grown, reached):
                break
            reached = grown
        img = np.full((r.max() + 1, c.max() + 1), np.nan)
        img[r[reached], c[reached]] = v[reached]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * img.shape[1] + 2), max(3.5, 0.6 * img.shape[0] + 1.5)))
        ax.set_facecolor("0.85")  # never-reached cells stay grey
        im = ax.imshow(img, cmap="viridis")
        fig.colorbar(im, ax=ax, label="V*(s)", shrink=float(np.clip(img.shape[0] / img.shape[1] + 0.2, 0.5, 1.0)))
        ax.set_xticks(np.arange(-0.5, img.shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, img.shape[0]), minor=True)
        ax.grid(which="minor", color="k", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
        if not reached.all():
            title += "; grey: never reached from a start state"
        for s in range(mdp.n_states):
            if not reached[s]:
                continue
            if mdp.terminal[s]:
                ax.text(c[s], r[s], "T", ha="center", va="center", color="w")
                continue
            dx, dy = moves[int(greedy[s])]
            ax.annotate("", xy=(c[s] + 0.35 * dx, r[s] - 0.35 * dy), xytext=(c[s] - 0.35 * dx, r[s] + 0.35 * dy),
                        arrowprops={"arrowstyle": "->", "color": "w"})
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        ax.bar(range(mdp.n_states), v)
        if mdp.n_states <= 40:
            for s in range(mdp.n_states):
                ax.text(s, v[s], f"a{int(greedy[s])}", ha="center", va="bottom", fontsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("state (label: greedy action)")
        ax.set_ylabel("V*(s)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


# ----------------------------------------------------------------------------- study
_STUDY_COLUMNS = (
    "Table columns, one row per estimator and batch size N (means over --repeats batches): "
    "|E-grad J| = ||E[g] - grad J||, the exact bias of the estimator g (0 when unbiased); "
    "bias p = p-value of the test that the Monte Carlo mean of g equals E[g] (chi-square with the "
    "exact covariance, else Hotelling; small p means sampler and expectation disagree); "
    "var/ep MC and var/ep exact = trace of the covariance of one episode's estimate, sampled and exact; "
    "MSE and MSE exact = ||batch mean - grad J||^2, measured and its exact expectation; "
    "cosine = cosine between the batch mean and grad J. nan marks a value that could not be "
    "computed; a numbered note under the table says why.")


def _csv_list(text, name, conv=str):
    try:
        out = [conv(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(conv, "values")
        raise UsageError(f"{name}: expected comma-separated {kind}; got {text!r}") from None
    if not out:
        raise UsageError(f"{name}: expected a comma-separated list; got {text!r}")
    return out


def _parse_baseline(text):
    from .estimators import BATCH_BASELINES

    if text is None or text == "none":
        return None
    if text in BATCH_BASELINES:
        return text
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"--baseline: expected none, a finite number or one of {', '.join(BATCH_BASELINES)}; "
                         f"got {text!r}")
    return value


def _why_empty(row: dict, key: str, n_params: int = 0) -> str | None:
    """Why a study cell has no number (None when it has one)."""
    import math

    v = row.get(key)
    if v is not None and not (isinstance(v, float) and math.isnan(v)):
        return None
    if key == "var_exact":
        if row.get("baseline") == "optimal":
            return ("var/ep exact: the leave-one-out 'optimal' baseline's ratio coefficients have no "
                    "finite exact covariance")
        from .sweep import EXACT_BUDGET

        return (f"var/ep exact: the exact recursion's cost T S^2 A p exceeds sweep.EXACT_BUDGET = "
                f"{EXACT_BUDGET:.0e} operations")
    if key == "bias_p":
        dof = row.get("bias_dof")
        if isinstance(dof, float) and math.isfinite(dof):
            return (f"bias p: N < 10 x {dof:.0f} degrees of freedom of the exact covariance, too few for the "
                    "chi-square reference (docs/calibration.md)")
        return (f"bias p: no exact covariance, and N < 10 x {n_params} parameters for Hotelling's test "
                "with the sample covariance")
    if key == "cosine":
        return "cosine: the Monte Carlo mean is zero"
    return f"{key}: not computed"


def _cmd_study(args) -> int:
    import numpy as np

    from . import estimators, sweep

    names = _csv_list(args.estimators, "--estimators")
    unknown = [n for n in names if n not in estimators.REGISTRY]
    if unknown:
        raise UsageError(f"--estimators: unknown {unknown}; registered: {', '.join(sorted(estimators.REGISTRY))}")
    sizes = _csv_list(args.batch_sizes, "--batch-sizes", int)
    if min(sizes) < 2:
        raise UsageError(f"--batch-sizes: every batch size must be >= 2; got {min(sizes)}")
    baseline = _parse_baseline(args.baseline)
    mdp = load_mdp(args.mdp, gamma=args.gamma)  # refuses bad specs and files before computing
    horizon = args.horizon if args.horizon is not None else (mdp.horizon if mdp.horizon is not None else 20)
    takes = [n for n in names if "baseline" in getattr(estimators.REGISTRY[n], "options", ())]
    tasks: list = []
    for n in names:  # the baseline goes to the estimators that take one
        opts = {"baseline": baseline} if baseline is not None and n in takes else {}
        for t in sweep.grid([args.mdp], [n], sizes, repeats=args.repeats, horizon=horizon, options=opts,
                            gamma=args.gamma):
            tasks.append(dataclasses.replace(t, index=len(tasks)))
    bar = (lambda it: progress(it, total=len(tasks), desc="study", quiet=args.quiet))
    rows = sweep.run_sweep(tasks, seed=args.seed, progress=bar)
    for r in rows:
        r["baseline"] = baseline if r["estimator"] in takes else None
    agg: dict[tuple, list] = {}
    for r in rows:
        agg.setdefault((r["estimator"], r["n_episodes"]), []).append(r)
    h_note = ("the MDP's horizon" if args.horizon is None and mdp.horizon is not None
              else "--horizon" if args.horizon is not None else "default for infinite-horizon MDPs; set --horizon")
    b_note = "none" if baseline is None else f"{baseline} (for {', '.join(n for n in names if n in takes) or 'none'})"
    lines = [_describe(mdp, args.mdp),
             f"sampled horizon {horizon} ({h_note}); baseline {b_note}",
             f"{args.repeats} repeat(s) per cell, seed {args.seed}; means over repeats",
             f"{'estimator':26} {'N':>6} {'|E-grad J|':>10} {'bias p':>9} {'var/ep MC':>11} {'var/ep exact':>12} "
             f"{'MSE':>10} {'MSE exact':>10} {'cosine':>7}"]
    table: list[dict] = []
    notes: dict[str, int] = {}
    for (name, n), rs in agg.items():
        m = {k: float(np.nanmean([r[k] for r in rs])) if not all(np.isnan(r[k]) for r in rs) else float("nan")
             for k in ("bias_exact_norm", "bias_p", "var_sampled", "var_exact", "var_mean_exact", "mse", "mse_exact",
                       "cosine")}
        why = [w for k in ("bias_p", "var_exact", "cosine")
               if (w := _why_empty({**rs[0], k: m[k]}, k, mdp.n_states * mdp.n_actions))]
        table.append({"estimator": name, "n_episodes": n, "horizon": horizon, **m, "empty_because": why})
        for w in why:
            notes.setdefault(w, len(notes) + 1)
        mark = f" [{','.join(str(notes[w]) for w in why)}]" if why else ""
        lines.append(f"{name:26} {n:6d} {m['bias_exact_norm']:10.3g} {m['bias_p']:9.3g} {m['var_sampled']:11.4g} "
                     f"{m['var_exact']:12.4g} {m['mse']:10.3g} {m['mse_exact']:10.3g} {m['cosine']:7.3f}{mark}")
    lines += [f"[{i}] nan in {why}" for why, i in notes.items()]
    lines.append("columns: 'tabularpg study --help'; E = exact expectation, MC = Monte Carlo, var/ep = trace of "
                 "the per-episode covariance")
    if args.out:
        sweep.write_table(rows, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    _emit(args, {"mdp": args.mdp, "gamma": mdp.gamma, "horizon": horizon, "baseline": baseline, "rows": rows,
                 "summary": table}, "\n".join(lines))
    if args.plot:
        _plot_study(args.plot, table, rows, f"{_describe(mdp, args.mdp)}, sampled horizon {horizon}")
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
        exact_known = all(np.isfinite(p[2]) for p in pts)
        ax1.loglog(n, [p[1] / p[0] for p in pts], "o", color=color,
                   label=f"{name} (Monte Carlo)" + ("" if exact_known else "; no exact value, see the table"))
        errs = [(r["n_episodes"], r["mse"]) for r in rows if r["estimator"] == name]
        ax2.loglog([e[0] for e in errs], [e[1] for e in errs], ".", color=color, label=f"{name} (per repeat)")
        if exact_known:  # exact at every N (batch-coupled baselines too)
            ax1.loglog(n, [p[2] for p in pts], "-", color=color, alpha=0.6, label=f"{name}: exact tr Cov(mean)")
            ax2.loglog(n, [p[3] for p in pts], "-", color=color, alpha=0.6,
                       label=f"{name}: exact ||bias||^2 + tr Cov(mean)")
    ax1.set_xlabel("batch size N")
    ax1.set_ylabel("variance of the batch mean (trace)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("batch size N")
    ax2.set_ylabel("||mean - grad J||^2")
    ax2.legend(fontsize=7)
    sizes = sorted({t["n_episodes"] for t in table})
    for ax in (ax1, ax2):  # the batch sizes that were run, as plain numbers
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


# ----------------------------------------------------------------------------- train
_ALGORITHMS = ("pg", "npg", "entropy_npg", "trpo", "ppo", "reinforce", "rloo", "actor_critic", "dpo")

#: the default --step-size of each algorithm, as a multiple ``c`` of a scale read off the
#: MDP at the start: ``c / max|grad J(theta_0)|`` for the gradient methods (the first
#: exact step moves no logit by more than ``c``), ``c / max|A(theta_0)|`` (advantage) for
#: NPG, whose direction is the advantage; PPO's ascent steps are on a surrogate with the
#: same gradient at the start. trpo takes --delta instead.
DEFAULT_STEP_SIZES = {"pg": 1.0, "npg": 1.0, "entropy_npg": 1.0, "trpo": None, "ppo": 0.2,
                      "reinforce": 0.25, "rloo": 0.25, "actor_critic": 0.25, "dpo": 1.0}
_NATURAL = ("npg", "entropy_npg")


def _default_step(algorithm: str, mdp, pol, theta0, dpo_data=None, beta=None) -> tuple:
    """``(step size, how it was chosen)`` for ``algorithm`` without --step-size."""
    import numpy as np

    from . import exact, optim

    c = DEFAULT_STEP_SIZES[algorithm]
    if c is None:
        return None, "delta"
    if algorithm in _NATURAL:
        adv = exact.analyze(mdp, pol.probs(theta0)).advantage
        scale, what = float(np.max(np.abs(adv))), "max|A(theta_0)|"
    elif algorithm == "dpo":
        pi_ref, prefs, _ = dpo_data
        g = optim.dpo_loss(pol, theta0, pi_ref, prefs, beta=beta)[1]
        scale, what = float(np.max(np.abs(g))), "max|grad L_DPO(theta_0)|"
    else:
        scale, what = float(np.max(np.abs(exact.policy_gradient(mdp, pol, theta0)))), "max|grad J(theta_0)|"
    if not np.isfinite(scale) or scale <= 1e-300:
        return c, f"{c:g} ({what} = 0)"
    return c / scale, f"{c / scale:.4g} = {c:g} / {what}"


_PREF_SCALE = 5.0


def _dpo_problem(mdp, seed: int, n_pairs: int):
    """The preference data of ``train --algorithm dpo``: the MDP read as a contextual bandit.

    Prompts are the decision states (uniform), responses the actions, the reference policy
    uniform. The rater prefers actions by Bradley-Terry on the optimal action values
    rescaled in each state to [0, 5] (sure, at 99.3%, that the best action beats the worst):
    ``r(s, a) = 5 (Q*(s, a) - min_a Q*(s, .)) / (max_a Q*(s, .) - min_a Q*(s, .))``. The KL-regularized
    optimum ``pi_ref exp(r / beta)`` is greedy with respect to ``Q*`` as ``beta -> 0``.
    Returns ``(pi_ref, prefs, r)``."""
    import numpy as np

    from . import optim, solve

    ref = solve.policy_iteration(mdp)
    v = ref.v if ref.v.ndim == 1 else ref.v[0]
    q_star = mdp.r_sa + mdp.gamma * mdp.next_state_expectation(v) * mdp.nonterminal[:, None]
    decision = np.asarray(mdp.nonterminal, dtype=bool)
    lo, hi = q_star.min(axis=1, keepdims=True), q_star.max(axis=1, keepdims=True)
    r = _PREF_SCALE * np.divide(q_star - lo, hi - lo, out=np.zeros_like(q_star), where=hi > lo)
    prompts = decision.astype(float) / decision.sum()
    pi_ref = np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    prefs = optim.sample_preferences(r, pi_ref, prompts, n_pairs, rng=seed)
    return pi_ref, prefs, r


def _train_dpo(mdp, pol, theta0, *, step_size, it, bar, data, beta):
    """DPO on :func:`_dpo_problem`'s preferences; ``J`` of every iterate is exact on the MDP."""
    import numpy as np

    from . import exact, optim

    pi_ref, prefs, _ = data
    res = optim.dpo(pol, theta0, pi_ref, beta=beta, n_iter=it, lr=step_size, prefs=prefs, progress=bar)
    # optim.dpo records the loss; replay its (deterministic) steps to evaluate J exactly
    th, js = np.array(theta0, dtype=float), [float(exact.objective(mdp, pol.probs(theta0)))]
    for _ in range(it):
        th = th - step_size * optim.dpo_loss(pol, th, pi_ref, prefs, beta=beta)[1]
        js.append(float(exact.objective(mdp, pol.probs(th))))
    if not np.allclose(th, res.theta, rtol=1e-12, atol=1e-12):
        raise NumericalFailure("replaying the DPO steps did not reproduce optim.dpo's final theta")
    return optim.OptimResult(theta=res.theta, j=np.array(js), kl=res.kl, step=res.step,
                             extra={"dpo_loss": res.j})


def _cmd_train(args) -> int:
    import numpy as np

    from . import optim, solve
    from .policies import TabularSoftmax

    mdp = load_mdp(args.mdp, gamma=args.gamma, horizon=args.horizon)
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta0 = pol.zeros()
    H = args.sample_horizon if mdp.horizon is None else None
    it = args.iters
    dpo_data = _dpo_problem(mdp, args.seed, 10 * args.episodes) if args.algorithm == "dpo" else None
    if args.step_size is not None:
        lr, lr_text = args.step_size, f"{args.step_size:g} (--step-size)"
    else:
        lr, lr_text = _default_step(args.algorithm, mdp, pol, theta0, dpo_data, args.beta)
    bar = (lambda r: progress(r, total=it, desc=args.algorithm, quiet=args.quiet))
    runs = {
        "pg": lambda: optim.policy_gradient_ascent(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar),
        "npg": lambda: optim.natural_policy_gradient(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar,
                                                     closed_form=mdp.horizon is None),
        "entropy_npg": lambda: optim.natural_policy_gradient(mdp, pol, theta0, step_size=lr, n_iter=it,
                                                             progress=bar, tau=args.tau,
                                                             closed_form=mdp.horizon is None),
        "trpo": lambda: optim.trpo(mdp, pol, theta0, delta=args.delta, n_iter=it, progress=bar),
        "ppo": lambda: optim.ppo(mdp, pol, theta0, n_iter=it, progress=bar, lr=lr),
        "reinforce": lambda: optim.policy_gradient_ascent(mdp, pol, theta0, step_size=lr, n_iter=it, progress=bar,
                                                          estimator="reward_to_go", n_episodes=args.episodes,
                                                          horizon=H, rng=args.seed),
        "rloo": lambda: optim.rloo(mdp, pol, theta0, k=max(2, args.episodes // int(np.sum(mdp.mu > 0))), n_iter=it,
                                   progress=bar, step_size=lr, horizon=H, rng=args.seed),
        "actor_critic": lambda: optim.actor_critic(mdp, pol, theta0, n_iter=it, progress=bar, step_size=lr,
                                                   n_episodes=args.episodes, horizon=H, rng=args.seed),
        "dpo": lambda: _train_dpo(mdp, pol, theta0, step_size=lr, it=it, bar=bar, data=dpo_data, beta=args.beta),
    }
    ref = solve.policy_iteration(mdp)
    j_star = float(mdp.mu @ (ref.v if ref.v.ndim == 1 else ref.v[0]))
    res = runs[args.algorithm]()
    every = max(1, it // 10)
    step_txt = f"delta={args.delta:g}" if args.algorithm == "trpo" else f"step size {lr_text}"
    lines = [f"{args.algorithm} on {_describe(mdp, args.mdp)}, {step_txt}: J* = {j_star:.6g}",
             f"{'iter':>6} {'J':>12} {'J* - J':>12} {'KL(old||new)':>13}"]
    for k in list(range(0, it + 1, every)) + ([it] if it % every else []):
        kl = f"{max(res.kl[k - 1], 0.0):13.3g}" if k > 0 else f"{'-':>13}"
        lines.append(f"{k:6d} {res.j[k]:12.6g} {j_star - res.j[k]:12.3g} {kl}")
    gap0 = j_star - res.j[0]
    if np.isfinite(res.j[-1]) and gap0 > 0:
        lines.append(f"closed {100 * (1 - (j_star - res.j[-1]) / gap0):.1f}% of the gap to J* in {it} iterations")
    _emit(args, {"algorithm": args.algorithm, "mdp": args.mdp, "gamma": mdp.gamma, "horizon": mdp.horizon,
                 "step_size": None if args.algorithm == "trpo" else lr, "J_star": j_star, "J": res.j, "KL": res.kl,
                 "step": res.step}, "\n".join(lines))
    if args.plot:
        _plot_train(args.plot, res, j_star, f"{args.algorithm} on {_describe(mdp, args.mdp)}, {step_txt}")
    if not np.isfinite(res.j[-1]):
        raise NumericalFailure(f"the final J is {res.j[-1]} (not finite) after --iters {it} at {step_txt}; "
                               "try a smaller --step-size")
    return 0


def _plot_train(path, res, j_star, title):
    import numpy as np

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(res.j, label="J(theta_k)")
    ax1.axhline(j_star, color="k", ls="--", label="J*")
    ax1.set_xlabel("iteration k")
    ax1.set_ylabel("J")
    ax1.legend()
    gap = j_star - np.asarray(res.j, dtype=float)
    scale = max(1.0, abs(j_star))
    ax2.semilogy(np.maximum(gap, 1e-16 * scale), label="J* - J(theta_k) (floored at 1e-16 |J*|)")
    ax2.set_xlabel("iteration k")
    ax2.set_ylabel("gap to J* (log scale)")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


# ----------------------------------------------------------------------------- verify
def _cmd_verify(args) -> int:
    from . import verify

    mdps = None
    if args.mdp is not None:
        mdps = {args.mdp: load_mdp(args.mdp, gamma=args.gamma, horizon=args.horizon)}
    rows = verify.run(seed=args.seed, monte_carlo=not args.no_monte_carlo, quick=not args.full, mdps=mdps)
    if args.json:
        print(_dumps([r.as_dict() for r in rows]))
    else:
        print(verify.format_table(rows, wide=args.wide))
    return 0 if all(r.passed for r in rows) else 1


# ----------------------------------------------------------------------------- parser
def _int_type(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _float_type(low: float, high: float | None = None, *, open_low: bool = False):
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
        bad = not math.isfinite(value) or value < low or (open_low and value == low) or (
            high is not None and value > high)
        if bad:
            rng = f"{'(' if open_low else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
            raise argparse.ArgumentTypeError(f"must lie in {rng}; got {text}")
        return value
    parse.__name__ = "number"
    return parse


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each sub-command registers itself here."""
    p = argparse.ArgumentParser(prog="tabularpg", description="Exact and Monte Carlo policy gradients on finite MDPs.",
                                epilog="'tabularpg solve --mdp help' lists the built-in MDPs and their parameters.")
    p.add_argument("--version", action="version", version=f"tabularpg {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    mdp_help = ("built-in spec (e.g. garnet:S=50,A=4,b=5,seed=0; 'help' lists them), "
                "gym:ID[:key=value,...] (e.g. gym:FrozenLake-v1:is_slippery=False; gamma = 1 and the env's "
                "time limit as horizon, so J is Gymnasium's expected episode return) or a .npz file")

    v = sub.add_parser("verify", help="check every exact identity and estimator on the built-in MDPs")
    v.add_argument("--seed", type=_int_type(0), default=0, help="seed of the random policies and batches (default 0)")
    v.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    v.add_argument("--no-monte-carlo", action="store_true", help="exact identities only")
    v.add_argument("--full", action="store_true", help="larger Monte Carlo samples")
    v.add_argument("--wide", action="store_true", help="also print the formula of every row (wider than 120 columns)")
    v.add_argument("--mdp", default=None, help="run every check on this MDP instead of the built-ins; " + mdp_help)
    v.add_argument("--gamma", type=_float_type(0.0, 1.0), default=None, help="override the discount of --mdp")
    v.add_argument("--horizon", type=_int_type(1), default=None, help="override the horizon of --mdp")
    v.set_defaults(func=_cmd_verify)

    def common(q):
        q.add_argument("--mdp", required=True, help=mdp_help)
        q.add_argument("--gamma", type=_float_type(0.0, 1.0), default=None,
                       help="override the discount (gym: specs default to 1)")
        q.add_argument("--horizon", type=_int_type(1), default=None, help="override the horizon")
        q.add_argument("--seed", type=_int_type(0), default=0, help="random seed (default 0)")
        q.add_argument("--json", action="store_true", help="machine-readable output (strict JSON: null for missing)")
        q.add_argument("--plot", metavar="FILE.png", default=None,
                       help="write a plot (needs matplotlib: pip install 'tabularpg[plot]')")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("solve", help="optimal values by value iteration, policy iteration and LP")
    common(s)
    s.set_defaults(func=_cmd_solve)

    st = sub.add_parser("study", help="bias and variance of estimators against their exact expectations",
                        epilog=_STUDY_COLUMNS)
    common(st)
    st.add_argument("--estimators", default="reinforce,reward_to_go,gae",
                    help="comma-separated registry names (default reinforce,reward_to_go,gae)")
    st.add_argument("--batch-sizes", default="10,100,1000", help="comma-separated batch sizes (default 10,100,1000)")
    st.add_argument("--repeats", type=_int_type(1), default=3, help="independent batches per cell (default 3)")
    st.add_argument("--baseline", default=None,
                    help="baseline of the REINFORCE-type estimators: none (default), a number, mean, "
                         "leave_one_out or optimal")
    st.add_argument("--out", default=None, help="write the tidy per-repeat table (.csv, or .parquet with "
                                                "pip install 'tabularpg[parallel]')")
    st.set_defaults(func=_cmd_study)

    steps = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_STEP_SIZES.items() if v is not None)
    tr = sub.add_parser("train", help="run an optimizer and report J per iteration against J*")
    common(tr)
    tr.add_argument("--algorithm", choices=_ALGORITHMS, default="npg",
                    help="optimizer (default npg): pg, npg (natural), entropy_npg, trpo, ppo on exact "
                         "quantities; reinforce, rloo, actor_critic on sampled episodes (--episodes); dpo on "
                         "preference pairs")
    tr.add_argument("--iters", type=_int_type(1), default=100, help="iterations (default 100)")
    tr.add_argument("--step-size", type=_float_type(0.0, open_low=True), default=None,
                    help=f"step size; default c / max|grad J(theta_0)| (npg, entropy_npg: c / max|A(theta_0)|; "
                         f"dpo: c / max|grad of the DPO loss at theta_0|) with c = {steps}; trpo uses --delta")
    tr.add_argument("--episodes", type=_int_type(2), default=1000,
                    help="episodes per iteration of the sampled algorithms reinforce, rloo (split over the start "
                         "states, at least 2 each) and actor_critic (default 1000); dpo: 10 x this many "
                         "preference pairs")
    tr.add_argument("--sample-horizon", type=_int_type(1), default=100,
                    help="truncation of sampled episodes on infinite-horizon MDPs (default 100)")
    tr.add_argument("--tau", type=_float_type(0.0, open_low=True), default=0.01, help="entropy weight (entropy_npg)")
    tr.add_argument("--delta", type=_float_type(0.0, open_low=True), default=0.01, help="KL radius (trpo)")
    tr.add_argument("--beta", type=_float_type(0.0, open_low=True), default=0.1,
                    help="KL weight of DPO (default 0.1). dpo reads the MDP as a contextual bandit: prompts are "
                         "the decision states, responses the actions, and a Bradley-Terry rater prefers actions "
                         "by Q*(s, .) rescaled to [0, 5] in each state")
    tr.set_defaults(func=_cmd_train)

    from .rlhf.arena import add_parser as add_arena_parser

    add_arena_parser(sub)  # the arena command's arguments and logic live in tabularpg.rlhf.arena
    return p


#: options whose value may start with '-' (argparse would read "-10,100" as a flag)
_VALUE_FLAGS = ("--batch-sizes", "--estimators", "--baseline", "--mdp")


def _join_dash_values(argv: list) -> list:
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if tok in _VALUE_FLAGS and nxt.startswith("-") and not nxt.startswith("--"):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _numerical_errors() -> tuple:
    from . import exact
    from ._validation import ImproperPolicyError, NumericalError

    errs = [NumericalError, ImproperPolicyError]
    if hasattr(exact, "ConvergenceError"):
        errs.append(exact.ConvergenceError)
    return tuple(errs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Exit codes: 0 success; 1 a check failed or a numerical failure (a computation refused
    to return an untrustworthy number); 2 a usage or input error. Every error is one line
    ``tabularpg COMMAND: error: ...`` on stderr naming the flag, never a traceback.
    """
    from ._validation import TabularPGError

    argv = _join_dash_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # report on the command's own usage line, not the top-level one
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "mdp", None) == "help":
        print(_mdp_help())
        return 0

    # in train, sampling's `horizon` is the truncation --sample-horizon; elsewhere the MDP's
    horizon = {"horizon": "--sample-horizon" if args.command == "train" else "--horizon"}

    def fail(message: str, code: int) -> int:
        print(f"tabularpg {args.command}: error: {message}", file=sys.stderr)
        return code

    try:
        _preflight(args)
        return args.func(args)
    except UsageError as exc:
        return fail(str(exc), 2)
    except NumericalFailure as exc:
        return fail(f"numerical failure: {exc}", 1)
    except _numerical_errors() as exc:
        return fail(f"numerical failure: {_flagged(str(exc), horizon)}", 1)
    except (TabularPGError, ImportError) as exc:
        return fail(_flagged(str(exc), horizon), 2)
    except OSError as exc:
        return fail(f"{exc.strerror or exc}" + (f": {exc.filename!r}" if exc.filename else ""), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
