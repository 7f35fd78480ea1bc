r"""Exact moments of Monte Carlo gradient estimators.

* :func:`exact_moments` — exact mean, covariance and second moment of the per-episode
  estimate of every registered estimator, by a backward recursion over time on moments
  conditioned on the current state (:mod:`tabularpg.moments.recursion`; polynomial in
  S, A and the horizon, no trajectory listed), or by enumerating trajectories
  (``method="enumerate"``, :mod:`tabularpg.moments.enumeration`), the independent check.
* :func:`exact_batch_moments` — exact mean and covariance of the N-episode estimate
  ``.mean`` for the batch-coupled baselines ``"mean"`` and ``"leave_one_out"``.
* :func:`optimal_baseline` — the variance-minimizing constant (Greensmith, Bartlett and
  Baxter 2004), state or time-state baseline, exactly; :func:`baseline_quadratic` the
  exact trace of the covariance as a quadratic in a (time-)state baseline.
* :func:`recursion_checks` — recursion = enumeration, the rows of ``tabularpg verify``.
"""
from __future__ import annotations

import numpy as np

from .. import _validation as _v
from .._validation import (
    ArgumentTypeError,
    ShapeError,
    ValidationError,
    as_float_array,
    check_choice,
    check_float,
    check_int,
    check_prob_table,
)
from ..estimators import BATCH_BASELINES, REGISTRY, Estimator
from ..mdp import MDP
from ..policies import LinearSoftmax, Policy, TabularSoftmax
from . import recursion as _rec

# the submodules below import this module's helpers inside their functions, so they can
# be imported before the helpers are defined
from .baseline import baseline_quadratic, optimal_baseline
from .batch import exact_batch_moments
from .checks import recursion_checks
from .enumeration import Moments, enumerate_moments, enumerate_trajectories

__all__ = [
    "METHODS",
    "Moments",
    "baseline_quadratic",
    "enumerate_trajectories",
    "exact_batch_moments",
    "exact_moments",
    "optimal_baseline",
    "recursion_checks",
]

METHODS = ("auto", "recursion", "enumerate")


# ----------------------------------------------------------------------------- helpers
def _name(estimator):
    if isinstance(estimator, str):
        if estimator not in REGISTRY:
            raise ValidationError(f"`estimator`: unknown estimator {estimator!r}; registered: "
                                  f"{', '.join(sorted(REGISTRY))}")
        return estimator
    if isinstance(estimator, Estimator):
        return estimator.name if REGISTRY.get(estimator.name) is estimator else None
    raise ArgumentTypeError(f"`estimator` must be a registry name or an Estimator; got {type(estimator).__name__}")


def _space(policy: Policy, theta, S, A):
    """Weight-table space for tabular policies (or when p >= S*A), else the score table."""
    if isinstance(policy, TabularSoftmax) or policy.n_params >= S * A:
        return _rec.WSpace(None, S, A)
    return _rec.WSpace(_score_table(policy, theta, S, A), S, A)


def _score_table(policy, theta, S, A):
    """Scores of every (s, a), shape (S*A, theta.size): ``contract_table`` of the unit
    tables, in chunks that keep the (chunk, S, A) input near 4e6 entries."""
    SA = S * A
    if isinstance(policy, LinearSoftmax) and type(policy).contract_table is Policy.contract_table:
        phi = policy.phi                     # score(s, a) = phi(s, a) - sum_b pi(b|s) phi(s, b)
        return (phi - np.einsum("sb,sbd->sd", policy.probs(theta), phi)[:, None, :]).reshape(SA, -1)
    step = max(1, min(SA, 4_000_000 // SA))
    out = np.empty((SA, policy.n_params))
    for i in range(0, SA, step):
        k = min(step, SA - i)
        unit = np.zeros((k, SA))
        unit[np.arange(k), i + np.arange(k)] = 1.0
        out[i:i + k] = np.asarray(policy.contract_table(theta, unit.reshape(k, S, A))).reshape(k, -1)
    return out


def _to_theta(policy, theta, space, mean, second):
    """Map W-space moments through the policy's contraction ``C``: ``C m``, ``C M C^T``."""
    S, A = space.S, space.A
    if space.psi is not None:
        return mean, second
    SA = S * A
    mean_t = np.asarray(policy.contract_table(theta, mean.reshape(S, A))).ravel()
    left = np.asarray(policy.contract_table(theta, second.reshape(SA, S, A))).reshape(SA, -1)   # M C^T
    sec = np.asarray(policy.contract_table(theta, left.T.reshape(-1, S, A))).reshape(left.shape[1], -1)
    return mean_t, sec


def _finish(mean, second, method="recursion", n=None):
    second = 0.5 * (second + second.T)
    cov = second - np.outer(mean, mean)
    return Moments(mean=mean, cov=0.5 * (cov + cov.T), second=second, n_trajectories=n, method=method)


def _horizon(mdp: MDP, horizon, name):
    """(T or None, truncated): T steps (None = untruncated), truncated = cut short of
    the MDP's own end (so critics bootstrap at the cut)."""
    if horizon is None:
        return mdp.horizon, False
    if isinstance(horizon, str):
        raise ValidationError(f"`horizon` must be an int or None; got {horizon!r}")
    T = check_int(horizon, "horizon", minimum=1)
    if mdp.horizon is not None and T > mdp.horizon:
        raise ValidationError(f"`horizon` must be <= the MDP's horizon {mdp.horizon}; got {T}")
    natural = mdp.horizon is not None and T == mdp.horizon
    return T, not natural


def _state_fn(x, name, S, T, *, extra_time=False):
    """A state (S,) or time-state (T', S) table as ``t -> (S,)``; time-indexed tables
    need T' >= T (+1 with ``extra_time``) and a finite T."""
    x = as_float_array(x, name)
    if x.shape == (S,):
        return (lambda t: x), False
    need = None if T is None else T + (1 if extra_time else 0)
    if x.ndim == 2 and x.shape[1] == S:
        if need is None:
            raise ValidationError(f"`{name}` is time-indexed {x.shape}; untruncated moments (horizon=None) need "
                                  f"a stationary (S,) = ({S},) table")
        if x.shape[0] >= need:
            return (lambda t: x[t]), True
    raise ShapeError(f"`{name}` must have shape (S,) = ({S},) or (T, S) with T >= {need}; got {x.shape}")


def _q_fn(x, S, A, T):
    x = as_float_array(x, "critic")
    if x.shape == (S, A):
        return (lambda t: x), False
    if x.ndim == 3 and x.shape[1:] == (S, A):
        if T is None:
            raise ValidationError(f"`critic` is time-indexed {x.shape}; untruncated moments (horizon=None) need "
                                  f"a stationary (S, A) table")
        if x.shape[0] >= T:
            return (lambda t: x[t]), True
    raise ShapeError(f"`critic` must have shape (S, A) = {(S, A)} or (T, S, A) with T >= {T}; got {x.shape}")


def _baseline_fn(baseline, S, T):
    """``t -> b_t (S,)`` for a constant, time (T,)/(T, 1), state (S,) or time-state (T, S)
    baseline (the shapes of :func:`tabularpg.estimators.estimate`)."""
    if baseline is None:
        return None, False
    b = as_float_array(baseline, "baseline")
    if b.ndim == 0:
        return (lambda t: np.full(S, float(b))), False
    if T is not None and (b.shape == (T, 1) or (b.shape == (T,) and b.shape != (S,))):
        bt = b.reshape(-1)
        return (lambda t: np.full(S, bt[t])), True
    if b.shape == (S,) or (b.ndim == 2 and b.shape[1] == S):
        return _state_fn(b, "baseline", S, T)
    raise ShapeError(f"`baseline` must be a scalar, shape (T,) = ({T},), (S,) = ({S},) or (T, S); got {b.shape}")


def _behavior_table(behavior, S, A):
    if behavior is None:
        raise ValidationError("importance-sampling estimators need `behavior` (the (S, A) behavior policy, "
                              "or a (Policy, theta) pair)")
    if isinstance(behavior, tuple):
        pol, th = behavior
        return pol.probs(th)
    return check_prob_table(behavior, S, A, name="behavior")


def _kernels_is(pi, b):
    """First- and second-order kernels under behavior ``b``: ``b rho = pi`` and
    ``b rho^2 = pi^2 / b`` on actions ``b`` can take (others never occur)."""
    pos = b > 0
    k1 = np.where(pos, pi, 0.0)
    k2 = np.divide(pi * pi, b, out=np.zeros_like(pi), where=pos)
    return k1, k2


def _plan(name, mdp: MDP, pi, T, truncated, options, behavior):
    """The :class:`~tabularpg.moments.recursion.Plan` of a tail-family estimator."""
    S, A = mdp.n_states, mdp.n_actions
    g = mdp.gamma
    mod = _rec._Model(mdp)
    r_e = mod.r                     # rewards on the stored transitions (see recursion._Model)
    disc = lambda t: g ** t
    none = lambda t: None
    if name in ("reward_to_go", "reward_to_go_undiscounted"):
        zeta = g if name == "reward_to_go" else 1.0
        bfn, timed = _baseline_fn(options.get("baseline"), S, T)
        f = none if bfn is None else (lambda t: -(zeta ** t) * np.repeat(bfn(t)[:, None], A, axis=1))
        return _rec.Plan(f=f, eta=lambda t: zeta ** t, h=lambda t: r_e, d=none, kappa=g, k1=pi, k2=pi,
                         zeta=None if timed else zeta)
    if name == "importance_per_decision":
        k1, k2 = _kernels_is(pi, behavior)
        return _rec.Plan(f=none, eta=disc, h=lambda t: r_e, d=none, kappa=g, k1=k1, k2=k2, zeta=g)
    if name in ("q", "advantage", "all_action"):
        if options.get("critic") is None:
            raise ValidationError(f"estimator {name!r} needs `critic` (Q of shape (S, A) or (T, S, A))")
        qf, timed = _q_fn(options["critic"], S, A, T)
        if name == "all_action":
            return _rec.Plan(f=none, eta=lambda t: 0.0, h=none, d=lambda t: disc(t) * pi * qf(t), kappa=0.0,
                             k1=pi, k2=pi, zeta=None if timed else g)
        if name == "q":
            f = lambda t: disc(t) * qf(t)
        else:
            if options.get("value") is None:
                vf, vt = (lambda t: np.sum(pi * qf(t), axis=1)), False
            else:
                vf, vt = _state_fn(options["value"], "value", S, T)
            timed = timed or vt
            f = lambda t: disc(t) * (qf(t) - vf(t)[:, None])
        return _rec.Plan(f=f, eta=lambda t: 0.0, h=none, d=none, kappa=0.0, k1=pi, k2=pi,
                         zeta=None if timed else g)
    if name in ("td_residual", "gae"):
        if options.get("critic") is None:
            raise ValidationError(f"estimator {name!r} needs `critic` (V of shape (S,) or (T+1, S))")
        vf, timed = _state_fn(options["critic"], "critic", S, T, extra_time=True)
        nt = mdp.nonterminal
        rows_s, cols = mod.rows // A, mod.cols

        def h(t):   # delta_t(s, a, s') = r + gamma V_{t+1}(s') [continues] - V_t(s), on the entries
            boot = T is None or t + 1 < T or truncated
            v_next = vf(t + 1) * nt if boot else np.zeros(S)
            return r_e + g * v_next[cols] - vf(t)[rows_s]
        if name == "td_residual":
            kappa = 0.0
        else:
            lam = options.get("lam")
            kappa = g * check_float(0.95 if lam is None else lam, "lam", low=0.0, high=1.0)
        return _rec.Plan(f=none, eta=disc, h=h, d=none, kappa=kappa, k1=pi, k2=pi, zeta=None if timed else g)
    raise ValidationError(f"no recursion for estimator {name!r}")  # pragma: no cover


_OPTIONS = {n: set(REGISTRY[n].options) for n in REGISTRY}


def _recursion(mdp, policy, theta, name, horizon, behavior, options):
    S, A = mdp.n_states, mdp.n_actions
    unknown = set(options) - _OPTIONS[name]
    if unknown:
        raise ValidationError(f"estimator {name!r} got unknown options {sorted(unknown)}; "
                              f"valid: {sorted(_OPTIONS[name])}")
    pi = policy.probs(theta)
    space = _space(policy, theta, S, A)
    if name == "random_horizon":
        if mdp.horizon is not None or mdp.gamma >= 1.0:
            raise ValidationError("'random_horizon' is for infinite-horizon MDPs with gamma < 1")
        if horizon not in (None, "geometric"):
            raise ValidationError(f"'random_horizon' samples geometric horizons: pass horizon=None or 'geometric'; "
                                  f"got {horizon!r}")
        mean, second = _rec.random_horizon_moments(mdp, pi, space)
        return _to_theta(policy, theta, space, mean, second)
    T, truncated = _horizon(mdp, horizon, name)
    if name.startswith("importance"):
        behavior = _behavior_table(behavior, S, A)
    elif behavior is not None:
        raise ValidationError(f"`behavior` is for the importance-sampling estimators; got it for {name!r}")
    if name in ("reinforce", "importance_trajectory"):
        if T is None:
            raise ValidationError(f"{name!r} sums the score over the whole episode: untruncated moments "
                                  "(horizon=None) are not defined here; pass a finite `horizon`")
        if name == "reinforce":
            bfn, _ = _baseline_fn(options.get("baseline"), S, T)
            f = (lambda t: None) if bfn is None else (lambda t: -np.repeat(bfn(t)[:, None], A, axis=1))
            mean, second = _rec.reinforce_moments(mdp, f, pi, space, T)
        else:
            k1, k2 = _kernels_is(pi, behavior)
            mean, _ = _rec.reinforce_moments(mdp, lambda t: None, k1, space, T)
            _, second = _rec.reinforce_moments(mdp, lambda t: None, k2, space, T)
        return _to_theta(policy, theta, space, mean, second)
    plan = _plan(name, mdp, pi, T, truncated, options, behavior)
    mean, second = _rec.tail_moments(mdp, plan, space, T)
    return _to_theta(policy, theta, space, mean, second)


def _check_common(mdp, policy, theta, **options):
    """Boundary checks shared by the public functions: ``mdp``, ``policy`` of its (S, A),
    real ``theta`` of the policy's shape, and the named ``options`` (``horizon``,
    ``estimator``, ``max_trajectories``, ``behavior``, ...) by
    :func:`tabularpg._validation.check_problem`; returns the checked ``theta``."""
    theta = _v.check_problem(mdp, policy, theta=theta, **options)
    if np.iscomplexobj(theta):
        raise ValidationError("`theta` must be real for exact moments")
    return theta


# ----------------------------------------------------------------------------- public API
def exact_moments(mdp: MDP, policy: Policy, theta, estimator, horizon=None, *, method: str = "auto",
                  behavior=None, max_trajectories: int = 200_000, **options) -> Moments:
    r"""Exact mean and covariance of the per-episode estimate of ``estimator``.

    Parameters
    ----------
    mdp : MDP
    policy : Policy
    theta : ndarray of shape ``policy.theta_shape``
    estimator : str or Estimator
        A registered estimator (name or object); unregistered ones need ``method="enumerate"``.
    horizon : int, "geometric" or None
        Number of steps of the sampled episodes (a truncation of the MDP's). None: the
        MDP's finite horizon, or **untruncated** for an infinite-horizon MDP (the
        stationary fixed point of the recursion, see Notes). ``random_horizon`` uses
        geometric horizons (None or "geometric").
    method : {"auto", "recursion", "enumerate"}
        ``"recursion"``: backward recursion over time (:mod:`tabularpg.moments.recursion`),
        ``O(T (nnz(P) + S A) p)`` time and ``O(nnz(P) + S p + p^2 + T S)`` memory with
        ``p = S A`` for tabular policies and ``p = theta.size`` for smaller ones. ``"enumerate"``: every trajectory
        (the independent check; small cases only). ``"auto"``: the recursion for every
        registered estimator, enumeration for an unregistered one.
    behavior : ndarray of shape (S, A) or (Policy, theta), optional
        Behavior policy of the importance-sampling estimators (moments under it).
    max_trajectories : int
        Enumeration only: refuse (``EnumerationTooLargeError``) beyond this many.
    **options
        The estimator's options (``baseline``, ``critic``, ``value``, ``lam``).

    Returns
    -------
    Moments
        ``mean`` (theta.size,), ``cov`` and ``second`` (theta.size, theta.size).

    Notes
    -----
    The per-episode estimate is ``policy.contract_table(theta, W)`` of a random (S, A)
    table ``W``, so ``Cov = C Cov_W C^T`` with ``C`` the policy's linear contraction;
    the recursion carries ``E[W | s_t]``-type moments (see
    :mod:`tabularpg.moments.recursion`). Untruncated moments (``horizon=None`` on an
    infinite-horizon MDP) are the limits of truncations at ``H``, which differ from them
    by ``O(zeta^H)`` (``zeta = gamma`` for discounted estimators); they are computed by
    ``S x S`` linear solves whose residual is checked, and refused when infinite
    (``reinforce``, ``importance_trajectory``; ``reward_to_go_undiscounted`` without
    proper termination; importance weights whose squared-ratio kernel has spectral radius
    ``>= 1 / zeta^2``). Batch-coupled baselines: :func:`exact_batch_moments`.

    Examples
    --------
    The recursion equals the enumeration:

    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> mdp = envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9)
    >>> pol = TabularSoftmax(3, 2)
    >>> theta = np.random.default_rng(0).normal(size=(3, 2))
    >>> r = exact_moments(mdp, pol, theta, "reward_to_go", baseline=0.5)
    >>> e = exact_moments(mdp, pol, theta, "reward_to_go", baseline=0.5, method="enumerate")
    >>> bool(np.allclose(r.cov, e.cov, rtol=1e-12, atol=1e-14))
    True
    """
    theta = _check_common(mdp, policy, theta, horizon=horizon, estimator=estimator, behavior=behavior,
                          max_trajectories=max_trajectories)
    check_choice(method, "method", METHODS)
    if isinstance(options.get("baseline"), str):
        if options["baseline"] in BATCH_BASELINES:
            raise ValidationError(f"baseline={options['baseline']!r} couples the episodes of a batch; exact "
                                  "per-episode moments are defined for constant, time- or state-dependent baselines "
                                  "(use exact_batch_moments for the N-episode mean)")
        raise ValidationError(f"`baseline` must be a number, an array, or one of {BATCH_BASELINES}; "
                              f"got {options['baseline']!r}")
    name = _name(estimator)
    if method == "enumerate" or (method == "auto" and name is None):
        if horizon is None and mdp.horizon is None:
            raise ValidationError("enumeration needs a finite `horizon` on an infinite-horizon MDP")
        m = enumerate_moments(mdp, policy, theta, estimator, horizon, max_trajectories=max_trajectories,
                              behavior=None if behavior is None else _behavior_table(behavior, mdp.n_states,
                                                                                     mdp.n_actions), **options)
        return _finish(m.mean, m.second, "enumerate", m.n_trajectories)
    if name is None:
        raise ValidationError(f"no recursion for the unregistered estimator {estimator!r}; use method='enumerate'")
    mean, second = _recursion(mdp, policy, theta, name, horizon, behavior, options)
    return _finish(mean, second)

