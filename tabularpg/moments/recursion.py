r"""Exact second moments of every estimator by a backward recursion over time.

Every registered estimator's per-episode estimate is a contraction of an (S, A) weight
table (``policy.contract_table(theta, W)``, linear in ``W``), and ``W`` is a sum of
per-step terms

.. math::
    W = \sum_{t<T} \big( c_t\, e_{(s_t, a_t)} + D_t(s_t) \big), \qquad
    c_t = f_t(s_t, a_t) + \eta_t G_t + \zeta P_t ,

with :math:`G_t = h_t(s_t, a_t, s_{t+1}) + \kappa G_{t+1}` a tail sum (the reward-to-go
with :math:`\kappa = \gamma`, or GAE's advantage with :math:`h = \delta`,
:math:`\kappa = \gamma\lambda`), :math:`P_t = \sum_{k<t}\gamma^k r_k` a prefix sum
(REINFORCE only, where :math:`P_t + \gamma^t G_t = R`), ``f`` a deterministic function
(baselines, critics) and ``D`` an all-action row (``all_action``). Writing
:math:`Y_t = \sum_{u \ge t}` (step terms) for the tail of ``W``,

.. math::
    E[W W^\top] = \sum_t E\big[v_t v_t^\top + v_t Y_{t+1}^\top + Y_{t+1} v_t^\top\big],
    \qquad v_t = c_t e_{(s_t,a_t)} + D_t(s_t),

and by the Markov property every term factors into a **forward** law of the state at
time ``t`` (with the prefix moments :math:`E[P_t^j 1\{s_t = s\}]`, ``j <= 2``) and
**backward** conditional moments given the next state:
:math:`E[G^k_{t+1}|s]` (``k <= 2``), :math:`E[Y_{t+1}|s]`, :math:`E[G_{t+1} Y_{t+1}|s]`
(and, for REINFORCE, :math:`E[G^k N|s]`, :math:`E[G^k F|s]` with ``N`` the tail sum of
scores and ``F`` of baseline terms). Each backward moment at ``t`` is linear in the same
moments at ``t + 1`` (e.g. :math:`E[Y_t|s] = \sum_a \pi(a|s)(E[c_t|s,a] e_{(s,a)} +
\sum_{s'} P(s'|s,a) E[Y_{t+1}|s'])`), so one pass costs ``O(T (nnz(P) + S A) p)``
(transitions are kept as a sparse matrix) with ``p`` the width of the vectors carried:
``S A`` for tabular policies (the weight-table space; the score of ``(s, a)`` lives in
row ``s``, so the contraction is applied once at the end) or ``d`` for policies with few
parameters (the score table ``(S A, d)`` is applied to every vector, and no
``S A``-sized second moment is formed).

Importance sampling under a behavior policy ``b`` changes only the action kernels:
moments of first order in the ratios :math:`\rho = \pi/b` weight actions by
:math:`b\rho = \pi`, of second order by :math:`b\rho^2 = \pi^2/b`
(``importance_per_decision``: forward law and second-order tail moments with
:math:`\pi^2/b`, first-order ones with :math:`\pi`; ``importance_trajectory``: the
REINFORCE recursion with :math:`\pi^2/b` throughout).

Untruncated infinite horizons (``horizon=None``): when every time dependence is a
geometric factor :math:`\zeta^t` (:math:`\zeta = \gamma`, or 1 with proper
termination), every backward moment is :math:`\zeta^t` times a stationary one and the
forward sums are :math:`\sum_t \zeta^{2t} \alpha_t`; both solve ``S x S`` linear
systems (one LU each). They exist when the spectral radius of every operator solved is
below one; otherwise the second moment is infinite and the call is refused.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .._validation import NumericalError, ValidationError

__all__ = ["Plan", "WSpace", "baseline_terms", "random_horizon_moments", "reinforce_moments", "tail_moments",
           "tail_pair"]


@dataclass(frozen=True)
class WSpace:
    """Where the carried vectors live: ``psi`` (S*A, p) is the score table (row
    ``s*A + a`` = score of ``(s, a)``), or None for the weight-table space (p = S*A,
    the contraction applied at the end)."""

    psi: np.ndarray | None
    S: int
    A: int

    @property
    def width(self) -> int:
        return self.S * self.A if self.psi is None else self.psi.shape[1]

    def rows(self, w_sa: np.ndarray) -> np.ndarray:
        """``sum_a w[s, a] psi(s, a)`` per state: (S, p)."""
        S, A = self.S, self.A
        if self.psi is None:
            out = np.zeros((S, S, A))
            out[np.arange(S), np.arange(S), :] = w_sa
            return out.reshape(S, S * A)
        return np.einsum("sa,sap->sp", w_sa, self.psi.reshape(S, A, -1))

    def finish(self, own_diag, own_blk, cross, cross_t=None):
        """``Psi^T (diag(own_diag) + blockdiag(own_blk)) Psi + Psi^T U + V^T Psi`` with
        ``U = cross``, ``V = cross_t`` (default ``U``)."""
        S, A = self.S, self.A
        cross_t = cross if cross_t is None else cross_t
        if self.psi is None:
            M = cross + cross_t.T
            M[np.diag_indices(S * A)] += own_diag
            if own_blk is not None:
                for s in range(S):
                    M[s * A:(s + 1) * A, s * A:(s + 1) * A] += own_blk[s]
            return M
        psi = self.psi
        M = psi.T @ (own_diag[:, None] * psi)
        if own_blk is not None:
            p3 = psi.reshape(S, A, -1)
            M += np.einsum("sap,sab,sbq->pq", p3, own_blk, p3)
        return M + psi.T @ cross + (psi.T @ cross_t).T


@dataclass
class Plan:
    """The recursion ingredients of one estimator (see the module docstring).

    ``f(t)``, ``eta(t)``, ``h(t)`` and ``d(t)`` give the step's deterministic weight
    (S, A) (or None), the tail multiplier, the tail increment ``h(s, a, s')`` as its values
    on the stored transitions of :class:`_Model` (or None) and the all-action row (S, A)
    (or None); ``kappa`` the tail's decay; ``k1``/``k2`` the action
    kernels of first- and second-order moments (``pi`` on-policy); ``zeta`` the
    geometric time factor when the plan is stationary (f, eta, d = zeta^t x their t=0
    value, h independent of t), else None.
    """

    f: Callable
    eta: Callable
    h: Callable
    d: Callable
    kappa: float
    k1: np.ndarray
    k2: np.ndarray
    zeta: float | None = None


def _solve(M, rhs, what):
    """Solve ``M x = rhs`` (dense, one LU) and check the residual."""
    try:
        lu = sla.lu_factor(M, check_finite=True)
    except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover
        raise NumericalError(f"{what}: singular system") from exc
    x = sla.lu_solve(lu, rhs)
    res = np.max(np.abs(M @ x - rhs)) if x.size else 0.0
    scale = max(1.0, float(np.max(np.abs(rhs))) if rhs.size else 1.0)
    if not np.all(np.isfinite(x)) or res > 1e-8 * scale * max(1.0, float(np.max(np.abs(x)))):
        raise NumericalError(f"{what}: the linear solve left residual {res:.3g}; the system is ill-conditioned")
    return x


def _radius(M):
    return float(np.max(np.abs(np.linalg.eigvals(M)))) if M.size else 0.0


class _Model:
    """The MDP's transitions as a CSR matrix (S*A, S) (dense MDPs too: Garnet-like rows
    have few successors), with per-transition arrays aligned with its stored entries:
    ``rows`` (the (s, a) row), ``cols`` (s'), ``r`` (the reward of the transition).
    A function ``h(s, a, s')`` is passed around as its values on those entries, so
    ``sum_s' P(s'|s,a) h(s,a,s') v(s')`` is one sparse product."""

    def __init__(self, mdp):
        S, A = mdp.n_states, mdp.n_actions
        self.S, self.A = S, A
        P = sp.csr_matrix(mdp.P_flat(), dtype=float, copy=True)  # the MDP's storage is read-only
        P.sum_duplicates()
        P.eliminate_zeros()
        P.sort_indices()
        self.P = P
        self.rows = np.repeat(np.arange(S * A), np.diff(P.indptr))
        self.cols = P.indices
        self.nt = mdp.nonterminal
        self.Pf = self.weighted(self.nt[self.cols])          # continue into a decision state
        self.PfT = self.Pf.T.tocsr()
        if mdp.R.ndim == 3:
            self.r = np.asarray(mdp.R, dtype=float).reshape(S * A, S)[self.rows, self.cols]
        else:
            self.r = np.asarray(mdp.r_sa, dtype=float).reshape(S * A)[self.rows]
        self.mu = np.asarray(mdp.mu, dtype=float)
        self.gamma = mdp.gamma

    def weighted(self, w):
        """CSR matrix with entries ``P(s'|s,a) w`` (``w`` aligned with the entries)."""
        P = self.P
        return sp.csr_matrix((P.data * w, P.indices, P.indptr), shape=P.shape)

    def weighted_f(self, w):
        """Like :meth:`weighted`, into decision states only."""
        return self.weighted(w * self.nt[self.cols])

    def rowsum(self, w):
        """``sum_s' P(s'|s,a) w(s,a,s')``, shape (S*A,)."""
        return np.bincount(self.rows, self.P.data * w, minlength=self.S * self.A)

    def forward(self, w):
        """``sum_{s,a} w(s,a) Pf(s'|s,a)``: shape (S,) or (S, k) for ``w`` (S*A,) or (S*A, k)."""
        return self.PfT @ w

    def kernel_matrix(self, k):
        """Dense state-to-state matrix ``sum_a k(s, a) Pf(s, a, s')``."""
        S, A = self.S, self.A
        mix = sp.csr_matrix((np.asarray(k, dtype=float).ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)),
                            shape=(S, S * A))
        return (mix @ self.Pf).toarray()


def _sum_a(k, x, S, A):
    """``sum_a k[s, a] x[s*A + a, ...]``."""
    return np.einsum("sa,sa...->s...", k, x.reshape((S, A) + x.shape[1:]))


# ----------------------------------------------------------------------------- tail family
def tail_moments(mdp, plan: Plan, space: WSpace, T):
    """Mean (p,) and second moment (p, p) in the space of ``space`` (``W`` space when
    ``space.psi`` is None) of ``W = sum_t c_t e_(s_t,a_t) + D_t(s_t)``; ``T`` the number
    of steps (None: untruncated, needs ``plan.zeta``)."""
    if T is None:
        return _tail_stationary(_Model(mdp), plan, space)
    mean, _, second = tail_pair(mdp, plan, plan, space, T)
    return mean, 0.5 * (second + second.T)


def _tail_step(space, k1, k2, mass1, g1, g2, Dt, f, e, Pm, Tn):
    """Backward update of ``E[Y_t | s]`` and ``E[G_t Y_t | s]`` from the next step's."""
    S, A = k1.shape
    m_new = space.rows(k1 * (f + e * g1).reshape(S, A)) + _sum_a(k1, Pm, S, A)
    if Dt is not None:
        m_new += mass1[:, None] * Dt
    if Tn is None:
        return m_new, None
    n_new = space.rows(k2 * (f * g1 + e * g2).reshape(S, A)) + _sum_a(k2, Tn, S, A)
    if Dt is not None:
        n_new += _sum_a(k2, g1, S, A)[:, None] * Dt
    return m_new, n_new


def tail_pair(mdp, pa: Plan, pb: Plan, space: WSpace, T: int):
    """Means of ``W_a``, ``W_b`` and the cross moment ``E[W_a W_b^T]`` of two tail-family
    weight tables on the same trajectory (shared tail ``G``, kernels and horizon; only
    ``f``, ``eta`` and ``d`` may differ, and ``d`` only when ``pa is pb``)."""
    if pa is not pb and (pa.d(0) is not None or pb.d(0) is not None):
        raise ValidationError("cross moments with all-action terms are not supported")
    mod = _Model(mdp)
    S, A = mod.S, mod.A
    SA = S * A
    p = space.width
    Pf = mod.Pf
    k1, k2 = pa.k1, pa.k2
    mass1, mass2 = k1.sum(1), k2.sum(1)
    # forward law (second-order kernel): alpha[t, s]
    alpha = np.zeros((T, S))
    alpha[0] = mod.mu
    for t in range(T - 1):
        alpha[t + 1] = mod.forward((alpha[t][:, None] * k2).reshape(SA))
    same = pa is pb
    ma = np.zeros((S, p))
    na = np.zeros((S, p))
    mb, nb = (ma, na) if same else (np.zeros((S, p)), np.zeros((S, p)))
    u1 = np.zeros(S)
    u2 = np.zeros(S)
    own = np.zeros(SA)
    blk = None
    cross_ab = np.zeros((SA, p))
    cross_ba = cross_ab if same else np.zeros((SA, p))
    kap = pa.kappa
    zero = np.zeros(SA)
    for t in range(T - 1, -1, -1):
        h, d = pa.h(t), pa.d(t)
        fa, ea = pa.f(t), pa.eta(t)
        fa = zero if fa is None else fa.reshape(SA)
        if same:
            fb, eb = fa, ea
        else:
            fb, eb = pb.f(t), pb.eta(t)
            fb = zero if fb is None else fb.reshape(SA)
        w2 = (alpha[t][:, None] * k2).reshape(SA)
        Pma = Pf @ ma
        Pmb = Pma if same else Pf @ mb
        if h is not None:
            PHf = mod.weighted_f(h)
            g1 = mod.rowsum(h) + kap * (Pf @ u1)
            g2 = mod.rowsum(h * h) + 2 * kap * (PHf @ u1) + kap * kap * (Pf @ u2)
            Ta = PHf @ ma + kap * (Pf @ na)          # E[G_t Y_a' | x] - h-part: (PH m + kappa P n)
            Tb = Ta if same else PHf @ mb + kap * (Pf @ nb)
        else:
            g1 = g2 = zero
            Ta = Tb = None
        own += w2 * (fa * fb + (fa * eb + fb * ea) * g1 + ea * eb * g2)
        Vab = fa[:, None] * Pmb
        if Tb is not None and ea != 0.0:
            Vab += ea * Tb
        cross_ab += w2[:, None] * Vab
        if not same:
            Vba = fb[:, None] * Pma
            if Ta is not None and eb != 0.0:
                Vba += eb * Ta
            cross_ba += w2[:, None] * Vba
        Dt = None
        if d is not None:
            blk_t = (alpha[t] * mass2)[:, None, None] * d[:, :, None] * d[:, None, :]
            blk = blk_t if blk is None else blk + blk_t
            cross_ab += (d * alpha[t][:, None]).reshape(SA)[:, None] * np.repeat(_sum_a(k2, Pma, S, A), A, axis=0)
            Dt = space.rows(d)
        # backward update to time t
        ma, na = _tail_step(space, k1, k2, mass1, g1, g2, Dt, fa, ea, Pma, Ta)
        if same:
            mb, nb = ma, na
        else:
            mb, nb = _tail_step(space, k1, k2, mass1, g1, g2, Dt, fb, eb, Pmb, Tb)
        if h is not None:
            u1 = (k1 * g1.reshape(S, A)).sum(1)
            u2 = (k2 * g2.reshape(S, A)).sum(1)
        else:
            na = nb = np.zeros((S, p))
    return mod.mu @ ma, mod.mu @ mb, space.finish(own, blk, cross_ab, cross_ba)


def _tail_stationary(mod, plan: Plan, space: WSpace):
    S, A = mod.S, mod.A
    SA = S * A
    zeta = plan.zeta
    if zeta is None:
        raise ValidationError("untruncated moments (horizon=None) need time-independent critics and baselines")
    Pf = mod.Pf
    k1, k2 = plan.k1, plan.k2
    M1, M2 = mod.kernel_matrix(k1), mod.kernel_matrix(k2)
    kap = plan.kappa
    f, eta, h, d = plan.f(0), plan.eta(0), plan.h(0), plan.d(0)
    need = [(zeta, M1, "zeta M1"), (zeta * zeta, M2, "zeta^2 M2")]
    if h is not None:
        need += [(kap, M1, "kappa M1"), (kap * kap, M2, "kappa^2 M2"), (zeta * kap, M2, "zeta kappa M2")]
    for c, M, name in need:
        if c != 0 and c * _radius(M) >= 1.0 - 1e-12:
            raise ValidationError(
                f"untruncated second moments are infinite here: spectral radius of {name} is "
                f"{c * _radius(M):.6g} >= 1 (pass a finite `horizon`, or use gamma < 1 / proper termination)")
    eye = np.eye(S)
    alpha = _solve(eye - zeta * zeta * M2.T, mod.mu, "forward occupancy sum_t zeta^2t alpha_t")
    if h is not None:
        PHf = mod.weighted_f(h)
        eh, eh2 = mod.rowsum(h), mod.rowsum(h * h)
        u1 = _solve(eye - kap * M1, _sum_a(k1, eh, S, A), "E[G|s]")
        u2 = _solve(eye - kap * kap * M2, _sum_a(k2, eh2 + 2 * kap * (PHf @ u1), S, A), "E[G^2|s]")
        g1 = eh + kap * (Pf @ u1)
        g2 = eh2 + 2 * kap * (PHf @ u1) + kap * kap * (Pf @ u2)
    else:
        g1 = g2 = np.zeros(SA)
    ff = np.zeros(SA) if f is None else f.reshape(SA)
    Ec = ff + eta * g1
    Ec2 = ff * ff + 2 * eta * ff * g1 + eta * eta * g2
    EGc = ff * g1 + eta * g2
    Dt = space.rows(d) if d is not None else None
    rhs = space.rows(k1 * Ec.reshape(S, A))
    if Dt is not None:
        rhs = rhs + k1.sum(1)[:, None] * Dt
    m = _solve(eye - zeta * M1, rhs, "E[Y|s]")
    Pm = Pf @ m
    w2 = (alpha[:, None] * k2).reshape(SA)
    own = w2 * Ec2
    V = ff[:, None] * Pm
    if h is not None:
        PHm = PHf @ m
        rhs_n = space.rows(k2 * EGc.reshape(S, A)) + zeta * _sum_a(k2, PHm, S, A)
        if Dt is not None:
            rhs_n += _sum_a(k2, g1, S, A)[:, None] * Dt
        n = _solve(eye - zeta * kap * M2, rhs_n, "E[G Y|s]")
        V = V + eta * PHm + eta * kap * (Pf @ n)
    cross = zeta * w2[:, None] * V
    blk = None
    if d is not None:
        blk = (alpha * k2.sum(1))[:, None, None] * d[:, :, None] * d[:, None, :]
        cross += zeta * (d * alpha[:, None]).reshape(SA)[:, None] * np.repeat(_sum_a(k2, Pm, S, A), A, axis=0)
    mean = mod.mu @ m
    return mean, space.finish(own, blk, cross)


# ----------------------------------------------------------------------------- REINFORCE family
def reinforce_moments(mdp, f: Callable, k: np.ndarray, space: WSpace, T: int):
    r"""Mean and second moment of ``W = R N + F`` with ``N = sum_t e_(s_t,a_t)``,
    ``F = sum_t f_t(s_t, a_t) e_(s_t,a_t)`` and ``R = sum_t gamma^t r_t``, all under the
    action kernel ``k`` (``pi``, or ``pi^2/b`` for the second moment of
    ``importance_trajectory``)."""
    mod = _Model(mdp)
    S, A = mod.S, mod.A
    SA = S * A
    p = space.width
    g = mod.gamma
    P, Pf, r = mod.P, mod.Pf, mod.r
    PH = mod.weighted(r)
    PHf = mod.weighted_f(r)
    PH2 = mod.weighted(r * r)
    PH2f = mod.weighted_f(r * r)
    kf = k.reshape(SA)
    # forward prefix moments a_j[t, s] = E[P_t^j 1{s_t = s}] (P_t = sum_{k<t} gamma^k r_k)
    a = np.zeros((T, 3, S))
    a[0, 0] = mod.mu
    for t in range(T - 1):
        w = a[t][:, :, None] * k[None]                       # (3, S, A)
        w = w.reshape(3, SA)
        gt = g ** t
        a[t + 1, 0] = mod.forward(w[0])
        a[t + 1, 1] = mod.forward(w[1]) + gt * (PHf.T @ w[0])
        a[t + 1, 2] = mod.forward(w[2]) + 2 * gt * (PHf.T @ w[1]) + gt * gt * (PH2f.T @ w[0])
    n0, n1, n2, f0, f1 = (np.zeros((S, p)) for _ in range(5))
    u1 = np.zeros(S)
    u2 = np.zeros(S)
    # Z[s'] = total kernel mass of the paths after s' (1 on-policy; with an unnormalized
    # kernel such as pi^2/b every path sum carries it; 1 at terminal states and at T)
    Zn = np.ones(S)
    term = mdp.terminal
    own = np.zeros(SA)
    cross = np.zeros((SA, p))
    for t in range(T - 1, -1, -1):
        gt = g ** t
        B = gt * g
        ft = f(t)
        ff = np.zeros(SA) if ft is None else ft.reshape(SA)
        zx = P @ Zn
        g1 = PH @ Zn + g * (Pf @ u1)
        g2 = PH2 @ Zn + 2 * g * (PHf @ u1) + g * g * (Pf @ u2)
        a0, a1, a2 = (np.repeat(a[t, j], A) * kf for j in range(3))   # (SA,) with the kernel
        own += a2 * zx + 2 * a1 * (gt * g1 + ff * zx) + a0 * (gt * gt * g2 + 2 * ff * gt * g1 + ff * ff * zx)
        stack = Pf @ np.hstack([n0, n1, n2, f0, f1])
        Pn0, Pn1, Pn2, Pf0, Pf1 = np.split(stack, 5, axis=1)
        stackh = PHf @ np.hstack([n0, n1, f0])
        PHn0, PHn1, PHf0 = np.split(stackh, 3, axis=1)
        PH2n0 = PH2f @ n0
        c = lambda v: v[:, None]
        cross += (c(a2 + ff * a1) * Pn0 + c(2 * a1 * gt + ff * a0 * gt) * PHn0 + c(2 * a1 * B + ff * a0 * B) * Pn1
                  + c(a0 * gt * gt) * PH2n0 + c(2 * a0 * gt * B) * PHn1 + c(a0 * B * B) * Pn2
                  + c(a1 + ff * a0) * Pf0 + c(a0 * gt) * PHf0 + c(a0 * B) * Pf1)
        n0_new = space.rows(k * zx.reshape(S, A)) + _sum_a(k, Pn0, S, A)
        n1_new = space.rows(k * g1.reshape(S, A)) + _sum_a(k, PHn0 + g * Pn1, S, A)
        n2_new = space.rows(k * g2.reshape(S, A)) + _sum_a(k, PH2n0 + 2 * g * PHn1 + g * g * Pn2, S, A)
        f0_new = space.rows(k * (ff * zx).reshape(S, A)) + _sum_a(k, Pf0, S, A)
        f1_new = space.rows(k * (ff * g1).reshape(S, A)) + _sum_a(k, PHf0 + g * Pf1, S, A)
        n0, n1, n2, f0, f1 = n0_new, n1_new, n2_new, f0_new, f1_new
        u1 = _sum_a(k, g1, S, A)
        u2 = _sum_a(k, g2, S, A)
        Zn = np.where(term, 1.0, _sum_a(k, zx, S, A))
    mean = mod.mu @ (n1 + f0)
    return mean, space.finish(own, None, cross)


# ----------------------------------------------------------------------------- random horizon
def random_horizon_moments(mdp, pi, space: WSpace):
    r"""Mean and second moment of the random-horizon estimator (Zhang et al. 2020):
    ``W = 1{alive at T'} Qhat / (1 - gamma) e_(s_T', a_T')``, so both are diagonal in
    ``(s, a)``: :math:`E W = d \pi Q` and :math:`E[W W^\top] = \mathrm{diag}(d\,\pi\,Q_2)/(1-\gamma)`
    with :math:`Q_2 = E[\hat Q^2 | s, a] = E[r^2] + 2\gamma E[r V(s')] + \gamma^{3/2} E[\pi Q_2(s', \cdot)]`
    (``T'' ~ Geom(1 - gamma^(1/2))`` continues with probability :math:`\gamma^{1/2}`)."""
    mod = _Model(mdp)
    S, A = mod.S, mod.A
    SA = S * A
    g = mod.gamma
    Pf, r = mod.Pf, mod.r
    PHf = mod.weighted_f(r)
    M = mod.kernel_matrix(pi)
    eye = np.eye(S)
    d = _solve(eye - g * M.T, mod.mu, "occupancy")
    V = _solve(eye - g * M, _sum_a(pi, mod.rowsum(r), S, A), "V")
    Q = mod.rowsum(r) + g * (Pf @ V)
    base = mod.rowsum(r * r) + 2 * g * (PHf @ V)
    w = _solve(eye - g ** 1.5 * M, _sum_a(pi, base, S, A), "E[Qhat^2]")
    Q2 = base + g ** 1.5 * (Pf @ w)
    occ = (d[:, None] * pi).reshape(SA)
    mean_w = occ * Q
    if space.psi is None:
        return mean_w, np.diag(occ * Q2 / (1.0 - g))
    return space.psi.T @ mean_w, space.psi.T @ ((occ * Q2 / (1.0 - g))[:, None] * space.psi)


# ----------------------------------------------------------------------------- baseline terms
def baseline_terms(mdp, pi, psi, name, T):
    r"""Terms of the exact quadratic of a time-state baseline ``b[t, s]``:
    ``c[t, s] = E[X_0^T Y_{t,s}]`` and ``q[t, s] = E[Y_{t,s}^T Y_{t,s}]``, with
    :math:`Y_{t,s} = m_t 1\{s_t = s\} \psi(s_t, a_t)` the baseline's multiplier, ``psi``
    (S*A, p) the score table; cross terms :math:`E[Y_{t,s}^\top Y_{u,s'}]` vanish (the
    score has mean zero given the past, and ``s_t`` is one state), so
    :math:`\mathrm{tr\,Cov}\,X(b) = t_0 - 2\sum c\,b + \sum q\,b^2`.

    ``c`` splits :math:`X_0` at ``t`` into the tail (backward moments), the past terms and
    the past terms' coupling to the future return (forward moments carried in ``p``-space).
    """
    mod = _Model(mdp)
    S, A = mod.S, mod.A
    SA = S * A
    g = mod.gamma
    Pf, r = mod.Pf, mod.r
    PHf = mod.weighted_f(r)
    eh = mod.rowsum(r)
    p = psi.shape[1]
    pif = pi.reshape(SA)
    sq = np.einsum("xp,xp->x", psi, psi)                         # ||psi(x)||^2
    mult = g ** np.arange(T) if name == "reward_to_go" else np.ones(T)
    alpha = np.zeros((T, S))
    alpha[0] = mod.mu
    for t in range(T - 1):
        alpha[t + 1] = mod.forward((alpha[t][:, None] * pi).reshape(SA))
    # rows(w): (S*A, p) table w(x) psi(x); dot(Z): <Z(x), psi(x)>; rep(Z): state rows -> (s, a) rows
    rows = lambda w: psi * w[:, None]
    dot = lambda Z: np.einsum("xp,xp->x", Z, psi)
    rep = lambda Z: np.repeat(Z, A, axis=0)
    g1 = np.zeros((T, SA))
    u1 = np.zeros(S)
    reinforce = name == "reinforce"
    qY = np.zeros((T, SA))
    qGN = np.zeros((T, SA))
    m = np.zeros((S, p))
    n1 = np.zeros((S, p))
    for t in range(T - 1, -1, -1):
        g1[t] = eh + g * (Pf @ u1)
        Pm = Pf @ m
        if reinforce:        # m = E[N_t | s], n1 = E[G_t N_t | s]
            qY[t] = sq + dot(Pm)
            T1 = rows(g1[t]) + PHf @ m + g * (Pf @ n1)
            qGN[t] = dot(T1)
            n1 = _sum_a(pi, T1, S, A)
            m = _sum_a(pi, rows(np.ones(SA)) + Pm, S, A)
        else:                # m = E[Y_t | s], Y_t = sum_{u >= t} m_u G_u psi_u
            EY = rows(mult[t] * g1[t]) + Pm
            qY[t] = dot(EY)
            m = _sum_a(pi, EY, S, A)
        u1 = _sum_a(pi, g1[t], S, A)
    c = np.zeros((T, S))
    Abar = np.zeros((S, p))
    Bbar = np.zeros((S, p))           # tail family: E[1 B_t]; REINFORCE: E[1 N_{<t}]
    a1 = np.zeros(S)                  # REINFORCE: E[1 P_t]
    for t in range(T):
        w = (alpha[t][:, None] * pi).reshape(SA)
        ab = dot(rep(Abar))
        bb = dot(rep(Bbar))
        if reinforce:
            gt = g ** t
            c[t] = _sum_a(pi, np.repeat(a1, A) * qY[t] + np.repeat(alpha[t], A) * gt * qGN[t] + ab
                          + gt * g1[t] * bb, S, A)
            # forward: N_{<t+1} = N_{<t} + psi_t; P_{t+1} N_{<t+1} = (P_t + g^t r_t)(N_{<t} + psi_t)
            N_step = pif[:, None] * (rep(Bbar) + rows(np.repeat(alpha[t], A)))
            A_step = pif[:, None] * (rep(Abar) + rows(np.repeat(a1, A)))
            Abar = mod.forward(A_step) + gt * (PHf.T @ N_step)
            a1 = mod.forward(pif * np.repeat(a1, A)) + gt * (PHf.T @ w)
            Bbar = mod.forward(N_step)
        else:
            c[t] = mult[t] * _sum_a(pi, np.repeat(alpha[t], A) * qY[t] + ab + g1[t] * bb, S, A)
            # forward: B_{t+1} = g (B_t + m_t psi_t); A_{t+1} = A_t + g^0 r_t (m_t psi_t + B_t)
            step = pif[:, None] * (rep(Bbar) + rows(np.repeat(alpha[t], A) * mult[t]))
            Abar = mod.forward(pif[:, None] * rep(Abar)) + PHf.T @ step
            Bbar = g * mod.forward(step)
    q = (mult ** 2)[:, None] * alpha * _sum_a(pi, sq, S, A)[None, :]
    return c, q
