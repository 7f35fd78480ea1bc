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
and, by a transposed solve, for ``d``. Sparse MDPs build ``P_pi`` in one pass over ``P``
and solve with Krylov methods to a stated, checked relative residual: BiCGSTAB for ``V``
alone; for ``V`` and ``d`` together, one bi-conjugate-gradient process (each step one
product with ``M`` and one with ``M^T``; above ``PARALLEL_MIN_NNZ`` stored entries the
adjoint half runs on a second thread), each solution then checked (and corrected by
BiCGSTAB/GMRES if needed) on its own true residual. A complex system (the complex step)
holds its real and imaginary parts each to the tolerance, so the derivative in the
imaginary part is as accurate as the value.

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

Exactness guarantee
-------------------
Every exact number returned satisfies its equation to a stated relative residual, and
comes from a system whose condition number is bounded; otherwise nothing is returned.

* Dense: ``V`` satisfies :math:`\|r_\pi + \gamma P_\pi V - V\|_\infty \le`
  ``RESIDUAL_RTOL`` :math:`(\|I-\gamma P_\pi\|_\infty\|V\|_\infty + \|r_\pi\|_\infty)`
  (checked through ``Q`` at no extra cost; LU with partial pivoting gives ~1e-16), and
  ``d`` comes from the same factorization by a transposed solve.
* Sparse: every Krylov solve is checked on its true residual,
  :math:`\|b - Mx\|_2 \le` ``rtol`` :math:`\|b\|_2` (default ``SPARSE_RTOL``), else
  :class:`ConvergenceError` (complex systems: the real and imaginary parts
  each against their own right-hand side).
* Conditioning. :math:`M = I - \gamma P_\pi` has a non-negative inverse, so its condition
  number is exactly :math:`\kappa_\infty = \|M\|_\infty \max_s t(s)` with
  :math:`t = M^{-1}\mathbf 1` the expected (discounted) number of decisions before
  termination. With ``gamma < 1``, :math:`\max t \le 1/(1-\gamma)` bounds it for free;
  with ``gamma = 1`` (terminal states) ``t`` -- the expected episode length from every
  state -- is solved for with the same factorization. Refused, never returned:

  - ``gamma = 1``: an expected episode length above ``MAX_EXPECTED_STEPS`` (1e8), or a
    numerically singular :math:`I - P_\pi` -> :class:`ImproperPolicyError` naming the
    worst states and their expected lengths (or, when no length can be computed, the
    states where the episode is trapped);
  - any ``gamma``: :math:`\kappa_\infty >` ``MAX_CONDITION`` (1e10) ->
    :class:`~tabularpg._validation.NumericalError`.

  So the relative error of every returned ``V``, ``Q``, ``d``, ``J`` is at most about
  :math:`\kappa_\infty \varepsilon \le 2\cdot 10^{8}\cdot 2^{-53}` for ``gamma = 1``
  and :math:`2\cdot 10^{10}\cdot 2^{-53} \approx 2\cdot 10^{-6}` in the worst accepted
  discounted case (typically 1e-14). Policies that are exactly improper (some state
  never reaches a terminal state) are found by a graph search first.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from . import _validation as _v
from ._validation import (
    ImproperPolicyError,
    NumericalError,
    check_float,
    check_prob_table,
)
from .mdp import MDP
from .policies import Policy, _softmax_rows

__all__ = [
    "PolicyEvaluation",
    "ConvergenceError",
    "analyze",
    "evaluate",
    "advantage",
    "occupancy",
    "objective",
    "expected_weights",
    "expected_steps",
    "policy_gradient",
    "fisher",
    "fisher_vector_product",
    "natural_gradient",
    "SPARSE_RTOL",
    "RESIDUAL_RTOL",
    "MAX_CONDITION",
    "MAX_EXPECTED_STEPS",
    "PARALLEL_MIN_NNZ",
]

#: Default relative residual tolerance of the sparse (Krylov) solves:
#: ``||b - M x||_2 <= SPARSE_RTOL ||b||_2``, checked on the true residual.
SPARSE_RTOL = 1e-12

#: Dense solves: bound on the normwise relative residual
#: ``||r_pi + gamma P_pi V - V||_inf / (||I - gamma P_pi||_inf ||V||_inf + ||r_pi||_inf)``
#: of every returned ``V`` (LU with partial pivoting gives about 1e-16).
RESIDUAL_RTOL = 1e-12

#: Largest accepted condition number ``kappa_inf(I - gamma P_pi)``; the relative error
#: of a returned solution is at most about ``kappa * residual``.
MAX_CONDITION = 1e10

#: Sparse MDPs whose ``P_pi`` stores at least this many entries compute the gradient's
#: adjoint products ``M^T y`` on a second thread, side by side with the primal products
#: ``M x`` (only when the process may use two or more CPUs); below it, a thread's
#: start-up and hand-over cost more than they save. The second thread needs a free core:
#: a NumPy BLAS call on long vectors made just before (``x @ y`` in the caller's loop)
#: leaves NumPy's OpenBLAS threads spinning for a while, and on two cores the 100 000-state
#: gradient then takes 160 ms instead of 115 ms; ``threadpoolctl.threadpool_limits(1,
#: user_api="blas")`` around such a loop avoids it. The solvers themselves make no NumPy
#: BLAS call on this path.
PARALLEL_MIN_NNZ = 400_000

#: With ``gamma = 1``: largest accepted expected episode length (steps to termination)
#: from any state; longer is refused as nearly improper.
MAX_EXPECTED_STEPS = 1e8


class ConvergenceError(NumericalError, RuntimeError):
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


_LAPACK: dict = {}
_gemv = sla.blas.dgemv


def _lapack(name: str, a: np.ndarray):
    """The LAPACK routine ``name`` ('getrf', 'getrs') for the dtype of ``a`` (d/z prefix),
    looked up once per (name, dtype)."""
    key = (name, a.dtype.char)
    fn = _LAPACK.get(key)
    if fn is None:
        fn = _LAPACK[key] = sla.get_lapack_funcs((name,), (a,))[0]
    return fn


def _name_states(t: np.ndarray, k: int = 5) -> str:
    """'state 3 (1.2e+09 steps), state 4 (1.1e+09 steps), ...' for the ``k`` largest ``t``."""
    order = np.argsort(-t)[:k]
    n_above = int(np.sum(t > MAX_EXPECTED_STEPS))
    more = f", ... ({n_above} states above {MAX_EXPECTED_STEPS:.0e})" if n_above > k else ""
    return ", ".join(f"state {s} ({t[s]:.3g} steps)" for s in order) + more


def _trapped_states(mdp: MDP, pi: np.ndarray, k: int = 5) -> str:
    """Name the states where a numerically non-terminating policy is trapped.

    Used when ``I - P_pi`` is numerically singular, so that no expected length can be
    solved for: power iteration on the sub-stochastic ``P_pi`` (terminal transitions
    removed) converges to its quasi-stationary distribution, whose mass sits on the
    trap; its survival rate ``lam`` per step gives an expected length ``1 / (1 - lam)``.
    """
    P_pi = mdp.transition_matrix(np.asarray(pi).real)
    x = mdp.nonterminal / max(mdp.nonterminal.sum(), 1.0)
    lam = 1.0
    for _ in range(200):
        y = P_pi.T @ x
        lam = float(y.sum())
        if lam <= 0.0:
            break
        x = y / lam
    order = [s for s in np.argsort(-x)[:k] if x[s] > 0]
    length = "at least 1/eps = 4.5e+15" if lam >= 1.0 - 2.0 ** -52 else f"about {1.0 / (1.0 - lam):.3g}"
    return (f"the episode is trapped among states {[int(s) for s in order]} (expected length "
            f"{length} steps, {1.0 - lam:.3g} chance per step of leaving)")


def _refuse_length(mdp: MDP, pi, t, norm_inf, why: str):
    """Raise ImproperPolicyError (gamma = 1) or NumericalError (gamma < 1) for a system
    whose expected (discounted) length ``t`` is unusable."""
    keep = ~mdp.terminal
    finite = t is not None and np.all(np.isfinite(t)) and np.all(t[keep] >= 0.5)
    if mdp.gamma == 1.0:
        where = (f"expected episode lengths: {_name_states(t)}" if finite
                 else _trapped_states(mdp, pi))
        raise ImproperPolicyError(
            f"policy is nearly improper: {why}; {where}. With gamma = 1, exact values are "
            f"returned only when every expected episode length is at most "
            f"MAX_EXPECTED_STEPS = {MAX_EXPECTED_STEPS:.0e} (condition number of I - P_pi at "
            f"most {2 * MAX_EXPECTED_STEPS:.0e}); use gamma < 1, a horizon, or a policy that "
            "terminates sooner")
    where = f"; largest expected discounted lengths: {_name_states(t)}" if finite else ""
    raise NumericalError(
        f"I - gamma P_pi (gamma = {mdp.gamma!r}) is too ill-conditioned to solve exactly: "
        f"{why}{where}; the bound is MAX_CONDITION = {MAX_CONDITION:.0e}")


def _check_length(mdp: MDP, pi, t, norm_inf: float) -> None:
    """Refuse when the expected lengths ``t = (I - gamma P_pi)^-1 1`` make the system
    (numerically) singular: ``kappa_inf = ||M||_inf max(t)`` is the exact condition number
    because ``(I - gamma P_pi)^-1 >= 0`` entrywise."""
    tr = t.real
    if not (np.all(np.isfinite(tr)) and np.all(tr[mdp.terminal == 0] >= 1.0 - 1e-6)):
        _refuse_length(mdp, pi, None, norm_inf, "I - gamma P_pi is numerically singular")
    t_max = float(tr.max(initial=0.0))
    if mdp.gamma == 1.0 and t_max > MAX_EXPECTED_STEPS:
        _refuse_length(mdp, pi, tr, norm_inf,
                       f"the expected episode length reaches {t_max:.3g} steps")
    if norm_inf * t_max > MAX_CONDITION:
        _refuse_length(mdp, pi, tr, norm_inf,
                       f"condition number {norm_inf * t_max:.3g}")


def _needs_length(mdp: MDP) -> bool:
    """With gamma < 1, kappa_inf(I - gamma P_pi) <= (1 + gamma) / (1 - gamma) without a
    solve; only systems where that bound exceeds MAX_CONDITION solve for ``t``."""
    return mdp.gamma == 1.0 or (1.0 + mdp.gamma) > MAX_CONDITION * (1.0 - mdp.gamma)


def _check_residual(res, scale, what: str, tol: float) -> None:
    """Refuse a solution whose relative residual ``||res|| / scale`` exceeds ``tol``."""
    err = float(np.max(np.abs(res), initial=0.0)) / scale if scale > 0 else 0.0
    if not err <= tol:
        raise NumericalError(f"{what}: relative residual {err:.3g} exceeds {tol:g}; "
                             "the solution is not returned")


def _n_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _dot(a, b):
    """``conj(a) . b`` without BLAS (einsum's own loop): Krylov inner products stay
    single-threaded, which keeps them fast when other processes load the cores."""
    return np.einsum("i,i->", a.conj() if np.iscomplexobj(a) else a, b)


def _norm2(a) -> float:
    return float(np.sqrt(abs(_dot(a, a))))


def _bicgstab(matvec, b, tol_abs, maxiter):
    """BiCGSTAB (van der Vorst 1992, "Bi-CGSTAB: a fast and smoothly converging variant
    of Bi-CG") from ``x0 = 0`` until the recursive residual is below ``tol_abs``.
    Returns ``x`` and whether it stopped on the tolerance (False on breakdown)."""
    x = np.zeros_like(b)
    r = b.copy()
    rh = b.copy()
    p = v = None
    rho_old = alpha = omega = 1.0
    for _ in range(maxiter):
        rho = _dot(rh, r)
        if rho == 0:
            return x, False
        p = r.copy() if p is None else r + (rho / rho_old) * (alpha / omega) * (p - omega * v)
        v = matvec(p)
        den = _dot(rh, v)
        if den == 0:
            return x, False
        alpha = rho / den
        r -= alpha * v                      # r is now s = r - alpha v
        x += alpha * p
        if _norm2(r) <= tol_abs:
            return x, True
        t = matvec(r)
        tt = _dot(t, t)
        if tt == 0:
            return x, False
        omega = _dot(t, r) / tt
        x += omega * r
        r -= omega * t
        if _norm2(r) <= tol_abs:
            return x, True
        if omega == 0:
            return x, False
        rho_old = rho
    return x, False


class _BiCGSide:
    """One of the two coupled sequences of :func:`_bicg_pair`: iterate ``x``, residual
    ``r``, direction ``p`` and the latest product ``M p``, updated in place."""

    def __init__(self, op, b):
        self.op = op
        self.x = np.zeros_like(b)
        self.r = b.copy()
        self.p = b.copy()
        self.tmp = np.empty_like(b)
        self.Ap = None

    def direct(self, beta):
        """``p = r + beta p`` (skipped when ``beta`` is None: the first step), then ``M p``."""
        if beta is not None:
            self.p *= beta
            self.p += self.r
        self.Ap = self.op(self.p)

    def advance(self, alpha) -> float:
        """``x += alpha p``, ``r -= alpha M p``; returns ``||r||_2``."""
        np.multiply(self.p, alpha, out=self.tmp)
        self.x += self.tmp
        np.multiply(self.Ap, alpha, out=self.tmp)
        self.r -= self.tmp
        return _norm2(self.r)


def _bicg_pair(matvec, rmatvec, b, c, tol_b, tol_c, maxiter, pool=None):
    """Bi-conjugate gradients (Fletcher 1976) for ``M x = b`` and ``M^T y = c`` at once:
    the shadow sequence of BiCG started from ``c`` is the BiCG iteration of the adjoint
    system, so one ``M`` and one ``M^T`` product per step advance both solutions (the
    primal-dual use of Lu and Darmofal 2003).

    The two sequences meet only in two inner products per step. With a ``pool`` (a
    one-worker thread pool) the adjoint sequence -- its product with ``M^T`` and its
    vector updates -- runs on a second core while this thread runs the primal one
    (SciPy's sparse products and NumPy's element-wise operations release the GIL).
    Returns ``x, y`` and whether both recursive residuals reached their tolerances
    (False on breakdown)."""
    prim, dual = _BiCGSide(matvec, b), _BiCGSide(rmatvec, c)
    rho = _dot(dual.r, prim.r)
    if abs(rho) <= 1e-8 * _norm2(dual.r) * _norm2(prim.r):
        return prim.x, dual.x, False

    def both(step, arg, arg_dual):
        """``step`` (a method name) on the primal side with ``arg`` and on the dual side
        with ``arg_dual``, side by side when there is a pool."""
        if pool is None:
            return getattr(prim, step)(arg), getattr(dual, step)(arg_dual)
        fut = pool.submit(getattr(dual, step), arg_dual)
        out = getattr(prim, step)(arg)
        return out, fut.result()

    beta = None
    for _ in range(maxiter):
        cbeta = None if beta is None else np.conj(beta)
        both("direct", beta, cbeta)
        den = _dot(dual.p, prim.Ap)
        if den == 0:
            return prim.x, dual.x, False
        alpha = rho / den
        calpha = np.conj(alpha)
        nr, ns = both("advance", alpha, calpha)
        if nr <= tol_b and ns <= tol_c:
            return prim.x, dual.x, True
        rho_new = _dot(dual.r, prim.r)
        if rho_new == 0:
            return prim.x, dual.x, False
        beta = rho_new / rho
        rho = rho_new
    return prim.x, dual.x, False


def _residual_check(matvec, b, x, res, rtol):
    """Whether the true residual ``res = b - M x`` meets ``rtol``: returns
    ``(ok, relative error, absolute Krylov tolerance for a correction)``.

    Real systems: ``||res||_2 <= rtol ||b||_2``. Complex systems (the complex step) hold
    the real and the imaginary part each to ``rtol`` of its own scale --
    ``||Re b||`` and ``||Im b|| + ||Im(M Re x)||``, the right-hand side of the equation the
    imaginary part solves -- so that a derivative carried in an imaginary part of size
    ``1e-20`` is as accurate as the value (a single complex norm would be dominated by
    the real part and leave the imaginary one unconverged)."""
    nb = _norm2(b)
    if not np.iscomplexobj(res):
        err = _norm2(res) / nb
        return err <= rtol, err, 0.5 * rtol * nb
    scales = [_norm2(b.real) or nb, _norm2(b.imag) + _norm2(matvec(x.real.astype(res.dtype)).imag)]
    errs = [_norm2(res.real), _norm2(res.imag)]
    rel = [e / sc if sc > 0 else (0.0 if e == 0 else np.inf) for e, sc in zip(errs, scales)]
    positive = [sc for sc in scales if sc > 0]
    return max(rel) <= rtol, max(rel), 0.5 * rtol * min(positive)


def _sparse_solve(matvec, b, rtol, what, dtype, x0=None, r0=None):
    """Solve ``M x = b`` given ``matvec(x) = M x``: BiCGSTAB (for the correction from
    ``x0`` when given; ``r0 = b - M x0`` may be passed when already computed), then GMRES
    from its iterate if needed; the true residual is checked (:func:`_residual_check`)."""
    nb = _norm2(b)
    if nb == 0.0:
        return np.zeros_like(b)
    if x0 is None or not np.all(np.isfinite(x0)):
        x, _ = _bicgstab(matvec, b, 0.5 * rtol * nb, maxiter=1000)
        r0 = None
    else:
        x = x0
    # at most two corrections: the second one is needed when a complex step's imaginary
    # part (the derivative) lags behind the real part
    for _ in range(3):
        res = b - matvec(x) if r0 is None else r0
        r0 = None
        ok, err, tol_abs = _residual_check(matvec, b, x, res, rtol)
        if ok or not np.all(np.isfinite(x)):
            break
        dx, _ = _bicgstab(matvec, res, tol_abs, maxiter=1000)
        x = x + dx
    info = 0
    if not ok:
        n = b.shape[0]
        op = spla.LinearOperator((n, n), matvec=matvec, dtype=dtype)
        x, info = spla.gmres(op, b, x0=x if np.all(np.isfinite(x)) else None, rtol=0.0,
                             atol=2 * tol_abs, restart=60, maxiter=100)
        ok, err, _ = _residual_check(matvec, b, x, b - matvec(x), rtol)
    if not (ok and np.all(np.isfinite(x))):
        raise ConvergenceError(f"BiCGSTAB/GMRES for {what} stopped at relative residual "
                               f"{err:.3g} (target {rtol:g}, info={info})")
    return x


class _SparseSystem:
    """``M = I - gamma K P_pi K`` (``K`` keeps decision states) for sparse MDPs.

    ``K P_pi K`` is built in one pass over the (S*A, S) CSR ``P`` without a sparse
    product: row ``s`` of ``P_pi`` is the concatenation of rows ``s*A .. s*A+A-1`` of
    ``P`` scaled by ``pi[s, a]``, so its CSR arrays are ``P``'s indices, every A-th
    ``indptr`` entry and ``P.data * pi`` (repeated column indices are summed by the
    products). ``M x`` and ``M^T y`` are then one sparse product each.
    """

    def __init__(self, mdp: MDP, pi: np.ndarray):
        self.mdp, self.pi = mdp, pi
        self.S, self.A, self.gamma = mdp.n_states, mdp.n_actions, mdp.gamma
        self.keep = mdp.nonterminal if mdp.terminal.any() else None
        self.dtype = np.result_type(pi.dtype, np.float64)
        P = mdp.P
        w = pi.ravel()
        if self.keep is not None:
            w = w * np.repeat(self.keep, self.A)
        data = P.data * np.repeat(w, np.diff(P.indptr))
        if self.keep is not None:
            data *= self.keep[P.indices]
        self.P_pi = sp.csr_matrix((data, P.indices, P.indptr[:: self.A]), shape=(self.S, self.S))
        self.P_pi_T = self.P_pi.T

    def matvec(self, x):
        out = self.P_pi @ x
        out *= -self.gamma
        out += x
        return out

    def rmatvec(self, y):
        out = self.P_pi_T @ y
        out *= -self.gamma
        out += y
        return out

    def norm_inf(self) -> float:
        """``||M||_inf = max_s |1 - gamma p_ss| + gamma (rs_s - p_ss)`` (real part), with
        ``p_ss`` the diagonal and ``rs`` the row sums of ``K P_pi K``."""
        P, S, A = self.mdp.P, self.S, self.A
        row = np.repeat(np.arange(S * A), np.diff(P.indptr))
        hit = P.indices == row // A
        diag_sa = np.bincount(row[hit], P.data[hit], minlength=S * A).reshape(S, A)
        keep = self.mdp.nonterminal
        pr = self.pi.real
        p_ss = np.einsum("sa,sa->s", pr, diag_sa) * keep
        rs = np.einsum("sa,sa->s", pr, (P @ keep).reshape(S, A)) * keep
        return float(np.max(np.abs(1.0 - self.gamma * p_ss) + self.gamma * (rs - p_ss)))


def _dense_infinite(mdp: MDP, pi, with_d: bool, r_sa):
    """Dense infinite-horizon solve, one LU in place, no S x S temporaries.

    ``M = I - gamma P_pi`` is written (C order) straight from one contraction
    ``-gamma sum_a pi[s, a] P[s, a, :]``; its transpose is Fortran-contiguous, so
    ``getrf`` factors ``M^T`` in place without a copy; ``V`` then uses the transposed
    solve and ``d`` the plain one. ``Q = r + gamma P V`` is one ``gemv`` on the
    (S*A, S) view of ``P``. Every BLAS/LAPACK call goes to SciPy's library: NumPy
    bundles a second OpenBLAS with its own thread pool, and alternating between the two
    pools (their idle threads spin) slowed a 500-state solve several-fold on two cores.
    """
    S, A = mdp.n_states, mdp.n_actions
    gamma = mdp.gamma
    P = mdp.P
    term = mdp.terminal
    has_term = bool(term.any())
    dtype = np.result_type(pi.dtype, r_sa.dtype, np.float64)
    c = np.multiply(pi, -gamma, dtype=dtype)                    # (S, A)
    M = np.empty((S, S), dtype=dtype)
    np.einsum("sa,sat->st", c, P, out=M)                        # M = -gamma P_pi
    diag = M.reshape(-1)[:: S + 1]                              # view of the diagonal
    if has_term:
        M[:, term] = 0.0
        M[term, :] = 0.0
        # row sums of P_pi without the transitions into terminal states
        rs = 1.0 - np.einsum("sa,sa->s", pi.real, P[:, :, term].sum(axis=2))
        rs[term] = 0.0
    else:
        rs = 1.0
    diag += 1.0
    # ||M||_inf = max_s |M_ss| + gamma (rs_s - p_ss) with gamma p_ss = 1 - M_ss (real part)
    dr = diag.real
    norm_inf = float((np.abs(dr) + gamma * rs - (1.0 - dr)).max())
    r_pi = np.einsum("sa,sa->s", pi, r_sa)
    if has_term:
        r_pi[term] = 0.0
    lu, piv, info = _lapack("getrf", M)(M.T, overwrite_a=True)  # LU of M^T, in place
    if info > 0:  # an exactly zero pivot: singular in floating point
        _refuse_length(mdp, pi, None, norm_inf, "I - gamma P_pi is singular in floating point")
    getrs = _lapack("getrs", lu)
    if _needs_length(mdp):
        ones = np.ones(S, dtype=dtype)
        if has_term:
            ones[term] = 0.0
        x = getrs(lu, piv, np.stack([r_pi, ones], axis=1), trans=1)[0]
        v, t = x[:, 0], x[:, 1]
        _check_length(mdp, pi, t, norm_inf)
    else:
        v = getrs(lu, piv, r_pi, trans=1)[0]
    d = getrs(lu, piv, mdp.mu.astype(dtype, copy=False), trans=0)[0] if with_d else None
    if has_term:
        v[term] = 0.0
    if dtype == np.float64 and r_sa.dtype == np.float64:
        # q = r + gamma P v in one gemv on the (S*A, S) view (its transpose is Fortran)
        q = _gemv(gamma, P.reshape(S * A, S).T, v, beta=1.0, y=r_sa.reshape(-1), trans=1)
        q = q.reshape(S, A)
    else:  # complex step: P stays real
        q = np.einsum("kt,t->k", P.reshape(S * A, S), v).reshape(S, A)
        q *= gamma
        q += r_sa
    if has_term:
        q[term] = 0.0
    # Bellman residual of V through Q (no extra pass): sum_a pi Q - V = r_pi + gamma P_pi V - V
    vhat = np.einsum("sa,sa->s", pi, q)
    scale = norm_inf * np.abs(v).max() + np.abs(r_pi).max()
    err = np.abs(vhat - v).max()
    if not err <= RESIDUAL_RTOL * scale:
        _check_residual(vhat - v, scale, "V = (I - gamma P_pi)^-1 r_pi", RESIDUAL_RTOL)
    return PolicyEvaluation(v=v, q=q, d=d, j=np.einsum("s,s->", mdp.mu, v))


def _sparse_infinite(mdp: MDP, pi, rtol, with_d: bool, r_sa):
    """Sparse infinite-horizon solve: matrix-free Krylov solves for ``V`` (and ``d``
    with the transposed product), each checked on its true residual."""
    sysm = _SparseSystem(mdp, pi)
    dtype = np.result_type(sysm.dtype, r_sa.dtype)
    r_pi = np.einsum("sa,sa->s", pi, r_sa)
    if sysm.keep is not None:
        r_pi = r_pi * sysm.keep
    if _needs_length(mdp):
        norm_inf = sysm.norm_inf()
        try:
            t = _sparse_solve(sysm.matvec, mdp.nonterminal.astype(dtype), rtol,
                              "t = (I - gamma P_pi)^-1 1 (expected lengths)", dtype)
        except ConvergenceError as exc:
            _refuse_length(mdp, pi, None, norm_inf, f"the expected-length solve failed ({exc})")
        _check_length(mdp, pi, t, norm_inf)
    what_v, what_d = "V = (I - gamma P_pi)^-1 r_pi", "d = (I - gamma P_pi)^-T mu"
    if with_d:
        # both solves from one BiCG process; each is then checked (and finished if
        # needed) on its own true residual
        mu = mdp.mu.astype(dtype)
        parallel = sysm.P_pi.nnz >= PARALLEL_MIN_NNZ and _n_cpus() >= 2
        with (ThreadPoolExecutor(1, thread_name_prefix="tabularpg-adjoint") if parallel
              else contextlib.nullcontext()) as pool:
            v, d, _ = _bicg_pair(sysm.matvec, sysm.rmatvec, r_pi, mu, 0.5 * rtol * _norm2(r_pi),
                                 0.5 * rtol * _norm2(mu), maxiter=500, pool=pool)
            # the true residuals of both iterates, computed side by side as well
            res_d = pool.submit(sysm.rmatvec, d) if pool is not None else None
            res_v = r_pi - sysm.matvec(v)
            res_d = mu - (res_d.result() if res_d is not None else sysm.rmatvec(d))
        v = _sparse_solve(sysm.matvec, r_pi, rtol, what_v, dtype, x0=v, r0=res_v)
        d = _sparse_solve(sysm.rmatvec, mu, rtol, what_d, dtype, x0=d, r0=res_d)
    else:
        v, d = _sparse_solve(sysm.matvec, r_pi, rtol, what_v, dtype), None
    q = (mdp.P @ (v if sysm.keep is None else v * sysm.keep)).reshape(mdp.n_states, mdp.n_actions)
    q *= mdp.gamma
    q += r_sa
    if sysm.keep is not None:
        q *= sysm.keep[:, None]
    # J by einsum, not ``mu @ v``: NumPy's BLAS runs a long dot product on its own thread
    # pool, whose idle threads then spin on the core that the next gradient's adjoint
    # thread needs (with it, a 100 000-state gradient took 1.7x an evaluation, not 1.2x)
    return PolicyEvaluation(v=v, q=q, d=d, j=np.einsum("s,s->", mdp.mu, v))


def _analyze_infinite(mdp: MDP, pi, rtol, with_d=True, r_sa=None):
    r_sa = mdp.r_sa if r_sa is None else r_sa
    if mdp.is_sparse:
        return _sparse_infinite(mdp, pi, rtol, with_d, r_sa)
    return _dense_infinite(mdp, pi, with_d, r_sa)


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
    return PolicyEvaluation(v=v[:H], q=q, d=d, j=np.einsum("s,s->", mdp.mu, v[0]))


def analyze(mdp: MDP, pi, *, rtol: float = SPARSE_RTOL, occupancy: bool = True, reward=None) -> PolicyEvaluation:
    r"""Evaluate ``pi`` exactly: ``V``, ``Q``, occupancy ``d`` and ``J`` from one factorization.

    Parameters
    ----------
    mdp : MDP
    pi : ndarray of shape (S, A)
        Action probabilities (rows sum to one; complex allowed for complex-step).
    rtol : float
        Relative residual tolerance of the Krylov solves for sparse MDPs, checked on the
        true residual ``||b - M x||_2 <= rtol ||b||_2``.
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
        ``gamma == 1``, no horizon, and some state never reaches a terminal state, or its
        expected episode length exceeds ``MAX_EXPECTED_STEPS`` (nearly improper).
    NumericalError
        ``I - gamma P_pi`` is too ill-conditioned (``MAX_CONDITION``) or a residual
        check fails (:class:`ConvergenceError` for sparse solves); see the module notes.
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


def expected_steps(mdp: MDP, pi, **kw) -> np.ndarray:
    r"""Expected (discounted) number of decisions from every state,
    :math:`t = (I - \gamma P_\pi)^{-1}\mathbf 1`, shape (S,) (``(H, S)`` for a finite
    horizon: from time ``t`` on).

    With ``gamma = 1`` and terminal states this is the expected episode length. It is
    the value of the reward 1 per decision, so it goes through the same checks as
    :func:`evaluate` (lengths above ``MAX_EXPECTED_STEPS`` are refused), and
    :math:`\|I - \gamma P_\pi\|_\infty \max_s t(s)` is the exact condition number
    :math:`\kappa_\infty(I - \gamma P_\pi)` because the inverse is non-negative.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import envs
    >>> mdp = envs.cliff_walking()
    >>> t = expected_steps(mdp, np.full((mdp.n_states, 4), 0.25))
    >>> bool(t[36] > 13)   # the random walk from the start takes longer than the shortest path
    True
    """
    _check_mdp(mdp)
    ones = np.ones((mdp.n_states, mdp.n_actions))
    return analyze(mdp, pi, occupancy=False, reward=ones, **kw).v


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
    :math:`\sum_{s,a} d(s)\pi(a|s)Q(s,a)\nabla\log\pi(a|s)` (one LU for ``V`` and ``d``),
    computed in its advantage form :math:`\sum_{s,a} d(s)\pi(a|s)(Q(s,a) - V(s))
    \nabla_\theta z(s,a)`: the weights sum to zero over actions, so they are the
    gradient with respect to the logits ``z`` as they stand.

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
    pi = _softmax_rows(policy._logits(theta))
    rtol = kw.pop("rtol", SPARSE_RTOL)
    if rtol is not SPARSE_RTOL:
        rtol = check_float(rtol, "rtol", low=0.0, high=1.0)
    if kw:
        raise TypeError(f"policy_gradient got unexpected keyword arguments {sorted(kw)}")
    ev = _analyze(mdp, pi, rtol)
    # advantage form of the contraction: w = d pi (Q - V) sums to zero over actions
    # (V = sum_a pi Q, checked to RESIDUAL_RTOL), so the logits' gradient is w itself
    # and contract_table's centring ``w - pi sum_b w`` is not needed
    if ev.d.ndim == 1:
        w = ev.q - ev.v[:, None]
        w *= pi
        w *= ev.d[:, None]
    else:
        w = np.einsum("ts,sa,tsa->sa", ev.d, pi, ev.q - ev.v[:, :, None])
    return policy.logits_vjp(theta, w)


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
