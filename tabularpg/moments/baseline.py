r"""Exact variance-minimizing baselines: constant (per component), state and time-state.

For ``reinforce``, ``reward_to_go`` and ``reward_to_go_undiscounted`` a time-state
baseline ``b`` enters as :math:`X(b) = X_0 - \sum_{t,s} b_{t,s} Y_{t,s}` with :math:`X_0`
the estimate without baseline and :math:`Y_{t,s} = m_t 1\{s_t = s\} \nabla\log\pi(a_t|s_t)`
the baseline's multiplier (:math:`m_t = \gamma^t` for ``reward_to_go``, 1 otherwise; a
state baseline is :math:`b_{t,s} = b_s`). Every :math:`Y_{t,s}` has mean zero, so

.. math::
    \mathrm{tr}\,\mathrm{Cov}\,X(b) = t_0 - 2 c^\top b + b^\top Q b, \qquad
    c_{t,s} = E[X_0^\top Y_{t,s}], \quad Q = \mathrm{diag}(E\|Y_{t,s}\|^2),

an exact quadratic. ``Q`` is diagonal for every policy class (multipliers at different
steps are uncorrelated because the score has mean zero given the past; at one step only
the current state's is nonzero), so the minimizer is :math:`b^*_{t,s} = c_{t,s}/Q_{t,s}`,
and :math:`b^*_s = \sum_t c_{t,s} / \sum_t Q_{t,s}` for a state baseline; any other ``b``
pays :math:`(b - b^*)^\top Q (b - b^*)`. ``c`` needs one backward pass (tail moments) and
one forward pass (the past steps' terms and their coupling to the future return),
:func:`tabularpg.moments.recursion.baseline_terms`. ``V^pi`` is one such baseline, so it
is never better than ``b^*``.
"""
from __future__ import annotations

import numpy as np

from .._validation import ValidationError, check_bool, check_choice, check_int
from . import recursion as _rec

__all__ = ["baseline_quadratic", "optimal_baseline"]

_KINDS = ("constant", "state", "time_state")
_ESTIMATORS = ("reinforce", "reward_to_go", "reward_to_go_undiscounted")


def _weight_moments(mdp, policy, theta, name, T):
    """W-space ``E[W0 V^T]`` (non-symmetric), ``E[V V^T]`` and the contraction ``C``."""
    from . import _plan, _score_table

    S, A = mdp.n_states, mdp.n_actions
    pi = policy.probs(theta)
    space = _rec.WSpace(None, S, A)
    m = (lambda t: mdp.gamma ** t) if name == "reward_to_go" else (lambda t: 1.0)
    ones = np.ones((S, A))
    base = _plan("reward_to_go" if name == "reinforce" else name, mdp, pi, T, False, {}, None)
    plan_v = _rec.Plan(f=lambda t: m(t) * ones, eta=lambda t: 0.0, h=base.h, d=base.d, kappa=base.kappa,
                       k1=pi, k2=pi)
    _, _, VV = _rec.tail_pair(mdp, plan_v, plan_v, space, T)
    if name == "reinforce":
        # V = N (the counts) and W0 = R N, so E[W0 V^T] = E[R N N^T] is symmetric: polarization
        none = lambda t: None
        _, W0W0 = _rec.reinforce_moments(mdp, none, pi, space, T)
        _, DD = _rec.reinforce_moments(mdp, lambda t: -ones, pi, space, T)
        WV = 0.5 * (W0W0 + VV - DD)
    else:
        _, _, WV = _rec.tail_pair(mdp, base, plan_v, space, T)
    return WV, VV, _score_table(policy, theta, S, A).T   # C (p, S*A): the scores as columns


def _check(mdp, policy, theta, estimator, horizon):
    from . import _check_common, _horizon, _name

    theta = _check_common(mdp, policy, theta, horizon=horizon, estimator=estimator)
    name = _name(estimator)
    if name not in _ESTIMATORS:
        raise ValidationError(f"`estimator` must be one of {_ESTIMATORS} (the estimators that take a baseline); "
                              f"got {estimator!r}")
    T, _ = _horizon(mdp, horizon, name)
    if T is None:
        raise ValidationError("the optimal baseline needs a finite `horizon` (the sampling truncation)")
    return theta, name, T


def baseline_quadratic(mdp, policy, theta, estimator="reward_to_go", horizon=None, *, kind: str = "state"):
    r"""The exact quadratic :math:`\mathrm{tr\,Cov}\,X(b) = t_0 - 2c^\top b + b^\top Q b` of a
    state baseline ``b`` (S,) (``kind="state"``) or a time-state baseline flattened to
    (T*S,) (``kind="time_state"``, row-major ``b[t, s]``); returns ``(t0, c, Q)``.

    ``Q`` is diagonal for every policy class: the baseline's multipliers at different
    steps are uncorrelated (the score has mean zero given the past) and at one step only
    the current state's is nonzero. ``c`` comes from one backward and one forward pass
    (:func:`tabularpg.moments.recursion.baseline_terms`).
    """
    from . import _score_table, exact_moments

    check_choice(kind, "kind", ("state", "time_state"))
    theta, name, T = _check(mdp, policy, theta, estimator, horizon)
    S, A = mdp.n_states, mdp.n_actions
    psi = _score_table(policy, theta, S, A)                                   # (S*A, p)
    c, q = _rec.baseline_terms(mdp, policy.probs(theta), psi, name, T)
    if kind == "state":
        c, q = c.sum(0), q.sum(0)
    else:
        c, q = c.ravel(), q.ravel()
    t0 = float(np.trace(exact_moments(mdp, policy, theta, name, horizon).cov))
    return t0, c, np.diag(q)


def optimal_baseline(mdp, policy, theta, estimator="reinforce", horizon=None, *, kind: str = "constant",
                     per_component: bool = True, method: str = "auto", max_trajectories: int = 200_000):
    r"""Exact variance-minimizing baseline.

    Parameters
    ----------
    mdp, policy, theta
    estimator : {"reinforce", "reward_to_go", "reward_to_go_undiscounted"}
    horizon : int, optional
        The sampling horizon (the MDP's finite horizon by default).
    kind : {"constant", "state", "time_state"}
        ``"constant"`` (Greensmith, Bartlett and Baxter 2004): per parameter component
        :math:`b^*_i = E[X_i Y_i]/E[Y_i^2]` (``per_component=True``, shape
        (theta.size,)), or one constant :math:`E[X^\top Y]/E\|Y\|^2` (a float), with ``Y``
        the baseline's multiplier. ``"state"``: the state baseline
        :math:`b^*` (S,) minimizing the trace of the covariance, ``c / diag(Q)`` of
        :func:`baseline_quadratic` (0 at states never visited); ``"time_state"``: the
        time-state baseline (T, S), likewise.
    per_component : bool
        ``kind="constant"`` only.
    method : {"auto", "recursion", "enumerate"}
        Both kinds by the recursion (cross moments of the weight tables); ``"enumerate"``
        lists trajectories (``kind="constant"`` only, small cases; ``max_trajectories``).

    Returns
    -------
    ndarray of shape (theta.size,), (S,) or (T, S), or float

    References
    ----------
    Greensmith, Bartlett, Baxter (2004), "Variance reduction techniques for gradient
    estimates in reinforcement learning", JMLR 5.

    Examples
    --------
    The optimal state baseline beats ``V^pi`` (the usual choice) on the exact trace:

    >>> import numpy as np
    >>> from tabularpg import envs, exact, TabularSoftmax
    >>> from tabularpg.moments import exact_moments
    >>> mdp, pol = envs.garnet(4, 2, 2, rng=0, horizon=5, gamma=0.9), TabularSoftmax(4, 2)
    >>> th = np.random.default_rng(0).normal(size=(4, 2))
    >>> b = optimal_baseline(mdp, pol, th, "reward_to_go", kind="state")
    >>> V = exact.analyze(mdp, pol.probs(th)).v            # (T, S)
    >>> tr = lambda base: np.trace(exact_moments(mdp, pol, th, "reward_to_go", baseline=base).cov)
    >>> bool(tr(b) <= tr(V[0]))
    True
    """
    check_choice(kind, "kind", _KINDS)
    check_choice(method, "method", ("auto", "recursion", "enumerate"))
    check_bool(per_component, "per_component")
    check_int(max_trajectories, "max_trajectories", minimum=1)
    if kind == "constant" and method == "enumerate":
        from .enumeration import optimal_constant_baseline

        return optimal_constant_baseline(mdp, policy, theta, estimator, horizon, per_component=per_component,
                                         max_trajectories=max_trajectories)
    if method == "enumerate":
        raise ValidationError(f"kind={kind!r} is computed by the recursion; method='enumerate' is for kind='constant'")
    if kind == "constant":
        theta, name, T = _check(mdp, policy, theta, estimator, horizon)
        WV, VV, C = _weight_moments(mdp, policy, theta, name, T)
        xy = np.einsum("pi,ij,pj->p", C, WV, C)      # E[X_i Y_i]
        yy = np.einsum("pi,ij,pj->p", C, VV, C)      # E[Y_i^2]
        if not per_component:
            return float(xy.sum() / yy.sum()) if yy.sum() > 0 else 0.0
        return np.divide(xy, yy, out=np.zeros_like(xy), where=yy > 1e-300)
    _, c, Q = baseline_quadratic(mdp, policy, theta, estimator, horizon, kind=kind)
    q = np.diag(Q)
    b = np.divide(c, q, out=np.zeros_like(c), where=q > 1e-300 * max(1.0, float(q.max(initial=0.0))))
    return b if kind == "state" else b.reshape(-1, mdp.n_states)
