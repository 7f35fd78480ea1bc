r"""Sweeps: grids of (MDP, estimator, batch size, repetition) studies, run sequentially, on
local processes (joblib) or on a Dask cluster, bit-identical whatever the backend.

Every task gets its own ``numpy.random.SeedSequence``, spawned from the sweep's seed and
indexed by the task's position in the grid, so a task's numbers do not depend on which
worker runs it or in which order. Finished tasks are appended to a JSON-lines journal as
they complete; a sweep restarted with the same journal skips them (resumable).

A study task (:func:`study_task`) builds the MDP from a spec string
(:func:`tabularpg.envs.make`), samples a batch, applies the estimator and compares it with
its exact expectation and the exact gradient: bias z statistic, sampled and exact
per-episode variance, squared error and cosine to ``grad J``. Any picklable
``task_fn(task, seed_seq) -> dict`` can replace it.

Optional dependencies are imported only by the backends and formats that need them:
joblib, ``dask.distributed``, pandas and pyarrow (``pip install 'tabularpg[parallel]'``).

Examples
--------
>>> tasks = grid(["two_state"], ["reinforce"], [50, 100], repeats=2, horizon=4)
>>> [(t.index, t.n_episodes, t.repeat) for t in tasks]
[(0, 50, 0), (1, 50, 1), (2, 100, 0), (3, 100, 1)]
>>> rows = run_sweep(tasks, seed=0)
>>> [r["checksum"] for r in rows[2:]] == [r["checksum"] for r in run_sweep(tasks[2:], seed=0)]
True
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ._validation import (
    TABLE_SUFFIXES,
    ArgumentTypeError,
    FileFormatError,
    ValidationError,
    check_float,
    check_instance,
    check_int,
    check_readable_file,
    check_sequence,
    check_writable_path,
)

__all__ = [
    "BACKENDS",
    "BACKEND_ALIASES",
    "Task",
    "cell_seed",
    "grid",
    "read_journal",
    "run_sweep",
    "study_task",
    "task_dict",
    "to_dataframe",
    "write_table",
]

#: backend names: the library each one uses
BACKENDS = ("sequential", "joblib", "dask")
#: older names, still accepted
BACKEND_ALIASES = {"processes": "joblib"}


@dataclass(frozen=True)
class Task:
    """One cell of a sweep. ``index`` is its position in the grid (rows come back in index
    order); its random numbers derive from its content (:meth:`cell_key`), not from ``index``."""

    index: int
    mdp: str
    estimator: str
    n_episodes: int
    repeat: int
    horizon: int | None = None
    theta_seed: int = 0
    options: dict = field(default_factory=dict)
    gamma: float | None = None

    def cell_key(self) -> str:
        """Canonical text of everything that defines the cell except its grid position:
        MDP spec, gamma, estimator, options, batch size, repeat, horizon, theta seed."""
        content = {"mdp": self.mdp, "gamma": self.gamma, "estimator": self.estimator,
                   "options": {str(k): _canonical(v) for k, v in sorted(self.options.items())},
                   "n_episodes": self.n_episodes, "repeat": self.repeat, "horizon": self.horizon,
                   "theta_seed": self.theta_seed}
        return json.dumps(content, sort_keys=True)


def _canonical(value: Any) -> str:
    """Text that identifies an option value exactly (arrays by shape, dtype and bytes;
    ``repr`` would elide the middle of large arrays)."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"ndarray{value.shape}:{value.dtype}:{digest}"
    return repr(value)


def cell_seed(task: Any, seed: int) -> np.random.SeedSequence:
    """The seed sequence of one cell: ``SeedSequence(seed, spawn_key=...)`` with a spawn
    key made of the SHA-256 of the cell's content (``task.cell_key()``, else ``repr(task)``),
    so a cell's numbers stay the same when the grid grows, shrinks or is reordered.

    Examples
    --------
    >>> a = grid(["two_state"], ["reinforce"], [10, 100])
    >>> b = grid(["two_state"], ["reinforce", "gae"], [5, 10, 100])
    >>> cell_seed(a[1], 0).spawn_key == cell_seed(b[2], 0).spawn_key   # both are (reinforce, N=100)
    True
    """
    check_int(seed, "seed", minimum=0)
    key = task.cell_key() if hasattr(task, "cell_key") else repr(task)
    digest = hashlib.sha256(key.encode()).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(seed, spawn_key=words)


def grid(mdps: Iterable[str], estimators: Iterable[str], batch_sizes: Iterable[int], *, repeats: int = 1,
         horizon: int | None = None, theta_seed: int = 0, options: dict[str, Any] | None = None,
         gamma: float | None = None) -> list[Task]:
    """The ordered product ``mdps x estimators x batch_sizes x range(repeats)`` as :class:`Task` s
    (every task with the same estimator ``options``, e.g. ``{"baseline": "mean"}``, and ``gamma``).

    ``mdps`` is a sequence of MDP specs (:func:`tabularpg.envs.make` strings or ``gym:ID``),
    ``estimators`` a sequence of registered estimator names, ``batch_sizes`` a sequence of
    ints >= 1; a single string is refused (it is not a list of one name).
    """
    from .estimators import REGISTRY

    mdps = check_sequence(mdps, "mdps", min_len=1)
    estimators = check_sequence(estimators, "estimators", min_len=1)
    batch_sizes = check_sequence(batch_sizes, "batch_sizes", min_len=1)
    for m in mdps:
        if not isinstance(m, str):
            raise ArgumentTypeError(f"`mdps` must hold MDP spec strings; got {m!r} ({type(m).__name__})")
    for e in estimators:
        if not isinstance(e, str) or e not in REGISTRY:
            raise (ValidationError if isinstance(e, str) else ArgumentTypeError)(
                f"`estimators` must hold registered estimator names ({', '.join(sorted(REGISTRY))}); got {e!r}")
    batch_sizes = [check_int(n, "batch_sizes", minimum=1) for n in batch_sizes]
    repeats = check_int(repeats, "repeats", minimum=1)
    horizon = check_int(horizon, "horizon", minimum=1, allow_none=True)
    theta_seed = check_int(theta_seed, "theta_seed", minimum=0)
    cells = itertools.product(mdps, estimators, batch_sizes, range(repeats))
    if options is not None and not isinstance(options, dict):
        raise ArgumentTypeError(f"`options` must be a dict of estimator options or None; got {type(options).__name__}")
    gamma = None if gamma is None else check_float(gamma, "gamma", low=0.0, high=1.0)
    opts = dict(options or {})
    return [Task(i, m, e, n, r, horizon, theta_seed, dict(opts), gamma) for i, (m, e, n, r) in enumerate(cells)]


def _problem(spec, horizon, theta_seed, gamma=None):
    from . import envs
    from .policies import TabularSoftmax

    mdp = envs.make(spec, gamma=gamma)
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


#: Largest recursion cost ``T S^2 A p`` (p = S*A for a tabular policy) ``study`` computes
#: exact moments for; beyond it the exact columns are NaN.
EXACT_BUDGET = 2e10


def _exact_variance(task, mdp, horizon, pol, theta, opts, sample_kw):
    """Exact per-episode ``tr Cov`` and covariance (batch-coupled baselines: N times the
    batch mean's), the exact ``tr Cov`` of the batch mean and the exact mean of the batch
    estimate, by the recursion of :mod:`tabularpg.moments`; NaN when it is too costly."""
    from .estimators import BATCH_BASELINES
    from .moments import exact_batch_moments, exact_moments

    N = task.n_episodes
    S, A = mdp.n_states, mdp.n_actions
    T = 1 if task.estimator == "random_horizon" else horizon
    if T * S * S * A * S * A > EXACT_BUDGET:
        return np.nan, None, np.nan, np.full(pol.n_params, np.nan)
    baseline = opts.get("baseline")
    if isinstance(baseline, str) and baseline in BATCH_BASELINES:
        if baseline == "optimal":
            return np.nan, None, np.nan, np.full(pol.n_params, np.nan)
        rest = {k: v for k, v in opts.items() if k != "baseline"}
        mom = exact_batch_moments(mdp, pol, theta, task.estimator, horizon, n_episodes=N, baseline=baseline,
                                  **rest)
        tr = float(np.trace(mom.cov))
        return N * tr, N * mom.cov, tr, mom.mean
    h = None if task.estimator == "random_horizon" else horizon
    mom = exact_moments(mdp, pol, theta, task.estimator, h, behavior=sample_kw.get("behavior"), **opts)
    tr = float(np.trace(mom.cov))
    return tr, mom.cov, tr / N, mom.mean


def study_task(task: Task, seed_seq: np.random.SeedSequence) -> dict:
    r"""Run one study cell; returns a flat dict (one row of the tidy table).

    The MDP is ``envs.make(task.mdp, gamma=task.gamma)`` (any spec: built-in, ``gym:ID``,
    ``.npz``), the policy a tabular
    softmax with ``theta ~ N(0, I)`` drawn from ``theta_seed``, the horizon ``task.horizon``
    (default: the MDP's, else 20). ``seed_seq`` seeds the sampling. Estimators that need a
    critic get the exact one of the sampled horizon's objective; importance sampling uses
    a uniform behavior policy; ``random_horizon`` samples geometric horizons.

    Columns: ``index, mdp, estimator, n_episodes, repeat, horizon``; ``grad_norm``
    :math:`\|\nabla J\|`; ``expected_norm`` :math:`\|E[\hat g]\|` (exact expectation,
    :func:`tabularpg.estimators.expected`); ``bias_exact_norm`` :math:`\|E[\hat g] - \nabla J\|`;
    ``mc_mean_norm`` :math:`\|\bar g\|`; ``bias_z`` the largest coordinate-wise
    :math:`|\bar g_i - E[\hat g_i]| / (s_i / \sqrt N)` over the coordinates that vary;
    ``bias_chi2, bias_dof, bias_p`` the joint
    chi-square test of :math:`E[\hat g]` (exact covariance from the recursion of
    :mod:`tabularpg.moments` when affordable, its p-value only with N >= 10 dof; else
    Hotelling with N >= 10 dim; else NaN); ``var_sampled`` and
    ``var_exact`` the trace of the per-episode covariance (exact, by the recursion of
    :mod:`tabularpg.moments`; for batch-coupled baselines N times that of the batch mean);
    ``var_mean_exact`` the exact trace of the covariance of the batch mean; ``mse``
    :math:`\|\bar g - \nabla J\|^2` and ``mse_exact`` its exact expectation
    :math:`\|E\bar g - \nabla J\|^2 + \mathrm{tr\,Cov}\,\bar g`; ``cosine`` between :math:`\bar g` and :math:`\nabla J`;
    ``checksum`` :math:`\sum |\hat g_{n,i}|` (bit-identity checks).
    """
    check_instance(task, Task, "task", "a tabularpg.sweep.Task")
    check_instance(seed_seq, np.random.SeedSequence, "seed_seq", "a numpy.random.SeedSequence")
    from . import estimators as E
    from . import exact
    from .sampling import sample
    from .testing.assertions import unbiased_test

    mdp, horizon, pol, theta = _problem(task.mdp, task.horizon, task.theta_seed, getattr(task, "gamma", None))
    m, opts, sample_kw = _estimator_setup(task.estimator, mdp, horizon, pol, theta)
    opts.update(task.options)
    rng = np.random.Generator(np.random.PCG64(seed_seq))
    exp_opts = dict(opts, n_episodes=task.n_episodes) if opts.get("baseline") == "mean" else opts
    if task.estimator == "random_horizon":
        target = E.expected(task.estimator, mdp, pol, theta, **opts).ravel()
        grad = exact.policy_gradient(mdp, pol, theta).ravel()
    else:
        target = E.expected(task.estimator, mdp, pol, theta, horizon=horizon, **exp_opts).ravel()
        grad = exact.policy_gradient(m, pol, theta).ravel()
    batch = sample(mdp, pol, theta, task.n_episodes, rng=rng, **sample_kw)
    X = E.estimate(batch, pol, theta, task.estimator, **opts).samples
    mean = X.mean(axis=0)
    exact_var, exact_cov, var_mean_exact, mean_exact = _exact_variance(task, mdp, horizon, pol, theta, opts,
                                                                       sample_kw)
    withheld = False
    if exact_cov is not None:
        res = unbiased_test(X, target, cov=exact_cov)
        # the chi-square reference is a large-sample one: with fewer than ~10 episodes per
        # degree of freedom its false-alarm rate is far above nominal (docs/calibration.md),
        # so the statistic is reported and the p-value withheld
        withheld = task.n_episodes < 10 * res.dof
    elif task.n_episodes >= 10 * X.shape[1]:  # Hotelling only with ample samples per dimension
        res = unbiased_test(X, target)
    else:
        res = None
    err = mean - grad
    # largest coordinate-wise z-score of the bias, |mean_i - E_i| / (sd_i / sqrt(N)), over
    # the coordinates that vary in the sample (NaN if none does; rare events may not show
    # up in a small batch, so a constant coordinate is no evidence of bias by itself)
    N = X.shape[0]
    sd = X.std(axis=0, ddof=1) if N > 1 else np.zeros(X.shape[1])
    vary = sd > 1e-12 * max(1.0, np.abs(X).max())
    dev = np.abs(mean - target)[vary]
    bias_z = float(np.max(dev / (sd[vary] / np.sqrt(N)))) if vary.any() else np.nan
    cos = float(mean @ grad / (np.linalg.norm(mean) * np.linalg.norm(grad))) if np.linalg.norm(mean) > 0 else np.nan
    return {
        "index": task.index, "mdp": task.mdp, "estimator": task.estimator, "n_episodes": task.n_episodes,
        "repeat": task.repeat, "horizon": horizon if task.estimator != "random_horizon" else "geometric",
        "grad_norm": float(np.linalg.norm(grad)),
        "expected_norm": float(np.linalg.norm(target)),
        "bias_exact_norm": float(np.linalg.norm(target - grad)),
        "mc_mean_norm": float(np.linalg.norm(mean)),
        "bias_z": bias_z,
        "bias_chi2": np.nan if res is None else float(res.statistic),
        "bias_dof": np.nan if res is None else float(res.dof),
        "bias_p": np.nan if res is None or withheld else float(res.p_value),
        "var_sampled": float(np.trace(np.cov(X, rowvar=False))) if X.shape[0] > 1 else np.nan,
        "var_exact": exact_var,
        "var_mean_exact": var_mean_exact,
        "mse": float(err @ err),
        "mse_exact": float(np.sum((mean_exact - grad) ** 2) + var_mean_exact),
        "cosine": cos,
        "checksum": float(np.sum(np.abs(X))),
    }


def read_journal(path) -> dict:
    """Finished rows of a journal written by :func:`run_sweep`, keyed by task index.

    A missing file raises :class:`~tabularpg._validation.MissingFileError`; a file that is
    not such a journal (a JSON line that is not an entry ``{"index", "key", "seed", "row"}``,
    or no entry at all) :class:`~tabularpg._validation.FileFormatError`, naming the path.
    A line that is not valid JSON (cut short by a kill) is ignored with a warning.
    """
    path = check_readable_file(path, "path")
    return {i: e["row"] for i, e in _journal_entries(path, strict=True).items()}


_ENTRY = 'a JSON-lines journal of tabularpg.sweep.run_sweep (one {"index", "key", "seed", "row"} object per line)'


def _journal_entries(path, *, strict: bool = False) -> dict:
    done = {}
    n_lines = n_bad = 0
    if path is not None and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except UnicodeDecodeError:
            raise FileFormatError(f"journal {os.fspath(path)!r} is not text; expected {_ENTRY}") from None
        for k, line in enumerate(lines):
            line = line.strip()
            if not line:
                continue
            n_lines += 1
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                # a line cut short by a kill: that task was not finished
                n_bad += 1
                warnings.warn(f"journal {path}: line {k + 1} is not valid JSON and is ignored", stacklevel=3)
                continue
            if (not isinstance(entry, dict) or not isinstance(entry.get("index"), int)
                    or isinstance(entry.get("index"), bool) or entry["index"] < 0
                    or not isinstance(entry.get("row"), dict)):
                raise FileFormatError(f"journal {os.fspath(path)!r}: line {k + 1} is not a journal entry; "
                                      f"expected {_ENTRY}; got {line[:60]!r}")
            done[entry["index"]] = entry
        if n_lines and n_bad == n_lines and (strict or n_lines > 1):
            raise FileFormatError(f"journal {os.fspath(path)!r} holds no valid line; expected {_ENTRY}")
    return done


def _task_key(task) -> str:
    return repr(task)


def run_sweep(tasks: Iterable[Any], *, task_fn: Callable[[Any, np.random.SeedSequence], dict] = study_task,
              backend: str = "sequential", n_jobs: int = 2, client: Any = None, address: str | None = None,
              seed: int = 0, journal: str | os.PathLike | None = None,
              progress: Callable[[Iterable], Iterable] | None = None,
              out: str | os.PathLike | None = None) -> list[dict]:
    """Run ``task_fn(task, seed_seq)`` for every task; return rows sorted by task index.

    Each task gets :func:`cell_seed` ``(task, seed)``, a seed sequence derived from the
    task's content (MDP, estimator, options, batch size, repeat, ...), not from its
    position, so its row does not depend on the backend, the number of workers, the order
    of completion, or which other tasks the grid holds (a grid and a superset grid give
    identical rows on their shared cells).

    Parameters
    ----------
    tasks : list of Task (or any picklable objects with a unique int ``index`` and a
        deterministic ``repr``, which then fixes their seed)
    task_fn : picklable callable ``(task, numpy.random.SeedSequence) -> dict``
        The dict is one row of the table and must be JSON-serializable when a journal is
        used. Default :func:`study_task`.
    backend : {"sequential", "joblib", "dask"}
        ``joblib``: local processes (joblib's loky) with ``n_jobs`` workers (``"processes"``
        is an older alias); ``dask``: ``client`` (a ``dask.distributed.Client``) or a new
        client of the scheduler at ``address`` (closed afterwards). Both need
        ``pip install 'tabularpg[parallel]'``.
    seed : int
        Root of the per-task seed sequences.
    journal : path, optional
        JSON-lines file. Each finished task appends ``{"index", "key", "seed", "row"}``
        as soon as it completes; a rerun with the same journal skips those tasks. A
        journal written for another task at the same index or another ``seed`` is refused.
    progress : callable, optional
        Wraps the iterable of finished rows (e.g. a tqdm bar).
    out : path, optional
        Also write the finished table there (``.csv`` or ``.parquet``; :func:`write_table`).

    Returns
    -------
    list of dict
        One row per task, in index order (:func:`to_dataframe` makes a DataFrame).
    """
    backend = BACKEND_ALIASES.get(backend, backend) if isinstance(backend, str) else backend
    # every argument, the output and the journal destinations are checked before any task runs
    if backend not in BACKENDS:
        raise ValidationError(f"`backend` must be one of {BACKENDS} (alias: 'processes' = 'joblib'); got {backend!r}")
    n_jobs = check_int(n_jobs, "n_jobs", minimum=-1)
    if n_jobs == 0:
        raise ValidationError("`n_jobs` must be >= 1, or -1 for all cores; got 0")
    seed = check_int(seed, "seed", minimum=0)
    _check_sweep_arguments(tasks, task_fn, progress, journal, out)
    tasks = list(tasks)
    indices = [t.index for t in tasks]
    if len(set(indices)) != len(indices) or any(not isinstance(i, (int, np.integer)) or i < 0 for i in indices):
        raise ValidationError("`tasks` must have distinct non-negative int `index` values (their grid positions)")
    children = {t.index: cell_seed(t, seed) for t in tasks}
    entries = _journal_entries(journal)
    keys = {t.index: _task_key(t) for t in tasks}
    for i, e in entries.items():
        if i in keys and (e.get("key") != keys[i] or e.get("seed") != seed):
            raise ValidationError(
                f"`journal` {journal} holds task {i} as {e.get('key')} with seed {e.get('seed')}; this sweep has "
                f"{keys[i]} with seed {seed}: use a new journal file for a different sweep")
    rows = {i: e["row"] for i, e in entries.items() if i in keys}
    todo = [t for t in tasks if t.index not in rows]

    def finished(task_index, row):
        rows[task_index] = row
        if journal is not None:
            line = json.dumps({"index": task_index, "key": keys[task_index], "seed": seed, "row": row},
                              default=_json_default)
            with open(journal, "a") as f:
                f.write(line + "\n")

    own = False
    if backend == "sequential":
        results: Iterable[Any] = ((t.index, task_fn(t, children[t.index])) for t in todo)
    elif backend == "joblib":
        try:
            from joblib import Parallel, delayed
        except ImportError as exc:
            raise ImportError("backend='joblib' needs joblib: pip install 'tabularpg[parallel]'") from exc
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_run_indexed)(task_fn, t, children[t.index]) for t in todo)
    else:
        try:
            from dask.distributed import Client, as_completed
        except ImportError as exc:
            raise ImportError("backend='dask' needs dask.distributed: pip install 'tabularpg[parallel]'") from exc
        if client is None:
            if address is None:
                raise ValidationError("backend='dask' needs a `client` or a scheduler `address`; got neither")
            client, own = Client(address), True
        futures = client.map(_run_indexed, [task_fn] * len(todo), todo, [children[t.index] for t in todo],
                             pure=False)
        results = (f.result() for f in as_completed(futures))
    if progress is not None:
        results = progress(results)
    try:
        for task_index, row in results:
            finished(task_index, row)
    finally:
        if own:
            client.close()
    table = [rows[t.index] for t in sorted(tasks, key=lambda t: t.index)]
    if out is not None:
        write_table(table, out)
    return table


def _check_sweep_arguments(tasks, task_fn, progress, journal, out):
    """Boundary checks of :func:`run_sweep` that must pass before the first task runs."""
    for t in check_sequence(tasks, "tasks"):
        if not hasattr(t, "index"):
            raise ArgumentTypeError(f"`tasks` must hold Task objects (with an int `index`); got {t!r} "
                                    f"({type(t).__name__}); build them with grid(...)")
    if not callable(task_fn):
        raise ArgumentTypeError(f"`task_fn` must be callable (task, seed_seq) -> dict; got {type(task_fn).__name__}")
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(f"`progress` must be callable or None; got {type(progress).__name__}")
    if journal is not None:
        check_writable_path(journal, "journal")
        if os.path.exists(journal):
            _journal_entries(journal)  # a foreign file is refused now, not after the tasks
            with open(journal, "rb+") as f:  # a line cut short by a kill must not swallow the next one
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
    if out is not None:
        _check_table_path(out, "out")


def _check_table_path(path, name):
    path = check_writable_path(path, name, suffixes=TABLE_SUFFIXES)
    if path.lower().endswith(".parquet"):
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"`{name}` {path!r}: Parquet tables need pandas and pyarrow: "
                              "pip install 'tabularpg[parallel]'") from exc
    return path


def _run_indexed(fn, task, seed_seq):
    return task.index, fn(task, seed_seq)


def _json_default(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def write_table(rows, path) -> None:
    """Write rows as CSV (``.csv``, standard library) or Parquet (``.parquet``, needs pandas
    and pyarrow). Columns: the union of the rows' keys, in order of first appearance."""
    rows = _check_rows(rows)
    path = _check_table_path(path, "path")
    if path.lower().endswith(".parquet"):
        to_dataframe(rows).to_parquet(path, index=False)
        return
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _check_rows(rows):
    rows = check_sequence(rows, "rows")
    for r in rows:
        if not isinstance(r, dict):
            raise ArgumentTypeError(f"`rows` must hold dicts (one per row); got {type(r).__name__}")
    return rows


def to_dataframe(rows):
    """Rows as a pandas DataFrame (needs pandas: ``pip install 'tabularpg[parallel]'``)."""
    rows = _check_rows(rows)
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("tables as DataFrames need pandas: pip install 'tabularpg[parallel]'") from exc
    return pd.DataFrame(list(rows))


def task_dict(task: Task) -> dict:
    """A task as a plain dict (for logs)."""
    check_instance(task, Task, "task", "a tabularpg.sweep.Task")
    return asdict(task)
