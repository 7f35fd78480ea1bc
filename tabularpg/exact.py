r"""Exact policy evaluation, occupancy, objective, policy gradient and Fisher matrix.

Infinite horizon (discounted, or ``gamma = 1`` with terminal states and a proper policy):

.. math::
    V = (I - \gamma P_\pi)^{-1} r_\pi, \qquad
    Q(s,a) = r(s,a) + \gamma \sum_{s'} P(s'|s,a) V(s'), \qquad
    d = (I - \gamma P_\pi)^{-\top} \mu,

with :math:`P_\pi` restricted to decision (non-terminal) states. ``d`` is the
**unnormalized** discounted occupancy :math:`d(s) = \sum_t \gamma^t \Pr(s_t = s)`, so that
:math:`J = \mu^\top V = d^\top r_\pi` and :math:`\sum_s d(s) = 1/(1-\gamma)` without terminal
states. Dense MDPs factor :math:`I-\gamma P_\pi` once (LU) and reuse the factors for ``V``
and, by a transposed solve, for ``d``. Sparse MDPs use GMRES with a stated relative
residual tolerance.

Finite horizon ``H``: backward induction for ``V[t, s]``, ``Q[t, s, a]`` (value from time
``t`` on) and a forward pass for ``d[t, s] = gamma^t Pr(s_t = s, alive)``.

Policy gradient theorem (Sutton et al. 2000), written as the same contraction that the
Monte Carlo estimators use:

.. math::
    \nabla J(\theta) = \sum_{s,a} W_{s,a} \nabla\log\pi_\theta(a|s), \qquad
    W_{s,a} = d(s)\,\pi(a|s)\,Q(s,a)\quad (\textstyle\sum_t d_t(s)\pi(a|s) Q_t(s,a)
    \text{ for finite } H).

Fisher information (unnormalized occupancy):
:math:`F = \sum_s d(s) \sum_a \pi(a|s) \nabla\log\pi(a|s)\nabla\log\pi(a|s)^\top`; for tabular
softmax the natural gradient :math:`F^+\nabla J` equals the advantage ``A`` up to a per-state
constant (Kakade 2001).

Every function accepts complex ``pi`` / ``theta`` so that the complex-step derivative of
:func:`objective` is available as an oracle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from . import _validation as _v
from ._validation import (
    ImproperPolicyError,
    TabularPGError,
    check_float,
    check_prob_table,
)
from .mdp import MDP
from .policies import Policy, softmax

__all__ = [
    "PolicyEvaluation",
    "ConvergenceError",
    "analyze",
    "evaluate",
    "advantage",
    "occupancy",
    "objective",
    "expected_weights",
    "policy_gradient",
    "fisher",
    "fisher_vector_product",
    "natural_gradient",
    "SPARSE_RTOL",
]

#: Default relative residual tolerance of the sparse (GMRES) solves.
SPARSE_RTOL = 1e-12


class ConvergenceError(TabularPGError, RuntimeError):
    """An iterative solver did not reach its stated tolerance."""


@dataclass(frozen=True)
class PolicyEvaluation:
    """Everything the exact solvers know about one policy, from one factorization.

    Attributes
    ----------
    v : ndarray of shape (S,) or (H, S)
    q : ndarray of shape (S, A) or (H, S, A)
    d : ndarray of shape (S,) or (H, S)
        Unnormalized discounted occupancy (zero on terminal states); None when
        :func:`analyze` was called with ``occupancy=False``.
    j : float (or complex under complex-step)
        ``J = mu @ v`` (``mu @ v[0]`` for a finite horizon).
    """

    v: np.ndarray
    q: np.ndarray
    d: np.ndarray
    j: complex

    @property
    def advantage(self) -> np.ndarray:
        """``A = Q - V``, shape of ``q``."""
        return self.q - self.v[..., None]

    @property
    def d_total(self) -> np.ndarray:
        """Occupancy summed over time, shape (S,) (``d`` itself for infinite horizons)."""
        return self.d if self.d.ndim == 1 else self.d.sum(axis=0)


def _check_mdp(mdp):
    _v.check_mdp(mdp)


def _check_policy(policy, mdp=None):
    _v.check_policy(policy, mdp=mdp)


def _check_proper(mdp: MDP, pi: np.ndarray) -> None:
    """With gamma = 1 and no horizon: every state must reach a terminal state w.p. 1."""
    S = mdp.n_states
    P_full = mdp.transition_matrix(pi.real, continuing=False)
    adj = sp.csr_matrix(P_full) if not sp.issparse(P_full) else P_full.tocsr()
    adj = sp.csr_matrix((adj.data > 0, adj.indices, adj.indptr), shape=adj.shape)
    keep = sp.diags(mdp.nonterminal)
    adj = keep @ adj  # no edges out of terminal states
    # reverse graph plus a super node S pointing at every terminal state
    rev = sp.bmat([[adj.T, sp.csr_matrix((S, 1))],
                   [sp.csr_matrix(mdp.terminal[None, :].astype(float)), sp.csr_matrix((1, 1))]],
                  format="csr")
    reached = csgraph.breadth_first_order(rev, S, directed=True, return_predecessors=False)
    ok = np.zeros(S + 1, dtype=bool)
    ok[reached] = True
    bad = np.flatnonzero(~ok[:S] & ~mdp.terminal)
    if bad.size:
        raise ImproperPolicyError(
            f"policy is improper: with gamma = 1 and no horizon, the episode never terminates "
            f"from states {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} "
            f"({bad.size} states); use gamma < 1, a horizon, or a policy that reaches a terminal state")


def _sparse_solve(M, b, rtol, what):
    x, info = spla.gmres(M, b, rtol=rtol, atol=0.0, restart=60, maxiter=2000)
    if info != 0:
        res = np.linalg.norm(M @ x - b) / max(np.linalg.norm(b), 1e-300)
        raise ConvergenceError(f"GMRES for {what} stopped at relative residual {res:.3g} "
                               f"(target {rtol:g}, info={info})")
    return x


def _analyze_infinite(mdp: MDP, pi, rtol, with_d=True, r_sa=None):
    S = mdp.n_states
    P_pi = mdp.transition_matrix(pi)
    r_sa = mdp.r_sa if r_sa is None else r_sa
    r_pi = np.einsum("sa,sa->s", pi, r_sa) * mdp.nonterminal
    mu = mdp.mu.astype(r_pi.dtype)
    if mdp.is_sparse:
        M = (sp.identity(S, dtype=P_pi.dtype, format="csr") - mdp.gamma * P_pi).tocsr()
        v = _sparse_solve(M, r_pi, rtol, "V = (I - gamma P_pi)^-1 r_pi")
        d = _sparse_solve(M.T.tocsr(), mu, rtol, "d = (I - gamma P_pi)^-T mu") if with_d else None
    else:
        M = np.eye(S, dtype=P_pi.dtype) - mdp.gamma * P_pi
        lu = sla.lu_factor(M, check_finite=False)
        v = sla.lu_solve(lu, r_pi, check_finite=False)
        d = sla.lu_solve(lu, mu, trans=1, check_finite=False) if with_d else None
    q = r_sa + mdp.gamma * mdp.next_state_expectation(v)
    if mdp.terminal.any():
        q = q * mdp.nonterminal[:, None]
    return PolicyEvaluation(v=v, q=q, d=d, j=mdp.mu @ v)


def _analyze_finite(mdp: MDP, pi, r_sa=None):
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    r_sa = mdp.r_sa if r_sa is None else r_sa
    dtype = np.result_type(pi.dtype, r_sa.dtype, np.float64)
    keep = mdp.nonterminal
    v = np.zeros((H + 1, S), dtype=dtype)
    q = np.zeros((H, S, A), dtype=dtype)
    for t in range(H - 1, -1, -1):
        q[t] = (r_sa + mdp.gamma * mdp.next_state_expectation(v[t + 1])) * keep[:, None]
        v[t] = np.sum(pi * q[t], axis=1)
    P_pi_T = mdp.transition_matrix(pi).T
    d = np.zeros((H, S), dtype=dtype)
    d[0] = mdp.mu
    for t in range(1, H):
        d[t] = mdp.gamma * (P_pi_T @ d[t - 1])
    return PolicyEvaluation(v=v[:H], q=q, d=d, j=mdp.mu @ v[0])


def analyze(mdp: MDP, pi, *, rtol: float = SPARSE_RTOL, occupancy: bool = True, reward=None) -> PolicyEvaluation:
    r"""Evaluate ``pi`` exactly: ``V``, ``Q``, occupancy ``d`` and ``J`` from one factorization.

    Parameters
    ----------
    mdp : MDP
    pi : ndarray of shape (S, A)
        Action probabilities (rows sum to one; complex allowed for complex-step).
    rtol : float
        Relative residual tolerance of the GMRES solves for sparse MDPs.
    occupancy : bool
        Also compute ``d`` (default). With False, ``d`` is None and an infinite-horizon
        dense MDP does one LU and one solve instead of two solves.
    reward : ndarray of shape (S, A), optional
        Use this expected reward instead of ``mdp.r_sa`` (it may depend on ``pi``, as in
        entropy regularization; complex allowed).

    Returns
    -------
    PolicyEvaluation

    Raises
    ------
    ImproperPolicyError
        ``gamma == 1``, no horizon, and some state never reaches a terminal state.
    """
    _check_mdp(mdp)
    pi = check_prob_table(pi, mdp.n_states, mdp.n_actions, atol=max(mdp.atol, 1e-8))
    rtol = check_float(rtol, "rtol", low=0.0, high=1.0)
    _v.check_bool(occupancy, "occupancy")
    if reward is not None:
        reward = _v.as_float_array(reward, "reward", shape=(mdp.n_states, mdp.n_actions), allow_complex=True)
    return _analyze(mdp, pi, rtol, occupancy, reward)


def _analyze(mdp, pi, rtol=SPARSE_RTOL, occupancy=True, reward=None):
    """:func:`analyze` without argument checks (``pi`` from ``policy.probs`` is valid)."""
    if mdp.horizon is not None:
        return _analyze_finite(mdp, pi, r_sa=reward)
    if mdp.gamma == 1.0:
        _check_proper(mdp, pi)
    return _analyze_infinite(mdp, pi, rtol, with_d=occupancy, r_sa=reward)


def evaluate(mdp: MDP, pi, **kw):
    r"""Exact ``(V, Q)`` of policy ``pi``.

    Returns
    -------
    V : ndarray of shape (S,) or (H, S)
    Q : ndarray of shape (S, A) or (H, S, A)

    Notes
    -----
    Bellman equations :math:`V = r_\pi + \gamma P_\pi V` and
    :math:`Q = r + \gamma P V` (finite horizon: :math:`V_t = r_\pi + \gamma P_\pi V_{t+1}`,
    :math:`V_H = 0`). See :func:`analyze`.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import MDP
    >>> P = np.ones((1, 1, 1)); m = MDP(P, np.array([[1.0]]), np.array([1.0]), gamma=0.5)
    >>> V, Q = evaluate(m, np.ones((1, 1)))
    >>> float(V[0])   # 1 + 0.5 + 0.25 + ... = 1 / (1 - 0.5)
    2.0
    """
    ev = analyze(mdp, pi, occupancy=False, **kw)
    return ev.v, ev.q


def advantage(mdp: MDP, pi, **kw) -> np.ndarray:
    """Advantage ``A = Q - V``, shape (S, A) or (H, S, A)."""
    return analyze(mdp, pi, occupancy=False, **kw).advantage


def occupancy(mdp: MDP, pi, **kw) -> np.ndarray:
    r"""Unnormalized discounted occupancy :math:`d(s) = \sum_t \gamma^t \Pr(s_t = s)`.

    Shape (S,), or (H, S) for a finite horizon (``d[t, s] = gamma^t Pr(s_t = s)``).
    Terminal states have zero occupancy (no decision is taken there).
    """
    return analyze(mdp, pi, **kw).d


def objective(mdp: MDP, pi, **kw):
    r"""Expected return :math:`J = E[\sum_{t<T} \gamma^t r_t] = \mu^\top V`."""
    j = analyze(mdp, pi, occupancy=False, **kw).j
    return j.item() if hasattr(j, "item") else j


def expected_weights(ev: PolicyEvaluation, pi) -> np.ndarray:
    r"""Expected contraction weights :math:`W_{s,a} = \sum_t d_t(s)\pi(a|s)Q_t(s,a)`, shape (S, A)."""
    _v.check_instance(ev, PolicyEvaluation, "ev", "a PolicyEvaluation (from analyze)")
    pi = _v.as_float_array(pi, "pi", shape=ev.q.shape[-2:], allow_complex=True)
    if ev.d.ndim == 1:
        return ev.d[:, None] * pi * ev.q
    return np.einsum("ts,sa,tsa->sa", ev.d, pi, ev.q)


def policy_gradient(mdp: MDP, policy: Policy, theta, **kw) -> np.ndarray:
    r"""Exact :math:`\nabla_\theta J(\theta)`, shaped like ``theta``.

    Notes
    -----
    Policy gradient theorem, as the contraction
    :math:`\sum_{s,a} d(s)\pi(a|s)Q(s,a)\nabla\log\pi(a|s)` (one LU for ``V`` and ``d``).

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> mdp = envs.two_state()
    >>> pol = TabularSoftmax(mdp.n_states, mdp.n_actions)
    >>> theta = np.zeros(pol.theta_shape)
    >>> g = policy_gradient(mdp, pol, theta)
    >>> h = 1e-20   # complex step: J(theta + i h e) = J + i h dJ + O(h^2)
    >>> e = np.zeros_like(theta); e[0, 1] = 1.0
    >>> bool(np.isclose(objective(mdp, pol.probs(theta + 1j * h * e)).imag / h, g[0, 1], rtol=1e-12))
    True
    """
    _check_mdp(mdp)
    _check_policy(policy, mdp)
    theta = policy.check_theta(theta)
    pi = softmax(policy._logits(theta))
    rtol = check_float(kw.pop("rtol", SPARSE_RTOL), "rtol", low=0.0, high=1.0)
    if kw:
        raise TypeError(f"policy_gradient got unexpected keyword arguments {sorted(kw)}")
    ev = _analyze(mdp, pi, rtol)
    return policy.contract_table(theta, expected_weights(ev, pi), pi=pi)


def fisher_vector_product(mdp: MDP, policy: Policy, theta, v, *, d=None, **kw) -> np.ndarray:
    r"""Fisher-vector product :math:`Fv = \sum_s d(s)\sum_a\pi(a|s)\langle\nabla\log\pi, v\rangle\nabla\log\pi`.

    Never forms ``F``. ``v`` has shape ``theta_shape`` (or (k, *theta_shape) for several);
    ``d`` (S,) may be passed to reuse a computed occupancy (summed over time).
    """
    _check_mdp(mdp)
    _check_policy(policy, mdp)
    theta = policy.check_theta(theta)
    pi = policy.probs(theta)
    d = None if d is None else _v.as_float_array(d, "d", shape=(mdp.n_states,), expected=f"(S,) = ({mdp.n_states},)")
    if d is None:
        d = analyze(mdp, pi, **kw).d_total
    v = np.asarray(v)
    jvp = policy.log_probs_jvp(theta, v)
    return policy.contract_table(theta, d[:, None] * pi * jvp)


def fisher(mdp: MDP, policy: Policy, theta, **kw) -> np.ndarray:
    r"""Exact Fisher information matrix, shape (theta.size, theta.size).

    :math:`F = \sum_s d(s) \sum_a \pi(a|s)\nabla\log\pi(a|s)\nabla\log\pi(a|s)^\top` with the
    unnormalized occupancy (summed over time for a finite horizon). Built column by
    column from Fisher-vector products on the unit vectors.
    """
    _check_mdp(mdp)
    _check_policy(policy, mdp)
    theta = policy.check_theta(theta)
    n = policy.n_params
    basis = np.eye(n).reshape((n,) + policy.theta_shape)
    pi = policy.probs(theta)
    d = analyze(mdp, pi, **kw).d_total
    F = fisher_vector_product(mdp, policy, theta, basis, d=d).reshape(n, n)
    return 0.5 * (F + F.T)


def natural_gradient(mdp: MDP, policy: Policy, theta, *, damping: float = 0.0, **kw) -> np.ndarray:
    r"""Natural gradient :math:`F^{+}\nabla J` (minimum-norm least squares), shaped like ``theta``.

    With ``damping > 0`` solves :math:`(F + \lambda I)x = \nabla J` instead (Cholesky).
    For tabular softmax the result equals ``A(s, a)`` minus its mean over actions in
    every visited state (Kakade 2001; our ``d`` is unnormalized, so no ``1/(1-gamma)``).
    """
    damping = check_float(damping, "damping", low=0.0)
    _check_policy(policy, _check_mdp(mdp) or mdp)
    theta = np.asarray(theta)
    g = policy_gradient(mdp, policy, theta, **kw).ravel()
    F = fisher(mdp, policy, theta, **kw)
    if damping > 0:
        x = sla.solve(F + damping * np.eye(F.shape[0]), g, assume_a="pos")
    else:
        x = sla.lstsq(F, g, cond=1e-12)[0]
    return x.reshape(policy.theta_shape)
