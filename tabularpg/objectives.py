r"""Entropy-regularized objective and the TRPO / PPO surrogates, with hand-derived gradients.

Entropy regularization (Williams and Peng 1991; Cen et al. 2021):

.. math::
    J_\tau(\theta) = E\Big[\sum_t \gamma^t \big(r_t + \tau\, \mathcal H(\pi(\cdot|s_t))\big)\Big],\qquad
    \nabla J_\tau = \sum_{s,a} d(s)\pi(a|s)\big(Q_\tau(s,a) - \tau\log\pi(a|s)\big)\nabla\log\pi(a|s),

with :math:`Q_\tau = r + \gamma P V_\tau`, :math:`V_\tau(s) = \sum_a \pi(a|s)(Q_\tau(s,a) - \tau\log\pi(a|s))`:
the regularized problem is the MDP with reward :math:`r - \tau\log\pi`, and the extra
term :math:`-\tau\sum_a \pi\nabla\log\pi` vanishes.

Surrogates at :math:`\theta_{old}` (Kakade and Langford 2002; Schulman et al. 2015, 2017),
with :math:`d_{old}`, :math:`A_{old}` of :math:`\pi_{old}` and :math:`\rho = \pi_\theta/\pi_{old}`:

.. math::
    L(\theta) &= \sum_s d_{old}(s)\sum_a \pi_\theta(a|s) A_{old}(s,a), \qquad
    \nabla L = \sum_{s,a} d_{old}\,\pi_\theta A_{old}\nabla\log\pi_\theta \;(= \nabla J \text{ at } \theta_{old}),\\
    \bar{KL}(\theta) &= \sum_s d_{old}(s) KL(\pi_{old}(\cdot|s)\,\|\,\pi_\theta(\cdot|s)), \qquad
    \nabla \bar{KL} = -\sum_{s,a} d_{old}\,\pi_{old}\nabla\log\pi_\theta,\\
    L^{clip}(\theta) &= \sum_s d_{old}\sum_a \pi_{old}\min\big(\rho A, \mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon)A\big).

For softmax policies with logits linear in :math:`\theta` the Hessian of :math:`\bar{KL}` at
any :math:`\theta` is the Fisher matrix of :math:`\pi_\theta` under :math:`d_{old}`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import exact
from ._validation import ValidationError, check_float, check_int
from .mdp import MDP
from .policies import Policy, softmax

__all__ = [
    "SoftSolution",
    "Surrogate",
    "entropy_analyze",
    "entropy_objective",
    "entropy_policy_gradient",
    "expected_kl",
    "kl_hvp",
    "kl_penalized",
    "ppo_clip",
    "sample_kl_weights",
    "sample_surrogate_weights",
    "soft_value_iteration",
    "surrogate",
]


def _safe_log(pi):
    return np.log(np.where(pi.real > 0, pi, 1.0))


def entropy_analyze(mdp: MDP, pi, tau: float, **kw) -> exact.PolicyEvaluation:
    r"""Soft evaluation of ``pi``: the MDP with reward :math:`r(s,a) - \tau\log\pi(a|s)`.

    Parameters
    ----------
    mdp : MDP
    pi : ndarray of shape (S, A)
        Action probabilities (complex allowed, for complex-step checks).
    tau : float
        Entropy temperature, >= 0.
    **kw
        Passed to :func:`tabularpg.exact.analyze` (e.g. ``occupancy=False``).

    Returns
    -------
    PolicyEvaluation
        ``v`` = :math:`V_\tau` (S,) (finite horizon (H, S)),
        ``q`` = :math:`Q_\tau = r + \gamma P V_\tau` (S, A) (or (H, S, A)): Cen et al.'s
        (2021) convention, without the :math:`-\tau\log\pi` of the current step, so that
        :math:`V_\tau(s) = \sum_a\pi(a|s)(Q_\tau(s,a) - \tau\log\pi(a|s))`;
        ``d`` the occupancy of ``pi``; ``j`` = :math:`J_\tau = \mu^\top V_\tau`.
    """
    tau = check_float(tau, "tau", low=0.0)
    pi = np.asarray(pi)
    tlog = tau * _safe_log(pi)
    ev = exact.analyze(mdp, pi, reward=mdp.r_sa - tlog, **kw)
    return replace(ev, q=ev.q + tlog * mdp.nonterminal[:, None])


def entropy_objective(mdp: MDP, pi, tau: float):
    r"""Entropy-regularized objective :math:`J_\tau = E[\sum_t\gamma^t(r_t + \tau\mathcal H(\pi(\cdot|s_t)))]
    = \mu^\top V_\tau = J + \tau\sum_s d(s)\mathcal H(\pi(\cdot|s))`.

    ``pi`` : ndarray of shape (S, A) (complex allowed for complex-step checks); returns a scalar.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import MDP
    >>> m = MDP(np.ones((1, 2, 1)), np.array([[1.0, 0.0]]), np.array([1.0]), gamma=0.5)
    >>> pi = np.array([[0.5, 0.5]])   # J = 0.5 / (1 - 0.5) = 1, entropy log 2 per step
    >>> bool(np.isclose(entropy_objective(m, pi, 0.1), 1.0 + 0.1 * np.log(2) / 0.5))
    True
    """
    j = entropy_analyze(mdp, pi, tau, occupancy=False).j
    return j.item() if hasattr(j, "item") else j


def entropy_policy_gradient(mdp: MDP, policy: Policy, theta, tau: float) -> np.ndarray:
    r"""Exact gradient of :func:`entropy_objective` with respect to ``theta``.

    Parameters
    ----------
    mdp : MDP
    policy : Policy
    theta : ndarray of shape ``policy.theta_shape``
    tau : float

    Returns
    -------
    ndarray of shape ``policy.theta_shape``
        ``policy.contract_table(theta, W)`` with
        :math:`W(s,a) = \sum_t d_t(s)\pi(a|s)(Q_{\tau,t}(s,a) - \tau\log\pi(a|s))`.

    Notes
    -----
    :math:`J_\tau` is the value of the MDP with reward :math:`r - \tau\log\pi_\theta`, a reward
    that depends on :math:`\theta`. The policy gradient theorem for that MDP gives
    :math:`\sum d\pi(Q_\tau - \tau\log\pi)\nabla\log\pi`, and differentiating the reward
    adds :math:`-\tau\sum_s d(s)\sum_a\pi\nabla\log\pi = 0`. Checked against complex-step
    derivatives of :func:`entropy_objective` in the tests. At :math:`\tau = 0` it is
    :func:`tabularpg.exact.policy_gradient`.
    """
    theta = policy.check_theta(theta)
    logpi = policy.log_probs(theta)   # not log(pi): finite where pi underflows to 0
    pi = np.exp(logpi)
    ev = entropy_analyze(mdp, pi, tau)
    if ev.d.ndim == 1:
        W = ev.d[:, None] * pi * (ev.q - tau * logpi)
    else:
        W = np.einsum("ts,sa,tsa->sa", ev.d, pi, ev.q - tau * logpi)
    return policy.contract_table(theta, W, pi=pi)


@dataclass(frozen=True)
class SoftSolution:
    """Soft-optimal values and policy: ``v`` (S,) or (H, S), ``q``, ``pi``, ``n_iter``, ``converged``."""

    v: np.ndarray
    q: np.ndarray
    pi: np.ndarray
    n_iter: int
    converged: bool


def soft_value_iteration(mdp: MDP, tau: float, *, tol: float = 1e-12, max_iter: int = 1_000_000) -> SoftSolution:
    r"""Soft-optimal values and policy of the entropy-regularized MDP.

    Parameters
    ----------
    mdp : MDP
        Discounted (``gamma < 1``) or finite-horizon.
    tau : float
        Entropy temperature, > 0 (``tau = 0`` is ordinary optimality: :mod:`tabularpg.solve`).
    tol : float
        Stop when :math:`\frac{\gamma}{1-\gamma}\|V_{k+1}-V_k\|_\infty \le` ``tol``
        (then :math:`\|V_{k+1} - V^*_\tau\|_\infty \le` ``tol``).
    max_iter : int
        Iteration cap; ``converged`` is False when reached.

    Returns
    -------
    SoftSolution
        ``v`` ndarray of shape (S,) (finite horizon (H, S)), ``q`` (S, A) (or (H, S, A)),
        ``pi`` (S, A) (or (H, S, A)), ``n_iter``, ``converged``.

    Notes
    -----
    Soft Bellman optimality (Haarnoja et al. 2017; Cen et al. 2021, eq. 11):
    :math:`Q = r + \gamma P V`, :math:`V(s) = \tau\log\sum_a e^{Q(s,a)/\tau}`,
    :math:`\pi^*_\tau = \mathrm{softmax}(Q/\tau)`; the backup is a :math:`\gamma`-contraction.
    Finite horizons: backward induction from :math:`V_H = 0`. :math:`\mu^\top V^*_\tau`
    equals :func:`entropy_objective` of ``pi`` and is the maximum of :math:`J_\tau`.

    Examples
    --------
    A one-state bandit: :math:`V^* = \frac{\tau\log\sum_a e^{r_a/\tau}}{1-\gamma}` and
    :math:`\pi^* = \mathrm{softmax}(r/\tau)`.

    >>> import numpy as np
    >>> from tabularpg import MDP
    >>> r = np.array([[1.0, 0.0]])
    >>> m = MDP(np.ones((1, 2, 1)), r, np.array([1.0]), gamma=0.5)
    >>> sol = soft_value_iteration(m, 0.5)
    >>> bool(np.isclose(sol.v[0], 0.5 * np.log(np.exp(2.0) + 1.0) / 0.5))
    True
    >>> bool(np.allclose(sol.pi, np.exp(r / 0.5) / np.exp(r / 0.5).sum()))
    True
    >>> bool(np.isclose(entropy_objective(m, sol.pi, 0.5), sol.v[0]))
    True
    """
    tau = check_float(tau, "tau", low=0.0)
    if tau <= 0:
        raise ValidationError(f"`tau` must be > 0 for soft value iteration (tau = 0: tabularpg.solve); got {tau}")
    tol = check_float(tol, "tol", low=0.0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    keep = mdp.nonterminal

    def backup(v):
        q = (mdp.r_sa + mdp.gamma * mdp.next_state_expectation(v)) * keep[:, None]
        z = q / tau
        m = z.max(axis=1)
        return q, tau * (m + np.log(np.exp(z - m[:, None]).sum(axis=1))) * keep

    if mdp.horizon is not None:
        H = mdp.horizon
        vs, qs = np.zeros((H + 1, mdp.n_states)), np.zeros((H, mdp.n_states, mdp.n_actions))
        for t in range(H - 1, -1, -1):
            qs[t], vs[t] = backup(vs[t + 1])
        return SoftSolution(v=vs[:H], q=qs, pi=softmax(qs / tau), n_iter=H, converged=True)
    g = mdp.gamma
    factor = g / (1 - g) if g < 1 else 1.0
    v = np.zeros(mdp.n_states)
    for k in range(1, max_iter + 1):
        q, v_new = backup(v)
        delta = np.max(np.abs(v_new - v))
        v = v_new
        if factor * delta <= tol:
            q, _ = backup(v)
            return SoftSolution(v=v, q=q, pi=softmax(q / tau), n_iter=k, converged=True)
    q, _ = backup(v)
    return SoftSolution(v=v, q=q, pi=softmax(q / tau), n_iter=max_iter, converged=False)


# ----------------------------------------------------------------------------- surrogates
@dataclass(frozen=True)
class Surrogate:
    """What the surrogates need from :math:`\\pi_{old}`: ``pi_old`` (S, A), ``d_old`` (S,)
    (summed over time), ``adv_old`` (S, A) (occupancy-weighted over time for finite
    horizons), ``j_old``, and optionally ``log_pi_old`` (S, A), the log-probabilities from
    which probability ratios are formed (:meth:`at` fills it from ``policy.log_probs``;
    when None, ``log(pi_old)`` with 0 where ``pi_old`` is 0)."""

    pi_old: np.ndarray
    d_old: np.ndarray
    adv_old: np.ndarray
    j_old: float
    log_pi_old: np.ndarray | None = None

    @classmethod
    def at(cls, mdp: MDP, policy: Policy, theta_old) -> Surrogate:
        logp = policy.log_probs(theta_old)
        pi = np.exp(logp)
        return _surrogate_from(exact.analyze(mdp, pi), pi, logp)

    def log_old(self) -> np.ndarray:
        """``log_pi_old``, or ``log(pi_old)`` (0 where ``pi_old`` is 0) when it was not given."""
        return _safe_log(self.pi_old) if self.log_pi_old is None else self.log_pi_old


def _surrogate_from(ev, pi, logp) -> Surrogate:
    """The :class:`Surrogate` of an existing evaluation ``ev`` of ``pi`` (log-probabilities ``logp``)."""
    d = ev.d_total
    if ev.d.ndim == 1:
        adv = ev.advantage
    else:  # time-averaged advantage weighted by the occupancy at each time
        adv = np.divide(np.einsum("ts,tsa->sa", ev.d, ev.advantage), d[:, None],
                        out=np.zeros_like(pi), where=d[:, None] > 0)
    return Surrogate(pi_old=pi, d_old=d, adv_old=adv, j_old=float(np.real(ev.j)), log_pi_old=logp)


def surrogate(sur: Surrogate, policy: Policy, theta):
    r"""``(L, grad L)``: :math:`L(\theta) = \sum_s d_{old}\sum_a \pi_\theta A_{old}` (Kakade and
    Langford 2002; :math:`J(\theta) \approx J_{old} + L(\theta)` to first order).

    ``L`` is a scalar, ``grad L`` has ``policy.theta_shape``: the contraction of
    :math:`W = d_{old}\,\pi_\theta\,A_{old}` (S, A). At :math:`\theta_{old}`, ``L = 0`` and
    ``grad L`` equals :func:`tabularpg.exact.policy_gradient`.
    """
    pi = policy.probs(theta)
    W = sur.d_old[:, None] * pi * sur.adv_old
    return np.sum(W), policy.contract_table(theta, W, pi=pi)


def expected_kl(sur: Surrogate, policy: Policy, theta):
    r"""``(KL, grad KL)`` with :math:`\bar{KL} = \sum_s d_{old}(s) KL(\pi_{old}\|\pi_\theta)` (nats)."""
    logp = policy.log_probs(theta)
    kl_s = np.sum(sur.pi_old * np.where(sur.pi_old.real > 0, sur.log_old() - logp, 0.0), axis=1)
    W = -sur.d_old[:, None] * sur.pi_old
    return float(np.real(sur.d_old @ kl_s)), policy.contract_table(theta, W)


def kl_hvp(sur: Surrogate, policy: Policy, theta, v) -> np.ndarray:
    r"""Hessian-vector product of :math:`\bar{KL}` at ``theta``: the Fisher-vector product of
    :math:`\pi_\theta` under :math:`d_{old}` (logits linear in theta); never forms the matrix.

    For logits :math:`z_s = \phi_s\theta` linear in :math:`\theta`,
    :math:`\nabla^2\log\pi_\theta(a|s) = -\mathrm{Cov}_{\pi_\theta(\cdot|s)}(\phi_s)` for every
    :math:`a`, so :math:`\nabla^2\bar{KL} = \sum_s d_{old}(s)\mathrm{Cov}_{\pi_\theta}(\phi_s)` and
    :math:`Hv = \sum_s d_{old}(s)\sum_a\pi_\theta(a|s)\langle\nabla\log\pi_\theta(a|s), v\rangle
    \nabla\log\pi_\theta(a|s)`, computed as one contraction (``policy.log_probs_jvp``).
    ``v`` and the result have ``policy.theta_shape``.
    At :math:`\theta_{old}` it equals :func:`tabularpg.exact.fisher_vector_product`.
    """
    theta = policy.check_theta(theta)
    pi = policy.probs(theta)
    jvp = policy.log_probs_jvp(theta, np.asarray(v))
    return policy.contract_table(theta, sur.d_old[:, None] * pi * jvp, pi=pi)


def ppo_clip(sur: Surrogate, policy: Policy, theta, *, clip: float = 0.2):
    r"""``(L_clip, grad)`` of the PPO clipped surrogate (Schulman et al. 2017, eq. 7) in expectation.

    Gradient: :math:`\sum_{s,a} d_{old}\pi_\theta A_{old} 1[\text{unclipped}]\nabla\log\pi_\theta`,
    where a term is clipped when :math:`\rho > 1+\epsilon, A > 0` or :math:`\rho < 1-\epsilon, A < 0`
    (the subgradient 0 is taken on the boundary).

    The ratio is formed from log-probabilities, :math:`\log\rho = \log\pi_\theta - \log\pi_{old}`,
    and the value as :math:`\sum d_{old}\min(\pi_\theta A, \pi_{old}\mathrm{clip}(\rho) A)`
    (:math:`\pi_{old}\rho = \pi_\theta`), so probabilities that underflow to 0 (near-deterministic
    :math:`\theta_{old}`) give finite terms (0 where the weight is 0), never 0/0.
    """
    clip = check_float(clip, "clip", low=0.0)
    logp = policy.log_probs(theta)
    pi = np.exp(logp)
    log_rho = np.real(logp - sur.log_old())
    hi = np.log1p(clip)
    lo = np.log1p(-clip) if clip < 1 else -np.inf
    A = sur.adv_old
    rho_c = np.clip(np.exp(np.minimum(log_rho, hi)), 1 - clip, 1 + clip)
    val = np.minimum(pi * A, sur.pi_old * rho_c * A)
    active = ~(((log_rho >= hi) & (A > 0)) | ((log_rho <= lo) & (A < 0)))
    W = sur.d_old[:, None] * pi * A * active
    return float(np.real(np.sum(sur.d_old[:, None] * val))), policy.contract_table(theta, W, pi=pi)


def kl_penalized(sur: Surrogate, policy: Policy, theta, *, beta: float):
    r"""``(L - beta KL, grad)``: the KL-penalized surrogate (PPO's adaptive-KL variant)."""
    val, gl = surrogate(sur, policy, theta)
    k, gk = expected_kl(sur, policy, theta)
    return float(np.real(val)) - beta * k, gl - beta * gk


def sample_surrogate_weights(batch, policy: Policy, theta, pi_old, advantages, *, clip=None,
                             discount: bool = True) -> np.ndarray:
    r"""Per-step weights (N, T) of the sampled (clipped) surrogate on a batch from :math:`\pi_{old}`.

    With :math:`\rho_t = \pi_\theta(a_t|s_t)/\pi_{old}(a_t|s_t)` and advantages :math:`\hat A_t`
    (N, T), the gradient of :math:`\frac1N\sum_{n,t}\gamma^t\min(\rho_t\hat A_t,
    \mathrm{clip}(\rho_t)\hat A_t)` is the contraction of the weights
    :math:`\gamma^t\rho_t\hat A_t 1[\text{unclipped}]` (divided by N); with
    :math:`\hat A_t = A_{old}(s_t, a_t)` it is unbiased for :func:`ppo_clip`'s gradient
    (and for :func:`surrogate`'s when ``clip`` is None). ``discount=False`` drops
    :math:`\gamma^t` as common practice does (then the expectation weights states by the
    undiscounted occupancy).
    """
    pi_old = np.asarray(pi_old)
    logp = policy.log_probs(theta)[batch.states, batch.actions]
    logp_old = _safe_log(pi_old)[batch.states, batch.actions]  # sampled actions have pi_old > 0
    rho = np.exp(np.where(batch.alive, logp - logp_old, 0.0))
    disc = batch.discounts() if discount else np.ones(batch.width)
    w = disc * rho * advantages
    if clip is not None:
        clipped = ((rho >= 1 + clip) & (advantages > 0)) | ((rho <= 1 - clip) & (advantages < 0))
        w = np.where(clipped, 0.0, w)
    return np.where(batch.alive, w, 0.0)


def sample_kl_weights(batch, pi_old, *, discount: bool = True) -> np.ndarray:
    r"""All-action weights (N, T, A) of the gradient of the sampled expected KL
    :math:`\frac1N\sum_{n,t}\gamma^t KL(\pi_{old}(\cdot|s_t)\|\pi_\theta(\cdot|s_t))`:
    :math:`-\gamma^t\pi_{old}(a|s_t)`."""
    disc = batch.discounts() if discount else np.ones(batch.width)
    w = -disc[None, :, None] * np.asarray(pi_old)[batch.states]
    return np.where(batch.alive[..., None], w, 0.0)
