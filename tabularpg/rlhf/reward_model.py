r"""The two supervised stages of RLHF: SFT and a Bradley-Terry reward model.

**SFT** (maximum likelihood on demonstrations :math:`(x_i, y_i)`, with an L2 penalty
that keeps :math:`\pi_{ref}` away from zeros):

.. math::
    \mathcal L_{SFT}(\theta) = -\frac1n\sum_i\log\pi_\theta(y_i|x_i) + \frac\lambda2\|\theta\|^2,\qquad
    \nabla\mathcal L_{SFT} = -\frac1n\sum_i\nabla\log\pi_\theta(y_i|x_i) + \lambda\theta

(the contraction of weights :math:`-1/n` on the demonstrations).

**Reward model** :math:`\hat r_w(x, y)`: a table (``w`` of shape (X, Y)) or linear,
:math:`\hat r_w = \phi(x,y)^\top w`, fitted to preference pairs :math:`(x, y_w, y_l)` by
maximum likelihood under Bradley and Terry (1952):

.. math::
    \mathcal L_{RM}(w) &= -\frac1n\sum_i\log\sigma(u_i) + \frac\lambda2\|w\|^2,\qquad
    u_i = \hat r_w(x_i, y_{w,i}) - \hat r_w(x_i, y_{l,i}),\\
    \nabla_{\hat r}\mathcal L_{RM} &= -\frac1n\sum_i(1 - \sigma(u_i))(e_{x_i y_{w,i}} - e_{x_i y_{l,i}}),
    \qquad \nabla_w\mathcal L_{RM} = \textstyle\sum_{x,y}\nabla_{\hat r(x,y)}\mathcal L\,\phi(x,y) + \lambda w.

Under the law of :func:`tabularpg.optim.sample_preferences` (both responses from
:math:`\pi_{ref}`, the winner by the true :math:`r`), the exact expected loss is

.. math::
    \bar{\mathcal L}(w) = 2\sum_x\mu(x)\sum_{y,y'}\pi_{ref}(y|x)\pi_{ref}(y'|x)\,\sigma(r(x,y)-r(x,y'))
    \,[-\log\sigma(\hat r(x,y) - \hat r(x,y'))];

with a tabular model and :math:`\lambda = 0` it is minimized exactly by
:math:`\hat r = r + c(x)` (the cross-entropy of two Bernoulli laws is smallest when they
agree), so the reward model recovers :math:`r` up to a per-prompt constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._validation import (
    ArgumentTypeError,
    NumericalError,
    ShapeError,
    ValidationError,
    as_float_array,
    as_rng,
    check_float,
    check_int,
    check_prob_table,
)
from ..policies import Policy
from .world import _check_mu, _sigmoid, check_reference

__all__ = [
    "FitResult",
    "RewardModel",
    "fit_reward_model",
    "fit_reward_model_population",
    "reward_model_loss",
    "reward_model_population_loss",
    "sample_demonstrations",
    "sft",
    "sft_loss",
]


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


@dataclass(frozen=True, eq=False)
class FitResult:
    """``theta`` (or reward-model parameters), final ``loss``, ``n_iter``, ``converged``."""

    theta: np.ndarray
    loss: float
    n_iter: int
    converged: bool


def _minimize(fun, x0, *, tol, max_iter, what):
    res = optimize.minimize(lambda v: fun(v), x0.ravel(), jac=True, method="L-BFGS-B",
                            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 30})
    if not np.all(np.isfinite(res.x)):
        raise NumericalError(f"{what}: the optimizer returned non-finite parameters ({res.message})")
    return FitResult(theta=res.x.reshape(x0.shape), loss=float(res.fun), n_iter=int(res.nit),
                     converged=bool(np.max(np.abs(res.jac)) <= 10 * tol or res.success))


def _pairs(pairs, shape, name, n_fields):
    if not isinstance(pairs, (tuple, list)) or len(pairs) != n_fields:
        raise ArgumentTypeError(f"`{name}` must be a tuple of {n_fields} int arrays; got {type(pairs).__name__}")
    arrs = [np.asarray(p) for p in pairs]
    n = arrs[0].shape
    for i, a in enumerate(arrs):
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1 or a.shape != n:
            raise ShapeError(f"`{name}`[{i}] must be a 1-d int array of length {n[0] if n else '?'}; "
                             f"got dtype {a.dtype}, shape {a.shape}")
        hi = shape[0] if i == 0 else shape[1]
        if a.size and (a.min() < 0 or a.max() >= hi):
            raise ValidationError(f"`{name}`[{i}] must lie in [0, {hi}); got range [{a.min()}, {a.max()}]")
    if arrs[0].size == 0:
        raise ValidationError(f"`{name}` must hold at least one entry")
    return arrs


# ----------------------------------------------------------------------------- SFT
def sample_demonstrations(mu, pi_demo, n: int, *, rng):
    r"""``n`` demonstrations :math:`x \sim \mu`, :math:`y \sim \pi_{demo}(\cdot|x)`:
    int arrays ``(x, y)`` of shape (n,). ``mu`` (X,), ``pi_demo`` (X, Y)."""
    pi_demo = np.asarray(pi_demo, dtype=float)
    if pi_demo.ndim != 2:
        raise ShapeError(f"`pi_demo` must have shape (X, Y); got {pi_demo.shape}")
    pi_demo = check_prob_table(pi_demo, pi_demo.shape[0], pi_demo.shape[1], name="pi_demo").real
    mu = _check_mu(mu, pi_demo.shape[0])
    n = check_int(n, "n", minimum=1)
    rng = as_rng(rng)
    x = rng.choice(mu.size, size=n, p=mu)
    cdf = np.cumsum(pi_demo[x], axis=1)
    y = np.minimum((rng.random(n)[:, None] >= cdf).sum(axis=1), pi_demo.shape[1] - 1)
    return x, y


def sft_loss(policy: Policy, theta, demos, *, l2: float = 0.0):
    r"""``(loss, grad)`` of :math:`-\frac1n\sum_i\log\pi_\theta(y_i|x_i) + \frac\lambda2\|\theta\|^2`;
    ``demos = (x, y)`` int arrays (n,); ``grad`` is shaped like ``theta``."""
    if not isinstance(policy, Policy):
        raise ArgumentTypeError(f"`policy` must be a tabularpg Policy; got {type(policy).__name__}")
    theta = np.real(policy.check_theta(theta))
    x, y = _pairs(demos, (policy.n_states, policy.n_actions), "demos", 2)
    l2 = check_float(l2, "l2", low=0.0)
    logp = policy.log_probs(theta)
    loss = -float(np.mean(logp[x, y])) + 0.5 * l2 * float(np.sum(theta * theta))
    grad = -policy.contract(theta, x, np.full(x.size, 1.0 / x.size), y) + l2 * theta
    return loss, grad


def sft(policy: Policy, demos, *, l2: float = 1e-3, theta0=None, tol: float = 1e-9,
        max_iter: int = 2000) -> FitResult:
    """Supervised fine-tuning: minimize :func:`sft_loss` by L-BFGS from ``theta0`` (default 0).

    Returns a :class:`FitResult`; ``policy.probs(result.theta)`` is :math:`\\pi_{ref}`.
    """
    theta0 = policy.zeros() if theta0 is None else np.array(np.real(policy.check_theta(theta0)), dtype=float)
    l2 = check_float(l2, "l2", low=0.0)
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    sft_loss(policy, theta0, demos, l2=l2)  # validate once

    def fun(v):
        loss, g = sft_loss(policy, v.reshape(policy.theta_shape), demos, l2=l2)
        return loss, g.ravel()
    return _minimize(fun, theta0, tol=tol, max_iter=max_iter, what="sft")


# ----------------------------------------------------------------------------- reward model
def _rm_features(features, shape):
    if features is None:
        return None
    features = as_float_array(features, "features", ndim=3)
    if features.shape[:2] != tuple(shape):
        raise ShapeError(f"`features` must have shape ({shape[0]}, {shape[1]}, d); got {features.shape}")
    return features


def _rm_table(params, shape, features):
    if features is None:
        params = as_float_array(params, "params", shape=shape)
        return params, params
    params = as_float_array(params, "params", shape=(features.shape[2],))
    return params, features @ params


def _rm_grad(G, params, features, l2):
    g = G if features is None else np.einsum("xy,xyd->d", G, features)
    return g + l2 * params


@dataclass(frozen=True, eq=False)
class RewardModel:
    r"""A fitted Bradley-Terry reward model: ``table`` :math:`\hat r(x, y)` of shape (X, Y),
    its ``params`` ((X, Y) tabular or (d,) linear), ``features`` ((X, Y, d) or None) and
    the fit's ``loss``, ``n_iter``, ``converged``."""

    table: np.ndarray
    params: np.ndarray
    features: np.ndarray | None
    loss: float
    n_iter: int
    converged: bool


def reward_model_loss(params, prefs, shape, *, features=None, l2: float = 0.0):
    r"""``(loss, grad)`` of the Bradley-Terry negative log-likelihood on pairs
    ``prefs = (x, y_w, y_l)`` (module docstring), with the hand-derived gradient.

    Parameters
    ----------
    params : ndarray of shape (X, Y) (tabular) or (d,) (linear, with ``features``)
    prefs : tuple of three int arrays of shape (n,)
    shape : tuple (X, Y)
    features : ndarray of shape (X, Y, d), optional
    l2 : float
        :math:`\lambda \ge 0`.
    """
    shape = tuple(shape)
    features = _rm_features(features, shape)
    params, r = _rm_table(params, shape, features)
    x, yw, yl = _pairs(prefs, shape, "prefs", 3)
    l2 = check_float(l2, "l2", low=0.0)
    u = r[x, yw] - r[x, yl]
    n = x.size
    c = -(1.0 - _sigmoid(u)) / n
    X, Y = shape
    G = (np.bincount(x * Y + yw, c, minlength=X * Y) - np.bincount(x * Y + yl, c, minlength=X * Y)).reshape(X, Y)
    loss = -float(np.mean(_log_sigmoid(u))) + 0.5 * l2 * float(np.sum(params * params))
    return loss, _rm_grad(G, params, features, l2)


def reward_model_population_loss(params, mu, pi_ref, reward, *, features=None, l2: float = 0.0):
    r"""``(loss, grad)`` of the exact expected Bradley-Terry loss under
    :func:`tabularpg.optim.sample_preferences`' law (module docstring).

    ``mu`` (X,), ``pi_ref`` (X, Y) with full support, ``reward`` (X, Y) the true reward.
    """
    reward = as_float_array(reward, "reward", ndim=2)
    shape = reward.shape
    pi_ref = check_reference(pi_ref, shape)
    mu = _check_mu(mu, shape[0])
    features = _rm_features(features, shape)
    params, r = _rm_table(params, shape, features)
    l2 = check_float(l2, "l2", low=0.0)
    w = 2.0 * mu[:, None, None] * pi_ref[:, :, None] * pi_ref[:, None, :] * _sigmoid(
        reward[:, :, None] - reward[:, None, :])
    u = r[:, :, None] - r[:, None, :]
    loss = float(np.sum(w * -_log_sigmoid(u))) + 0.5 * l2 * float(np.sum(params * params))
    C = -w * (1.0 - _sigmoid(u))
    G = C.sum(axis=2) - C.sum(axis=1)
    return loss, _rm_grad(G, params, features, l2)


def _fit_rm(loss_fn, shape, features, tol, max_iter):
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    x0 = np.zeros(shape if features is None else (features.shape[2],))
    loss_fn(x0)  # validate once

    def fun(v):
        loss, g = loss_fn(v.reshape(x0.shape))
        return loss, g.ravel()
    res = _minimize(fun, x0, tol=tol, max_iter=max_iter, what="reward model")
    table = res.theta if features is None else features @ res.theta
    return RewardModel(table=table, params=res.theta, features=features, loss=res.loss, n_iter=res.n_iter,
                       converged=res.converged)


def fit_reward_model(prefs, shape, *, features=None, l2: float = 1e-3, tol: float = 1e-9,
                     max_iter: int = 2000) -> RewardModel:
    """Maximum-likelihood Bradley-Terry reward model on ``prefs = (x, y_w, y_l)`` (L-BFGS
    on :func:`reward_model_loss` from 0). ``shape`` is (X, Y); ``features`` (X, Y, d)
    makes it linear. A tabular model's unseen responses keep reward 0 (with ``l2 > 0``
    each prompt's table has mean 0)."""
    shape = tuple(shape)
    features = _rm_features(features, shape)
    return _fit_rm(lambda p: reward_model_loss(p, prefs, shape, features=features, l2=l2), shape, features,
                   tol, max_iter)


def fit_reward_model_population(mu, pi_ref, reward, *, features=None, l2: float = 0.0, tol: float = 1e-11,
                                max_iter: int = 5000) -> RewardModel:
    """Minimizer of :func:`reward_model_population_loss` (infinitely many pairs), by L-BFGS from 0.

    Tabular with ``l2 = 0``: every iterate keeps each prompt's table at mean 0 (the
    gradient's rows sum to 0), so the result is :math:`r(x, y) - \\bar r(x)`.
    """
    reward = as_float_array(reward, "reward", ndim=2)
    features = _rm_features(features, reward.shape)
    return _fit_rm(lambda p: reward_model_population_loss(p, mu, pi_ref, reward, features=features, l2=l2),
                   reward.shape, features, tol, max_iter)
