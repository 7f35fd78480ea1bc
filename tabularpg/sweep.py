r"""Sweeps: grids of (MDP, estimator, batch size, repetition) studies, run sequentially, on
local processes (joblib) or on a Dask cluster, bit-identical whatever the backend.

Every task gets its own ``numpy.random.SeedSequence``, spawned from the sweep's seed and
indexed by the task's position in the grid, so a task's numbers do not depend on which
worker runs it or in which order. Finished tasks are appended to a JSON-lines journal as
they complete; a sweep restarted with the same journal skips them (resumable).

A study task (:func:`study_task`) builds the MDP from a spec string
(:func:`tabularpg.envs.make`), samples a batch, applies the estimator and compares it with
its exact expectation and the exact gradient: bias z statistic, sampled and exact
per-episode variance, squared error and cosine to ``grad J``.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ._validation import EnumerationTooLargeError, ValidationError, check_int

__all__ = ["Task", "grid", "study_task", "run_sweep", "write_table", "read_journal", "to_dataframe", "BACKENDS"]

BACKENDS = ("sequential", "processes", "dask")


@dataclass(frozen=True)
class Task:
    """One cell of a sweep: ``index`` is its position in the grid (it fixes its seed)."""

    index: int
    mdp: str
    estimator: str
    n_episodes: int
    repeat: int
    horizon: int | None = None
    theta_seed: int = 0
    options: dict = field(default_factory=dict)


def grid(mdps, estimators, batch_sizes, *, repeats: int = 1, horizon=None, theta_seed: int = 0) -> list:
    """The ordered product ``mdps x estimators x batch_sizes x range(repeats)`` as :class:`Task` s."""
    repeats = check_int(repeats, "repeats", minimum=1)
    cells = itertools.product(list(mdps), list(estimators), [check_int(n, "batch size", minimum=1) for n in batch_sizes],
                              range(repeats))
    return [Task(i, m, e, n, r, horizon, theta_seed) for i, (m, e, n, r) in enumerate(cells)]


def _problem(spec, horizon, theta_seed):
    from . import envs
    from .policies import TabularSoftmax

    mdp = envs.make(spec)
    if mdp.horizon is None and horizon is None:
        horizon = 20
    if mdp.horizon is not None and horizon is None:
        horizon = mdp.horizon
    pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    theta = np.random.default_rng(theta_seed).normal(size=pol.theta_shape)
    return mdp, horizon, pol, theta


def _estimator_setup(name, mdp, horizon, pol, theta):
    """Options (exact critics of the sampled horizon's objective, a uniform behavior
    policy) and the sampling scheme for ``name``."""
    from . import exact

    m = mdp.replace(horizon=horizon) if mdp.horizon != horizon else mdp
    ev = exact.analyze(m, pol.probs(theta))
    opts, sample_kw = {}, {"horizon": horizon}
    if name in ("q", "advantage", "all_action"):
        opts["critic"] = ev.q
    elif name in ("td_residual", "gae"):
        # exact time-indexed V of the sampled (truncated) objective, V_T = 0: unbiased
        opts["critic"] = np.vstack([ev.v, np.zeros((1, mdp.n_states))])
    if name.startswith("importance"):
        sample_kw["behavior"] = np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    if name == "random_horizon":
        sample_kw["horizon"] = "geometric"
    return m, opts, sample_kw


def study_task(task: Task, seed_seq) -> dict:
    """Run one study cell; returns a flat dict (one row of the tidy table)."""
    from . import estimators as E
    from . import exact
    from .moments import exact_moments
    from .sampling import sample
    from .testing.assertions import unbiased_test

    mdp, horizon, pol, theta = _problem(task.mdp, task.horizon, task.theta_seed)
    m, opts, sample_kw = _estimator_setup(task.estimator, mdp, horizon, pol, theta)
    opts.update(task.options)
    rng = np.random.Generator(np.random.PCG64(seed_seq))
    if task.estimator == "random_horizon":
        target = E.expected(task.estimator, mdp, pol, theta, **opts).ravel()
        grad = exact.policy_gradient(mdp, pol, theta).ravel()
    else:
        target = E.expected(task.estimator, mdp, pol, theta, horizon=horizon, **opts).ravel()
        grad = exact.policy_gradient(m, pol, theta).ravel()
    batch = sample(mdp, pol, theta, task.n_episodes, rng=rng, **sample_kw)
    X = E.estimate(batch, pol, theta, task.estimator, **opts).samples
    mean = X.mean(axis=0)
    exact_var = np.nan
    exact_cov = None
    if task.estimator != "random_horizon":
        try:
            mom = exact_moments(mdp, pol, theta, task.estimator, horizon, max_trajectories=100_000,
                                behavior=sample_kw.get("behavior"), **opts)
            exact_var, exact_cov = float(np.trace(mom.cov)), mom.cov
        except EnumerationTooLargeError:
            pass
    if exact_cov is not None:
        res = unbiased_test(X, target, cov=exact_cov)
    elif task.n_episodes >= 10 * X.shape[1]:  # Hotelling only with ample samples per dimension
        res = unbiased_test(X, target)
    else:
        res = None
    err = mean - grad
    cos = float(mean @ grad / (np.linalg.norm(mean) * np.linalg.norm(grad))) if np.linalg.norm(mean) > 0 else np.nan
    return {
        "index": task.index, "mdp": task.mdp, "estimator": task.estimator, "n_episodes": task.n_episodes,
        "repeat": task.repeat, "horizon": horizon if task.estimator != "random_horizon" else "geometric",
        "bias_exact_norm": float(np.linalg.norm(target - grad)),
        "mc_mean_norm": float(np.linalg.norm(mean)),
        "bias_chi2": np.nan if res is None else float(res.statistic),
        "bias_dof": np.nan if res is None else float(res.dof),
        "bias_p": np.nan if res is None else float(res.p_value),
        "var_sampled": float(np.trace(np.cov(X, rowvar=False))) if X.shape[0] > 1 else np.nan,
        "var_exact": exact_var,
        "mse": float(err @ err),
        "cosine": cos,
        "checksum": float(np.sum(np.abs(X))),
    }


def read_journal(path) -> dict:
    """Finished rows of a journal, keyed by task index."""
    done = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    row = json.loads(line)
                    done[row["index"]] = row
    return done


def _run_one(fn, task, seed_seq):
    return fn(task, seed_seq)


def run_sweep(tasks, *, task_fn=study_task, backend: str = "sequential", n_jobs: int = 2, client=None,
              address=None, seed: int = 0, journal=None, progress=None, out=None) -> list:
    """Run ``task_fn(task, seed_seq)`` for every task; return rows sorted by task index.

    Parameters
    ----------
    tasks : list of Task (or any objects with an ``index`` attribute)
    task_fn : picklable callable
    backend : {"sequential", "processes", "dask"}
        ``processes`` uses joblib with ``n_jobs`` workers; ``dask`` uses ``client`` (a
        ``dask.distributed.Client``) or connects to the scheduler at ``address``.
    seed : int
        Root of ``SeedSequence(seed).spawn(max index + 1)``; task ``i`` gets child ``i``.
    journal : path, optional
        JSON-lines file: finished rows are appended as they complete and skipped on a rerun.
    progress : callable, optional
        Wraps the iterable of finished rows (e.g. a tqdm bar).
    out : path, optional
        Also write the finished table there (``.csv`` or ``.parquet``; see :func:`write_table`).
    """
    if backend not in BACKENDS:
        raise ValidationError(f"`backend` must be one of {BACKENDS}; got {backend!r}")
    tasks = list(tasks)
    children = np.random.SeedSequence(seed).spawn(max((t.index for t in tasks), default=-1) + 1)
    done = read_journal(journal)
    todo = [t for t in tasks if t.index not in done]
    rows = dict(done)

    def finished(row):
        rows[row["index"]] = row
        if journal:
            with open(journal, "a") as f:
                f.write(json.dumps(row, default=_json_default) + "\n")

    if backend == "sequential":
        results = (task_fn(t, children[t.index]) for t in todo)
    elif backend == "processes":
        try:
            from joblib import Parallel, delayed
        except ImportError as exc:
            raise ImportError("backend='processes' needs joblib: pip install 'tabularpg[parallel]'") from exc
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_run_one)(task_fn, t, children[t.index]) for t in todo)
    else:
        try:
            from dask.distributed import Client, as_completed
        except ImportError as exc:
            raise ImportError("backend='dask' needs dask.distributed: pip install 'tabularpg[parallel]'") from exc
        own = client is None
        if own:
            if address is None:
                raise ValidationError("backend='dask' needs a `client` or a scheduler `address`")
            client = Client(address)
        futures = client.map(_run_one, [task_fn] * len(todo), todo, [children[t.index] for t in todo], pure=False)
        results = (f.result() for f in as_completed(futures))
    if progress is not None:
        results = progress(results)
    try:
        for row in results:
            finished(row)
    finally:
        if backend == "dask" and own:
            client.close()
    table = [rows[t.index] for t in sorted(tasks, key=lambda t: t.index)]
    if out is not None:
        write_table(table, out)
    return table


def _json_default(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def write_table(rows, path) -> None:
    """Write rows as CSV (``.csv``) or Parquet (``.parquet``, needs pandas and pyarrow)."""
    path = str(path)
    if path.endswith(".parquet"):
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Parquet output needs pandas and pyarrow: pip install 'tabularpg[parallel]'") from exc
        pd.DataFrame(rows).to_parquet(path, index=False)
        return
    if not path.endswith(".csv"):
        raise ValidationError(f"`path` must end in .csv or .parquet; got {path!r}")
    import csv

    keys = list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def to_dataframe(rows):
    """Rows as a pandas DataFrame (needs pandas)."""
    import pandas as pd

    return pd.DataFrame(rows)


def task_dict(task: Task) -> dict:
    """A task as a plain dict (for logs)."""
    return asdict(task)
