r"""Exact moments of Monte Carlo gradient estimators, by enumerating trajectories.

For a finite horizon ``T`` (the MDP's, or a truncation), every trajectory
:math:`\tau = (s_0, a_0, s_1, \ldots)` with positive probability
:math:`p(\tau) = \mu(s_0)\prod_t b(a_t|s_t) P(s_{t+1}|s_t, a_t)` (``b = pi_theta`` on-policy)
is listed once, as one episode of a :class:`~tabularpg.sampling.Batch`; the estimator's
per-episode estimate :math:`X(\tau)` is computed by the same code that handles sampled
batches, and

.. math::
    E[X] = \sum_\tau p(\tau) X(\tau), \qquad
    \mathrm{Cov}[X] = \sum_\tau p(\tau) (X(\tau) - E X)(X(\tau) - E X)^\top .

This is the independent check of the recursion (:mod:`tabularpg.moments.recursion`),
usable on small cases only. Batch-level baselines (``"mean"``, ``"leave_one_out"``,
``"optimal"``) couple the episodes of a batch, so a per-episode law does not describe
them; see :func:`tabularpg.moments.exact_batch_moments`. :func:`optimal_constant_baseline`
gives the population counterpart :math:`b^*_i = E[X_i Y_i] / E[Y_i^2]` of ``"optimal"`` by
enumeration (for REINFORCE :math:`Y = \nabla\log p(\tau)`, so
:math:`b^*_i = E[s_i^2 G]/E[s_i^2]`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validation as _v
from .._validation import (
    EnumerationTooLargeError,
    ValidationError,
    check_int,
    check_prob_table,
)
from ..estimators import BATCH_BASELINES, estimate
from ..mdp import MDP
from ..policies import Policy
from ..sampling import Batch

__all__ = ["Moments", "enumerate_moments", "enumerate_trajectories", "optimal_constant_baseline"]


@dataclass(frozen=True)
class Moments:
    """Exact ``mean`` (theta.size,), ``cov`` (theta.size, theta.size) and second moment
    ``second`` of the per-episode estimate (of the batch mean, for
    :func:`~tabularpg.moments.exact_batch_moments`); ``n_trajectories`` is the number of
    trajectories enumerated (None for the recursion) and ``method`` how they were computed."""

    mean: np.ndarray
    cov: np.ndarray
    second: np.ndarray
    n_trajectories: int | None = None
    method: str = "recursion"


def enumerate_trajectories(mdp: MDP, pi, horizon=None, *, max_trajectories: int = 200_000,
                           behavior=None):
    """Every trajectory of length ``<= horizon`` with its probability.

    Returns ``(batch, prob)``: a :class:`Batch` with one episode per trajectory and
    ``prob`` (n,) summing to one. With ``behavior`` (S, A), actions follow it and the
    batch carries ``behavior_logp`` (for importance-sampling estimators). ``horizon``
    defaults to the MDP's finite horizon.
    """
    _v.check_problem(mdp, max_trajectories=max_trajectories)
    if horizon is None:
        if mdp.horizon is None:
            raise ValidationError("`horizon` is required for an infinite-horizon MDP")
        horizon = mdp.horizon
    horizon = check_int(horizon, "horizon", minimum=1)
    S, A = mdp.n_states, mdp.n_actions
    act = check_prob_table(pi if behavior is None else behavior, S, A,
                           name="behavior" if behavior is not None else "pi")
    P = mdp.P_dense()
    s = np.flatnonzero(mdp.mu > 0)
    prob = mdp.mu[s].astype(float)
    hist_s: list[np.ndarray] = []
    hist_a: list[np.ndarray] = []
    hist_n: list[np.ndarray] = []
    alive = np.ones(s.size, dtype=bool)
    ended = np.zeros(s.size, dtype=bool)
    for t in range(horizon):
        # expand every alive prefix by (a, s') with positive probability
        w = act[s][:, :, None] * P[s]  # (n, A, S)
        w[~alive] = 0.0
        n_idx, a_idx, s2_idx = np.nonzero(w)
        dead = np.flatnonzero(~alive)
        total = n_idx.size + dead.size
        if total > max_trajectories:
            raise EnumerationTooLargeError(
                f"enumerating trajectories of horizon {horizon} would need more than {max_trajectories} "
                f"trajectories (reached {total} at t = {t}); raise `max_trajectories` or shorten the horizon")
        parent = np.concatenate([n_idx, dead])
        prob = np.concatenate([prob[n_idx] * w[n_idx, a_idx, s2_idx], prob[dead]])
        hist_s = [h[parent] for h in hist_s] + [np.concatenate([s[n_idx], np.zeros(dead.size, dtype=int)])]
        hist_a = [h[parent] for h in hist_a] + [np.concatenate([a_idx, np.zeros(dead.size, dtype=int)])]
        hist_n = [h[parent] for h in hist_n] + [np.concatenate([s2_idx, np.zeros(dead.size, dtype=int)])]
        was_alive = np.concatenate([np.ones(n_idx.size, bool), np.zeros(dead.size, bool)])
        ended = np.concatenate([ended[n_idx], ended[dead]])
        term_now = was_alive & mdp.terminal[hist_n[-1]]
        ended = ended | term_now
        s = hist_n[-1].copy()
        alive = was_alive & ~term_now
        if not alive.any():
            break
    T = len(hist_s)
    states = np.stack(hist_s, axis=1)
    actions = np.stack(hist_a, axis=1)
    next_states = np.stack(hist_n, axis=1)
    # alive steps: prefix until (and including) the terminating step
    n = prob.size
    lengths = np.full(n, T)
    term_flags = mdp.terminal[next_states] & (np.arange(T)[None, :] >= 0)
    first_term = np.where(term_flags.any(axis=1), np.argmax(term_flags, axis=1) + 1, T)
    lengths = np.minimum(lengths, first_term)
    alive_m = np.arange(T)[None, :] < lengths[:, None]
    states, actions, next_states = (np.where(alive_m, x, 0) for x in (states, actions, next_states))
    if mdp.R.ndim == 3:
        rewards = mdp.R[states, actions, next_states]
    else:
        rewards = mdp.r_sa[states, actions]
    rewards = np.where(alive_m, rewards, 0.0)
    terminated = np.zeros((n, T), dtype=bool)
    e = np.flatnonzero(first_term <= T) if mdp.terminal.any() else np.array([], dtype=int)
    e = e[term_flags[e].any(axis=1)] if e.size else e
    terminated[e, lengths[e] - 1] = True
    natural = mdp.horizon is not None and horizon == mdp.horizon
    truncated = ~terminated.any(axis=1) & (lengths == horizon) & (not natural)
    blogp = None
    if behavior is not None:
        with np.errstate(divide="ignore"):
            blogp = np.where(alive_m, np.log(act[states, actions]), 0.0)
    batch = Batch(states=states, actions=actions, rewards=rewards, next_states=next_states, alive=alive_m,
                  terminated=terminated, lengths=lengths.astype(np.int64), gamma=mdp.gamma, horizon=horizon,
                  truncated=truncated, behavior_logp=blogp)
    return batch, prob


def enumerate_moments(mdp: MDP, policy: Policy, theta, estimator, horizon=None, *, max_trajectories: int = 200_000,
                      behavior=None, **options) -> Moments:
    r"""Exact mean and covariance of the per-episode estimate of ``estimator``.

    Parameters
    ----------
    mdp, policy, theta
    estimator : str or Estimator
    horizon : int, optional
        Trajectory length (defaults to the MDP's finite horizon; required otherwise).
    max_trajectories : int
        Refuse (``EnumerationTooLargeError``) when more trajectories would be needed.
    behavior : ndarray of shape (S, A), optional
        Behavior policy for the importance-sampling estimators.
    **options
        Passed to the estimator (``baseline``, ``critic``, ``lam``, ...).
    """
    _v.check_problem(mdp, policy, max_trajectories=max_trajectories)
    if isinstance(options.get("baseline"), str) and options["baseline"] in BATCH_BASELINES:
        raise ValidationError(f"baseline={options['baseline']!r} couples the episodes of a batch; exact "
                              "per-episode moments are defined for constant, time- or state-dependent baselines")
    if horizon is None:
        if mdp.horizon is None:
            raise ValidationError("`horizon` is required for an infinite-horizon MDP")
        horizon = mdp.horizon
    theta = policy.check_theta(theta)
    batch, prob = enumerate_trajectories(mdp, policy.probs(theta), horizon, max_trajectories=max_trajectories,
                                         behavior=behavior)
    X = estimate(batch, policy, theta, estimator, **options).samples
    mean = prob @ X
    second = (X * prob[:, None]).T @ X
    D = X - mean
    cov = (D * prob[:, None]).T @ D
    return Moments(mean=mean, cov=0.5 * (cov + cov.T), second=0.5 * (second + second.T), n_trajectories=prob.size,
                   method="enumerate")


def optimal_constant_baseline(mdp: MDP, policy: Policy, theta, estimator="reinforce", horizon=None, *,
                              per_component: bool = True, max_trajectories: int = 200_000) -> np.ndarray | float:
    r"""Exact variance-minimizing constant baseline (Greensmith, Bartlett, Baxter 2004), by enumeration.

    Write the per-episode estimate with constant baseline ``b`` as :math:`X - b\,Y`
    (``X``: no baseline; ``Y``: the score contracted with the baseline's multiplier, i.e.
    :math:`\nabla\log p(\tau)` for ``reinforce`` and :math:`\sum_t \gamma^t\nabla\log\pi(a_t|s_t)`
    for ``reward_to_go``). Then

    .. math::
        b^*_i = \frac{E[X_i Y_i]}{E[Y_i^2]} \quad (\text{per component; 0 where } E[Y_i^2] = 0),
        \qquad b^* = \frac{E[X^\top Y]}{E\|Y\|^2} \quad (\text{one constant}),

    and any other constant ``b`` has excess total variance :math:`E\|Y\|^2 (b - b^*)^2` (one
    constant) or :math:`E[Y_i^2](b_i - b_i^*)^2` per component. ``baseline="optimal"``
    estimates the per-component :math:`b^*_i` from the batch (leave one out).

    Parameters
    ----------
    mdp, policy, theta
    estimator : {"reinforce", "reward_to_go", "reward_to_go_undiscounted"}
    horizon : int, optional
        As in :func:`exact_moments`.
    per_component : bool
        ``True``: array of shape (theta.size,); ``False``: one float.
    max_trajectories : int

    Returns
    -------
    ndarray of shape (theta.size,) or float

    References
    ----------
    Greensmith, Bartlett, Baxter (2004), "Variance reduction techniques for gradient
    estimates in reinforcement learning", JMLR 5.

    Examples
    --------
    One-step bandit: the score of action ``a`` is ``e_a - pi`` and ``G = r_a``, so
    ``b*_i = sum_a pi_a s_ai^2 r_a / sum_a pi_a s_ai^2``:

    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> pol, theta = TabularSoftmax(1, 2), np.array([[0.5, -0.5]])
    >>> b = optimal_constant_baseline(envs.bandit([1.0, 0.0]), pol, theta)
    >>> pi = pol.probs(theta)[0]
    >>> s2 = (np.eye(2) - pi) ** 2
    >>> bool(np.allclose(b, (pi * [1.0, 0.0]) @ s2 / (pi @ s2)))
    True
    """
    _v.check_problem(mdp, policy, max_trajectories=max_trajectories, per_component=per_component)
    name = estimator if isinstance(estimator, str) else getattr(estimator, "name", None)
    if name not in ("reinforce", "reward_to_go", "reward_to_go_undiscounted"):
        raise ValidationError("`estimator` must be 'reinforce', 'reward_to_go' or 'reward_to_go_undiscounted' "
                              f"(the estimators that take a baseline); got {estimator!r}")
    if horizon is None:
        if mdp.horizon is None:
            raise ValidationError("`horizon` is required for an infinite-horizon MDP")
        horizon = mdp.horizon
    theta = policy.check_theta(theta)
    batch, prob = enumerate_trajectories(mdp, policy.probs(theta), horizon, max_trajectories=max_trajectories)
    X = estimate(batch, policy, theta, name).samples
    Y = X - estimate(batch, policy, theta, name, baseline=1.0).samples
    if not per_component:
        den = float(prob @ np.sum(Y * Y, axis=1))
        return float(prob @ np.sum(X * Y, axis=1)) / den if den > 0 else 0.0
    num, den = prob @ (X * Y), prob @ (Y * Y)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
