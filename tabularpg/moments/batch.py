r"""Exact mean and covariance of the N-episode estimate with a batch-coupled baseline.

For ``reinforce``, ``reward_to_go`` and ``reward_to_go_undiscounted``, episode ``n`` of a
batch contributes :math:`x_n = A_n - \sum_t b_{n,t} Z_{n,t}` with :math:`A_n` the
estimate without baseline, :math:`Z_{n,t} = m_t \nabla\log\pi(a_{n,t}|s_{n,t})` the
baseline's multiplier (:math:`m_t = \gamma^t` for ``reward_to_go``, 1 otherwise) and
:math:`b_{n,t}` an average of the targets :math:`T_{j,t}` (:math:`G_{j,t}`, or
:math:`R_j` for REINFORCE) of the other episodes (``"leave_one_out"``, RLOO) or of all
(``"mean"``). With the kernel :math:`h(j, n) = \sum_t T_{j,t} Z_{n,t}` (so
:math:`h(n, n) = A_n`),

.. math::
    \bar g_{\rm LOO} = \frac1N\sum_n A_n - \frac{1}{N(N-1)}\sum_{j\ne n} h(j, n),
    \qquad \bar g_{\rm mean} = (1 - \tfrac1N)\, \bar g_{\rm LOO},

a U-statistic. The score has zero mean given the past, so :math:`E[Z_t] = 0`,
:math:`E[Z_t Z_u^\top] = 0` for :math:`t \ne u`, and every term of
:math:`\mathrm{Cov}\,\bar g` reduces to per-episode moments:

.. math::
    \mathrm{Cov}\,\bar g_{\rm LOO} = \frac{\mathrm{Cov}[A - \sum_t \tau_t Z_t]}{N}
      + \frac{H_1 - H_3 + H_2}{N(N-1)},

with :math:`\tau_t = E[T_t]` (the exact time baseline),
:math:`H_1 - H_3 = \sum_t \mathrm{Var}(T_t) E[Z_t Z_t^\top]` and
:math:`H_2 = \sum_{t,u} v_{ut} v_{tu}^\top`, :math:`v_{tu} = E[T_t Z_u]`
(:math:`= \gamma^{u-t} E[G_u Z_u]` for :math:`u \ge t`; for :math:`u < t` a backward
propagation of :math:`E[G_t | s_u]`). The first term is the per-episode covariance with
the exact time baseline (:func:`~tabularpg.moments.exact_moments`); ``O(T^2 S A (S + p))``
time and ``O(T (S A + p) + p^2)`` memory for the rest.

The ``"optimal"`` batch baseline (leave-one-out ratio estimates :math:`\sum_{j\ne n}
X_j Y_j / \sum_{j \ne n} Y_j^2`) is not a polynomial in the episodes: its mean is exact
(unbiased) but its covariance has no finite expression in per-episode moments, so it is
refused here.
"""
from __future__ import annotations

import numpy as np

from .._validation import ValidationError, check_choice, check_int

__all__ = ["exact_batch_moments"]

_SUPPORTED = ("reinforce", "reward_to_go", "reward_to_go_undiscounted")


def _scalar_tails(mod, pi, T):
    """On-policy forward law ``alpha[t, s]``, ``g1[t, x] = E[G_t | x_t = x]`` and
    ``u_k[t, s] = E[G_t^k | s_t = s]`` (k = 1, 2)."""
    from .recursion import _sum_a

    S, A = mod.S, mod.A
    SA = S * A
    g = mod.gamma
    Pf, r = mod.Pf, mod.r
    PHf = mod.weighted_f(r)
    eh, eh2 = mod.rowsum(r), mod.rowsum(r * r)
    alpha = np.zeros((T, S))
    alpha[0] = mod.mu
    for t in range(T - 1):
        alpha[t + 1] = mod.forward((alpha[t][:, None] * pi).reshape(SA))
    g1 = np.zeros((T, SA))
    u1 = np.zeros((T + 1, S))
    u2 = np.zeros((T + 1, S))
    for t in range(T - 1, -1, -1):
        g1[t] = eh + g * (Pf @ u1[t + 1])
        g2 = eh2 + 2 * g * (PHf @ u1[t + 1]) + g * g * (Pf @ u2[t + 1])
        u1[t] = _sum_a(pi, g1[t], S, A)
        u2[t] = _sum_a(pi, g2, S, A)
    return alpha, g1, u1, u2


def exact_batch_moments(mdp, policy, theta, estimator, horizon=None, *, n_episodes, baseline):
    r"""Exact mean and covariance of the batch estimate ``estimate(batch, ...).mean`` of
    ``n_episodes`` i.i.d. episodes with a batch-coupled ``baseline``.

    Parameters
    ----------
    mdp, policy, theta
    estimator : {"reinforce", "reward_to_go", "reward_to_go_undiscounted"}
    horizon : int or None
        The sampling horizon (the MDP's finite horizon by default; required otherwise).
    n_episodes : int
        Batch size ``N`` (>= 2 for ``"leave_one_out"``).
    baseline : {"mean", "leave_one_out"}

    Returns
    -------
    Moments
        ``mean`` (theta.size,) and ``cov`` (theta.size, theta.size) of the N-episode mean
        (see the module docstring for the formula).

    Examples
    --------
    RLOO's covariance is the time-baselined per-episode covariance over N plus an
    O(1/N^2) term:

    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> from tabularpg.moments import exact_moments
    >>> mdp, pol = envs.garnet(3, 2, 2, rng=0, horizon=4, gamma=0.9), TabularSoftmax(3, 2)
    >>> th = np.zeros((3, 2))
    >>> c = [np.trace(exact_batch_moments(mdp, pol, th, "reward_to_go", n_episodes=n,
    ...                                   baseline="leave_one_out").cov) * n for n in (10, 1000)]
    >>> bool(c[0] > c[1] > 0)
    True
    """
    from . import _check_common, _horizon, _name, _recursion, _space, _to_theta
    from .recursion import _Model

    theta = _check_common(mdp, policy, theta, horizon=horizon, estimator=estimator, n_episodes=n_episodes)
    name = _name(estimator)
    if name not in _SUPPORTED:
        raise ValidationError(f"`estimator` must be one of {_SUPPORTED} (the estimators with batch baselines); "
                              f"got {estimator!r}")
    if isinstance(baseline, str) and baseline == "optimal":
        raise ValidationError("`baseline`='optimal' estimates ratios sum_j X_j Y_j / sum_j Y_j^2 from the other "
                              "episodes: not a polynomial in them, so its covariance has no exact finite form; "
                              "its population value is moments.optimal_baseline(..., kind='constant')")
    check_choice(baseline, "baseline", ("mean", "leave_one_out"))
    N = check_int(n_episodes, "n_episodes", minimum=1)
    if baseline == "leave_one_out" and N < 2:
        raise ValidationError(f"baseline='leave_one_out' needs n_episodes >= 2; got {N}")
    T, _ = _horizon(mdp, horizon, name)
    if T is None:
        raise ValidationError("batch moments need a finite `horizon` (the sampling truncation)")
    from . import Moments

    S, A = mdp.n_states, mdp.n_actions
    pi = policy.probs(theta)
    mod = _Model(mdp)
    alpha, g1, u1, u2 = _scalar_tails(mod, pi, T)
    g = mdp.gamma
    m_t = g ** np.arange(T) if name == "reward_to_go" else np.ones(T)
    if name == "reinforce":
        J, J2 = float(mod.mu @ u1[0]), float(mod.mu @ u2[0])
        tau, var_T = np.full(T, J), np.full(T, J2 - J * J)
    else:
        tau = np.einsum("ts,ts->t", alpha, u1[:T])
        var_T = np.einsum("ts,ts->t", alpha, u2[:T]) - tau ** 2
    mean0, _ = _recursion(mdp, policy, theta, name, horizon, None, {})
    _, second_tau = _recursion(mdp, policy, theta, name, horizon, None, {"baseline": tau[:, None]})
    cov_tau = second_tau - np.outer(mean0, mean0)
    space = _space(policy, theta, S, A)
    p_tx = (alpha[:, :, None] * pi[None]).reshape(T, S * A)            # Pr(x_t = x, alive)
    diag13 = np.einsum("t,tx->x", var_T * m_t ** 2, p_tx)
    proj = (lambda v: v) if space.psi is None else (lambda v: v @ space.psi)   # rows x -> rows p
    e = proj(m_t[:, None] * p_tx * g1)                                   # e_u = E[G_u Z_u], (T, p)
    if name == "reinforce":  # v_tu = E[R Z_u] = gamma^u E[G_u Z_u] for every t
        E = (g ** np.arange(T)) @ e
        H2 = np.outer(E, E)
    else:
        # H2 = sum_{t,u} v_ut v_tu^T: diagonal t = u, and for t > u the pair
        # v_tu (the past case, propagated backward) with v_ut = gamma^(t-u) e_t
        H2 = e.T @ e
        Wmat = np.zeros((S, T))                                          # column t: w_{t,u+1}(s)
        Pf = mod.Pf
        for u in range(T - 1, -1, -1):
            if u + 1 < T:
                Pw = Pf @ Wmat[:, u + 1:]                                 # (SA, T-u-1): E[G_t | x_u]
                v_past = proj((m_t[u] * p_tx[u][:, None] * Pw).T)        # v_tu, t > u
                v_fut = (g ** np.arange(1, T - u))[:, None] * e[u + 1:]   # v_ut = gamma^(t-u) e_t
                X = v_past.T @ v_fut
                H2 += X + X.T
                Wmat[:, u + 1:] = np.einsum("sa,sak->sk", pi, Pw.reshape(S, A, -1))
            Wmat[:, u] = u1[u]
    if space.psi is None:
        K = H2.copy()
        K[np.diag_indices_from(K)] += diag13
    else:
        K = H2 + space.psi.T @ (diag13[:, None] * space.psi)
    _, K_theta = _to_theta(policy, theta, space, np.zeros(K.shape[0]), K)
    K_theta = 0.5 * (K_theta + K_theta.T)
    if N == 1:  # "mean" with one episode: the episode's own return is the baseline, x = 0
        z = np.zeros_like(mean0)
        return Moments(z, np.zeros_like(cov_tau), np.zeros_like(cov_tau), method="recursion")
    cov = cov_tau / N + K_theta / (N * (N - 1))
    mean = mean0
    if baseline == "mean":
        mean, cov = (1 - 1 / N) * mean0, (1 - 1 / N) ** 2 * cov
    cov = 0.5 * (cov + cov.T)
    return Moments(mean=mean, cov=cov, second=cov + np.outer(mean, mean), method="recursion")
