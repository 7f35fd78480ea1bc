r"""Exact variance-minimizing baselines: constant (per component) and state-dependent.

For ``reinforce``, ``reward_to_go`` and ``reward_to_go_undiscounted`` a baseline ``b``
enters as :math:`X(b) = X_0 - \sum_s b_s Y_s` with :math:`X_0` the estimate without
baseline and :math:`Y_s = C V_s`, :math:`V_s = \sum_t m_t 1\{s_t = s\} e_{(s_t, a_t)}`
(:math:`m_t = \gamma^t` for ``reward_to_go``, 1 otherwise) the baseline's multiplier in
the weight table, ``C`` the policy's contraction. Every :math:`Y_s` has mean zero, so

.. math::
    \mathrm{tr}\,\mathrm{Cov}\,X(b) = t_0 - 2 c^\top b + b^\top Q b, \qquad
    c_s = E[X_0^\top Y_s], \quad Q_{ss'} = E[Y_s^\top Y_{s'}],

an exact quadratic whose minimizers solve :math:`Q b = c` (``Q`` is diagonal for
tabular policies: the score of ``(s, a)`` lives in row ``s``). ``c`` and ``Q`` are
block sums of :math:`C^\top C \odot E[W_0 V^\top]` and :math:`C^\top C \odot E[V V^\top]`,
cross moments of two weight tables given by one recursion pass
(:func:`tabularpg.moments.recursion.tail_pair`).
"""
from __future__ import annotations

import numpy as np

from .._validation import ValidationError
from . import recursion as _rec

__all__ = ["baseline_quadratic", "optimal_baseline"]

_KINDS = ("constant", "state")
_ESTIMATORS = ("reinforce", "reward_to_go", "reward_to_go_undiscounted")


def _weight_moments(mdp, policy, theta, name, T):
    """W-space ``E[W0 V^T]`` (non-symmetric), ``E[V V^T]`` and the contraction ``C``."""
    from . import _plan

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
    eye = np.eye(S * A).reshape(S * A, S, A)
    C = np.asarray(policy.contract_table(theta, eye)).reshape(S * A, -1).T   # (p, S*A)
    return WV, VV, C


def baseline_quadratic(mdp, policy, theta, estimator="reward_to_go", horizon=None):
    r"""The exact quadratic :math:`\mathrm{tr\,Cov}\,X(b) = t_0 - 2c^\top b + b^\top Q b`
    of a state baseline ``b`` (S,); returns ``(t0, c, Q)`` with shapes ``()``, (S,),
    (S, S). See the module docstring."""
    from . import _check_common, _horizon, _name, exact_moments

    theta = _check_common(mdp, policy, theta)
    name = _name(estimator)
    if name not in _ESTIMATORS:
        raise ValidationError(f"`estimator` must be one of {_ESTIMATORS} (the estimators that take a baseline); "
                              f"got {estimator!r}")
    T, _ = _horizon(mdp, horizon, name)
    if T is None:
        raise ValidationError("the optimal state baseline needs a finite `horizon` (the sampling truncation)")
    S, A = mdp.n_states, mdp.n_actions
    WV, VV, C = _weight_moments(mdp, policy, theta, name, T)
    G = C.T @ C                                                     # (SA, SA), block-diagonal if tabular
    c = (G * WV).reshape(S * A, S, A).sum(axis=(0, 2))
    Q = (G * VV).reshape(S, A, S, A).sum(axis=(1, 3))
    t0 = float(np.trace(exact_moments(mdp, policy, theta, name, horizon).cov))
    return t0, c, 0.5 * (Q + Q.T)


def optimal_baseline(mdp, policy, theta, estimator="reinforce", horizon=None, *, kind: str = "constant",
                     per_component: bool = True, method: str = "auto", max_trajectories: int = 200_000):
    r"""Exact variance-minimizing baseline.

    Parameters
    ----------
    mdp, policy, theta
    estimator : {"reinforce", "reward_to_go", "reward_to_go_undiscounted"}
    horizon : int, optional
        The sampling horizon (the MDP's finite horizon by default).
    kind : {"constant", "state"}
        ``"constant"`` (Greensmith, Bartlett and Baxter 2004): per parameter component
        :math:`b^*_i = E[X_i Y_i]/E[Y_i^2]` (``per_component=True``, shape
        (theta.size,)), or one constant :math:`E[X^\top Y]/E\|Y\|^2` (a float), with ``Y``
        the baseline's multiplier. ``"state"``: the state baseline
        :math:`b^*` (S,) minimizing the trace of the covariance, a solution of
        :math:`Q b = c` (:func:`baseline_quadratic`; least squares, minimum norm, where
        ``Q`` is singular, e.g. unreachable states).
    per_component : bool
        ``kind="constant"`` only.
    method : {"auto", "recursion", "enumerate"}
        Both kinds by the recursion (cross moments of the weight tables); ``"enumerate"``
        lists trajectories (``kind="constant"`` only, small cases; ``max_trajectories``).

    Returns
    -------
    ndarray of shape (theta.size,) or (S,), or float

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
    if kind not in _KINDS:
        raise ValidationError(f"`kind` must be one of {_KINDS}; got {kind!r}")
    if method not in ("auto", "recursion", "enumerate"):
        raise ValidationError(f"`method` must be 'auto', 'recursion' or 'enumerate'; got {method!r}")
    if kind == "constant" and method == "enumerate":
        from .enumeration import optimal_constant_baseline

        return optimal_constant_baseline(mdp, policy, theta, estimator, horizon, per_component=per_component,
                                         max_trajectories=max_trajectories)
    if method == "enumerate":
        raise ValidationError("kind='state' is computed by the recursion; method='enumerate' is for kind='constant'")
    if kind == "constant":
        from . import _check_common, _horizon, _name

        theta = _check_common(mdp, policy, theta)
        name = _name(estimator)
        if name not in _ESTIMATORS:
            raise ValidationError(f"`estimator` must be one of {_ESTIMATORS} (the estimators that take a "
                                  f"baseline); got {estimator!r}")
        T, _ = _horizon(mdp, horizon, name)
        if T is None:
            raise ValidationError("the optimal baseline needs a finite `horizon` (the sampling truncation)")
        WV, VV, C = _weight_moments(mdp, policy, theta, name, T)
        xy = np.einsum("pi,ij,pj->p", C, WV, C)      # E[X_i Y_i]
        yy = np.einsum("pi,ij,pj->p", C, VV, C)      # E[Y_i^2]
        if not per_component:
            return float(xy.sum() / yy.sum()) if yy.sum() > 0 else 0.0
        return np.divide(xy, yy, out=np.zeros_like(xy), where=yy > 1e-300)
    _, c, Q = baseline_quadratic(mdp, policy, theta, estimator, horizon)
    b, *_ = np.linalg.lstsq(Q, c, rcond=1e-12)
    return b
