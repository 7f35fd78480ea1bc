r"""Optimal control: value iteration, policy iteration, linear programming, backward induction.

All solve the Bellman optimality equations

.. math::
    V^*(s) = \max_a \Big[ r(s, a) + \gamma \sum_{s'} P(s'|s, a) V^*(s') \Big],
    \qquad V^*(\text{terminal}) = 0,

(finite horizon: :math:`V^*_t = \max_a [r + \gamma P V^*_{t+1}]`, :math:`V^*_H = 0`) and
return a frozen :class:`SolveResult` with a deterministic greedy policy as a one-hot
``(S, A)`` table (``(H, S, A)`` for finite horizons; ties go to the lowest action).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from . import exact
from ._validation import ArgumentTypeError, TabularPGError, ValidationError, check_float, check_int
from .mdp import MDP

__all__ = ["SolveResult", "NoProperPolicyError", "value_iteration", "policy_iteration", "linear_program",
           "backward_induction", "greedy", "bellman_optimality_residual"]


class NoProperPolicyError(TabularPGError, ValueError):
    """gamma = 1, no horizon, and some state cannot reach a terminal state under any policy."""


@dataclass(frozen=True)
class SolveResult:
    """Result of an optimal-control solver.

    Attributes
    ----------
    v : ndarray of shape (S,) or (H, S)
        Optimal values.
    pi : ndarray of shape (S, A) or (H, S, A)
        A greedy deterministic optimal policy, one-hot.
    n_iter : int
    converged : bool
    """

    v: np.ndarray
    pi: np.ndarray
    n_iter: int
    converged: bool

    def __iter__(self):
        """Unpacks as ``V, pi = value_iteration(mdp)`` (the optimal ``(V*, pi*)``)."""
        return iter((self.v, self.pi))


def _q(mdp: MDP, v):
    return (mdp.r_sa + mdp.gamma * mdp.next_state_expectation(v)) * mdp.nonterminal[:, None]


def greedy(q) -> np.ndarray:
    """One-hot greedy policy of ``q`` (..., S, A); ties go to the lowest action index."""
    q = np.asarray(q)
    pi = np.zeros_like(q, dtype=float)
    np.put_along_axis(pi, np.argmax(q, axis=-1)[..., None], 1.0, axis=-1)
    return pi


def bellman_optimality_residual(mdp: MDP, v) -> float:
    """``max_s |V(s) - max_a [r + gamma P V](s, a)|`` for an infinite-horizon MDP."""
    return float(np.max(np.abs(v - _q(mdp, v).max(axis=1))))


def backward_induction(mdp: MDP) -> SolveResult:
    """Exact finite-horizon dynamic programming: ``H`` backups from ``V_H = 0``."""
    _check(mdp)
    if mdp.horizon is None:
        raise ValidationError("backward_induction needs a finite `horizon`; got None")
    H, S = mdp.horizon, mdp.n_states
    v = np.zeros((H + 1, S))
    q = np.zeros((H, S, mdp.n_actions))
    for t in range(H - 1, -1, -1):
        q[t] = _q(mdp, v[t + 1])
        v[t] = q[t].max(axis=1)
    return SolveResult(v=v[:H], pi=greedy(q), n_iter=H, converged=True)


def _check(mdp):
    if not isinstance(mdp, MDP):
        raise ArgumentTypeError(f"`mdp` must be a tabularpg.MDP; got {type(mdp).__name__}")


def _proper_policy(mdp: MDP) -> np.ndarray:
    """A deterministic proper policy (gamma = 1): in BFS layers toward the terminal
    states, pick in each state an action with positive probability of reaching a
    state of a lower layer."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.P_flat()
    P = sp.csr_matrix(P) if not sp.issparse(P) else P
    reach_prob = lambda mask: np.asarray(P @ mask.astype(float)).reshape(S, A)  # noqa: E731
    done = mdp.terminal.copy()
    action = np.zeros(S, dtype=int)
    while not done.all():
        hit = reach_prob(done) > 0
        new = ~done & hit.any(axis=1)
        if not new.any():
            bad = np.flatnonzero(~done)
            raise NoProperPolicyError(
                f"with gamma = 1 and no horizon, states {bad[:10].tolist()} cannot reach a terminal state "
                "under any policy; use gamma < 1 or a horizon")
        action[new] = np.argmax(hit[new], axis=1)
        done |= new
    pi = np.zeros((S, A))
    pi[np.arange(S), action] = 1.0
    return pi


def value_iteration(mdp: MDP, *, tol: float = 1e-10, max_iter: int = 1_000_000) -> SolveResult:
    r"""Value iteration :math:`V_{k+1} = \max_a [r + \gamma P V_k]` from ``V_0 = 0``.

    Stopping rule: for ``gamma < 1``, stop when
    :math:`\frac{\gamma}{1-\gamma}\|V_{k+1}-V_k\|_\infty \le` ``tol``, which bounds
    :math:`\|V_{k+1} - V^*\|_\infty \le` ``tol`` (Puterman 1994, Thm 6.3.1). For
    ``gamma = 1`` with terminal states (stochastic shortest path) stop when
    :math:`\|V_{k+1}-V_k\|_\infty \le` ``tol`` (no a-priori bound). Finite horizons use
    :func:`backward_induction` (exact).
    """
    _check(mdp)
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if mdp.horizon is not None:
        return backward_induction(mdp)
    if mdp.gamma == 1.0:
        _proper_policy(mdp)  # raises if no proper policy exists
    g = mdp.gamma
    factor = g / (1 - g) if g < 1 else 1.0
    v = np.zeros(mdp.n_states)
    for k in range(1, max_iter + 1):
        q = _q(mdp, v)
        v_new = q.max(axis=1)
        delta = np.max(np.abs(v_new - v))
        v = v_new
        if factor * delta <= tol:
            return SolveResult(v=v, pi=greedy(_q(mdp, v)), n_iter=k, converged=True)
    return SolveResult(v=v, pi=greedy(_q(mdp, v)), n_iter=max_iter, converged=False)


def policy_iteration(mdp: MDP, *, max_iter: int = 10_000) -> SolveResult:
    r"""Howard's policy iteration with exact evaluation (:func:`tabularpg.exact.evaluate`).

    Improvement switches an action only when it gains more than ``1e-12`` times the
    value scale, so the iteration stops at a policy whose values are optimal to rounding.
    With ``gamma = 1`` it starts from a proper policy found by backward reachability.
    """
    _check(mdp)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if mdp.horizon is not None:
        return backward_induction(mdp)
    pi = _proper_policy(mdp) if mdp.gamma == 1.0 else greedy(mdp.r_sa)
    for k in range(1, max_iter + 1):
        v, q = exact.evaluate(mdp, pi)
        current = np.sum(pi * q, axis=1)
        best = q.max(axis=1)
        improve = best > current + 1e-12 * max(1.0, np.max(np.abs(q)))
        if not improve.any():
            return SolveResult(v=v, pi=pi, n_iter=k, converged=True)
        new = pi.copy()
        new[improve] = greedy(q[improve])
        pi = new
    return SolveResult(v=v, pi=pi, n_iter=max_iter, converged=False)


def linear_program(mdp: MDP) -> SolveResult:
    r"""The primal LP :math:`\min_V \sum_s V(s)` s.t. :math:`V(s) \ge r(s,a) + \gamma (P V)(s,a)`
    for every non-terminal ``(s, a)``, with :math:`V = 0` on terminal states, solved by
    ``scipy.optimize.linprog(method="highs")`` (sparse constraint matrix)."""
    _check(mdp)
    if mdp.horizon is not None:
        return backward_induction(mdp)
    if mdp.gamma == 1.0:
        _proper_policy(mdp)
    S, A = mdp.n_states, mdp.n_actions
    keep = mdp.nonterminal
    P = mdp.P_flat()
    P = sp.csr_matrix(P) if not sp.issparse(P) else P
    live_rows = np.repeat(keep > 0, A)
    E = sp.csr_matrix((np.ones(S * A), (np.arange(S * A), np.repeat(np.arange(S), A))), shape=(S * A, S))
    A_ub = (mdp.gamma * P @ sp.diags(keep) - E)[live_rows]
    b_ub = -mdp.r_sa.ravel()[live_rows]
    bounds = [(None, None) if k else (0.0, 0.0) for k in keep]
    res = linprog(np.ones(S), A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        raise TabularPGError(f"linprog (HiGHS) failed: {res.message}")
    v = res.x * keep
    return SolveResult(v=v, pi=greedy(_q(mdp, v)), n_iter=int(getattr(res, "nit", 0)), converged=True)
